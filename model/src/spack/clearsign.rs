//! OpenPGP clear-signed documents: Spack signs spec files and spec manifests this way; most of
//! the tools only need the signed text (`signature` checks who signed it).

const BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";

/// True when `data` starts (after white space) with the clear-signature armour.
pub fn is_clearsigned(data: &[u8]) -> bool {
    data.trim_ascii_start().starts_with(BEGIN.as_bytes())
}

/// The signed text of a clear-signed document, or `data` itself when it is not signed.
/// Returns `None` for a document that starts signed but lacks its body or signature block.
pub fn strip(data: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if !is_clearsigned(data) {
        return Some(std::borrow::Cow::Borrowed(data));
    }
    let text = std::str::from_utf8(data).ok()?;
    let after = &text[text.find(BEGIN)? + BEGIN.len()..];
    // Armour headers ("Hash: SHA512") end at the first empty line.
    let body_start = after
        .find("\n\n")
        .or_else(|| after.find("\r\n\r\n").map(|i| i + 2))?
        + 2;
    let body = &after[body_start..];
    let body = &body[..body.find(SIGNATURE)?];
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        // RFC 4880 dash-escaping: a signed line starting with '-' is written as "- -…".
        out.push_str(line.strip_prefix("- ").unwrap_or(line));
    }
    Some(std::borrow::Cow::Owned(out.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_armour_and_keeps_body() {
        let doc = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{\"a\":1}\n- -dash\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(&*strip(doc).unwrap(), b"{\"a\":1}\n-dash\n");
    }

    #[test]
    fn unsigned_is_returned_as_is_and_truncated_is_none() {
        assert_eq!(&*strip(b"{}").unwrap(), b"{}");
        assert!(strip(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}").is_none());
    }
}
