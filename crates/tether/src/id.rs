//! Unguessable identifiers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRngCore;

/// A new 128-bit identifier from the operating system's random source, as 22
/// URL-safe base64 characters.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        // The thread RNG is a CSPRNG seeded from the OS: still unguessable.
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_and_url_safe() {
        let a = super::random_id();
        let b = super::random_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
