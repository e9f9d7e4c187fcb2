//! API keys, compared in constant time.

use http::HeaderValue;
use subtle::{Choice, ConstantTimeEq};

/// The keys `/api/v1` accepts (several, so that one can be rotated: give the
/// new key, move the backends to it, then drop the old one).
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("ApiKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl ApiKeys {
    /// The keys, or `None` when there are none (the API is then off).
    pub fn new(keys: &[String]) -> Option<Self> {
        let keys: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec())
            .collect();
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when `authorization` (the header's value) is `Bearer KEY` for
    /// one of the keys. Every key is compared, each in time that depends on
    /// its own length only, so the answer's timing tells nothing about how
    /// much of a key a guess got right, nor which key matched.
    pub fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = authorization.and_then(|v| bearer_token(v.as_bytes())) else {
            return false;
        };
        let mut found = Choice::from(0);
        for key in &self.keys {
            found |= same(key, token);
        }
        found.into()
    }
}

/// The token of `Bearer TOKEN` (the scheme is case-insensitive, RFC 9110
/// 11.1), without surrounding spaces.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// `given == key`, in time that depends on `key.len()` only.
pub(crate) fn same(key: &[u8], given: &[u8]) -> Choice {
    let mut padded = vec![0u8; key.len()];
    let n = given.len().min(key.len());
    padded[..n].copy_from_slice(&given[..n]);
    let same_len = (given.len() as u64).ct_eq(&(key.len() as u64));
    padded.as_slice().ct_eq(key) & same_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    #[test]
    fn accepts_each_key_and_nothing_else() {
        let keys = ApiKeys::new(&[
            "first-key-0123456789".into(),
            "second-key-0123456789".into(),
        ])
        .unwrap();
        assert_eq!(keys.len(), 2);
        for ok in [
            "Bearer first-key-0123456789",
            "Bearer second-key-0123456789",
            "bearer first-key-0123456789",
            "BEARER  second-key-0123456789 ",
        ] {
            assert!(keys.accepts(Some(&header(ok))), "{ok}");
        }
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearerfirst-key-0123456789",
            "Basic first-key-0123456789",
            "first-key-0123456789",
            "Bearer first-key-012345678",
            "Bearer first-key-01234567890",
            "Bearer first-key-0123456789x",
            "Bearer second-key-0123456789 first-key-0123456789",
            "Bearer FIRST-KEY-0123456789",
        ] {
            assert!(!keys.accepts(Some(&header(bad))), "{bad:?}");
        }
        assert!(!keys.accepts(None));
    }

    #[test]
    fn no_keys_no_api() {
        assert!(ApiKeys::new(&[]).is_none());
        assert!(ApiKeys::new(&[String::new()]).is_none());
    }

    #[test]
    fn debug_shows_no_key() {
        let keys = ApiKeys::new(&["first-key-0123456789".into()]).unwrap();
        let shown = format!("{keys:?}");
        assert!(!shown.contains("first"), "{shown}");
    }
}
