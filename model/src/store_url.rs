//! Store URLs: `s3://bucket[/prefix]`, `file:///dir` or a plain directory path.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A store URL that is not `s3://bucket[/prefix]`, `file:///dir` or a directory path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid store URL `{url}`: {reason}")]
pub struct InvalidStoreUrl {
    pub url: String,
    pub reason: String,
}

/// How to reach S3. The key pair, when given, is read from the environment variables *named*
/// here, so CI can keep one pair per bucket and no secret is ever passed as an argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub access_key_env: Option<String>,
    pub secret_key_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    S3 { bucket: String, prefix: String },
    Dir(PathBuf),
}

impl FromStr for StoreUrl {
    type Err = InvalidStoreUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| InvalidStoreUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_bucket(bucket) {
                return Err(bad(
                    "bucket names have 1 to 255 letters, digits, dots, hyphens or underscores",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|c| c == "." || c == "..") || prefix.contains("//") {
                return Err(bad(
                    "the prefix may not contain empty, `.` or `..` components",
                ));
            }
            Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            })
        } else if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("file URLs need an absolute path (file:///dir)"));
            }
            Ok(StoreUrl::Dir(PathBuf::from(path)))
        } else if s.contains("://") {
            Err(bad("supported schemes are s3:// and file://"))
        } else if s.is_empty() {
            Err(bad("empty"))
        } else {
            Ok(StoreUrl::Dir(PathBuf::from(s)))
        }
    }
}

impl StoreUrl {
    /// The URL that reads back as this store wherever a path and a store mean different things
    /// (`spackitor clean --keep` takes a path as lockfiles, a URL as recorded keep lists): an
    /// absolute directory as `file:///dir`; a relative one stays a path.
    pub fn as_url(&self) -> String {
        match self {
            StoreUrl::Dir(p) if p.is_absolute() => format!("file://{}", p.display()),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            StoreUrl::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What an S3-compatible server may accept: AWS's rules are stricter (3 to 63 lowercase), but
/// Ceph (relaxed names), MinIO and older appliances hold buckets with capitals, underscores or
/// short names, and the server is the one to refuse what it does not know.
fn valid_bucket(b: &str) -> bool {
    (1..=255).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            "s3://spack-build-cache/amd64/".parse::<StoreUrl>().unwrap(),
            StoreUrl::S3 {
                bucket: "spack-build-cache".into(),
                prefix: "amd64".into()
            }
        );
        assert_eq!(
            "file:///tmp/cache".parse::<StoreUrl>().unwrap(),
            StoreUrl::Dir("/tmp/cache".into())
        );
        assert_eq!(
            "examples/build-cache".parse::<StoreUrl>().unwrap(),
            StoreUrl::Dir("examples/build-cache".into())
        );
        assert_eq!(
            "s3://b-1.x".parse::<StoreUrl>().unwrap().to_string(),
            "s3://b-1.x"
        );
    }

    #[test]
    fn accepts_what_s3_compatible_servers_accept() {
        // Ceph's relaxed names, MinIO's short ones.
        for bucket in ["Spack_Cache", "ab", "x", "team.cache-2"] {
            let url = format!("s3://{bucket}/amd64");
            assert_eq!(
                url.parse::<StoreUrl>().unwrap(),
                StoreUrl::S3 {
                    bucket: bucket.into(),
                    prefix: "amd64".into()
                },
                "{url}"
            );
        }
    }

    #[test]
    fn rejects_bad_urls() {
        for u in [
            "s3://",
            "s3://a b",
            "s3://bucket/../x",
            "http://x",
            "file://relative",
            "",
        ] {
            assert!(u.parse::<StoreUrl>().is_err(), "{u}");
        }
    }
}
