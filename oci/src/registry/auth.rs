//! Registry authentication: the `WWW-Authenticate` challenge (Bearer or Basic) and the token
//! request, with credentials from named environment variables that are never logged.

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"` or `Basic …`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    // key="value" pairs; values may hold commas (scopes), so split on `",` boundaries.
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (
                &quoted[..end],
                quoted[end + 1..]
                    .trim_start()
                    .trim_start_matches(',')
                    .trim_start(),
            )
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (
                &after[..end],
                after[end..].trim_start_matches(',').trim_start(),
            )
        };
        match key.trim() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            "scope" => scope = Some(value.to_string()),
            _ => {}
        }
        rest = tail;
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
        scope,
    })
}

pub use model::secret::Login;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let l = Login {
            user: "u".into(),
            secret: model::secret::Secret::new("p4ss"),
        };
        assert!(!format!("{l:?}").contains("p4ss"));
        assert_eq!(l.basic_header(), "Basic dTpwNHNz");
    }
}
