//! Authenticated users: a JSON Web Token in the CONNECT auth (`auth.token`),
//! checked with the `jsonwebtoken` crate against `--jwt-secret` (HS256) or
//! `--jwt-public-key` (an RSA key: RS256, an EC P-256 key: ES256).
//!
//! A verified token's `sub` is the user (the inbox identity of the socket)
//! and its `name` claim (else `sub`) the name the chat shows. `exp` and
//! `nbf` are checked when the token has them, with [`LEEWAY_SECS`] of
//! leeway for clocks apart. The check is a namespace middleware: it runs
//! before the CONNECT reply, so a refused client gets nothing replayed or
//! delivered. Neither the secret nor the tokens are ever logged.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use tether::{ConnectError, NamespaceRef, Socket};

/// Seconds of leeway when checking `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;
/// Shortest `--jwt-secret` accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Who a verified token says the client is, kept on the socket (an
/// extension) for the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`: the user.
    pub user: String,
    /// The token's `name` claim, else `sub`.
    pub name: String,
}

/// Why a key could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no RSA or EC public key in PEM.
    #[error(
        "{path}: not an RSA or EC public key in PEM (-----BEGIN PUBLIC KEY-----, as \
         `openssl pkey -pubout` writes it)"
    )]
    NotAKey {
        /// The file.
        path: String,
    },
    /// The secret is too short to be one.
    #[error("{0} bytes: give at least {MIN_SECRET_BYTES} (for example `openssl rand -hex 32`)")]
    ShortSecret(usize),
}

/// Checks tokens against one key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// The algorithm this server takes, for messages.
    algorithm: Algorithm,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A refusal: the message the client gets (`err.message` in the official
/// client) and a machine-readable code (`err.data.code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unauthorized: {message}")]
pub struct Refusal {
    /// `token_missing`, `token_malformed`, `bad_signature`,
    /// `token_expired`, `token_not_yet_valid`, `bad_algorithm`, `no_subject`,
    /// `session_of_another_user`.
    pub code: &'static str,
    /// What is wrong, in words.
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<Refusal> for ConnectError {
    fn from(r: Refusal) -> Self {
        ConnectError::new(r.to_string()).with_data(json!({ "code": r.code }))
    }
}

impl Verifier {
    /// HS256 with a shared secret.
    pub fn from_secret(secret: &str) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::ShortSecret(secret.len()));
        }
        Ok(Self::new(
            DecodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        ))
    }

    /// RS256 (an RSA key) or ES256 (an EC P-256 key), from a PEM file.
    pub fn from_public_key_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(Self::new(key, Algorithm::RS256));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            return Ok(Self::new(key, Algorithm::ES256));
        }
        Err(KeyError::NotAKey { path: shown })
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        // `exp` and `nbf` are checked when present; `sub` is required.
        validation.required_spec_claims = ["sub".to_owned()].into_iter().collect();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECS;
        Self {
            key,
            validation,
            algorithm,
        }
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks the token of a CONNECT auth payload (`auth.token`).
    pub fn verify_auth(&self, auth: &Value) -> Result<Identity, Refusal> {
        match auth.get("token") {
            None | Some(Value::Null) => Err(Refusal::new(
                "token_missing",
                "this server needs a token: connect with auth: { token: \"<JWT>\" }",
            )),
            Some(Value::String(token)) => self.verify(token),
            Some(_) => Err(Refusal::new(
                "token_malformed",
                "auth.token must be a string",
            )),
        }
    }

    /// Checks one token: signature, algorithm, `exp`, `nbf`, `sub`.
    pub fn verify(&self, token: &str) -> Result<Identity, Refusal> {
        let data = jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)
            .map_err(|e| self.refusal(token, e.kind()))?;
        let claims = data.claims;
        let user = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(Refusal::new(
                    "no_subject",
                    "the token has no sub claim (a non-empty string: the user)",
                ))
            }
        };
        let name = claims
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&user)
            .to_owned();
        Ok(Identity { user, name })
    }

    fn refusal(&self, token: &str, kind: &ErrorKind) -> Refusal {
        let want = format!("{:?}", self.algorithm);
        match kind {
            ErrorKind::InvalidSignature => {
                Refusal::new("bad_signature", "the token's signature does not verify")
            }
            ErrorKind::ExpiredSignature => Refusal::new("token_expired", "the token has expired"),
            ErrorKind::ImmatureSignature => Refusal::new(
                "token_not_yet_valid",
                "the token is not valid yet (its nbf is in the future)",
            ),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                let got = jsonwebtoken::decode_header(token)
                    .map(|h| format!("{:?}", h.alg))
                    .unwrap_or_else(|_| "unknown".to_owned());
                Refusal::new(
                    "bad_algorithm",
                    format!("the token is signed with {got}: this server takes {want}"),
                )
            }
            ErrorKind::MissingRequiredClaim(_) => Refusal::new(
                "no_subject",
                "the token has no sub claim (a non-empty string: the user)",
            ),
            _ => Refusal::new("token_malformed", "the token is not a well-formed JWT"),
        }
    }
}

/// Adds the token check to a namespace: a client without a valid token is
/// refused with CONNECT_ERROR; one with a valid token is its `sub`'s (inbox)
/// and carries its [`Identity`].
pub fn guard(ns: NamespaceRef, verifier: Arc<Verifier>) -> NamespaceRef {
    metrics::describe_counter!(
        REFUSED,
        metrics::Unit::Count,
        "Connections refused for their token, by code"
    );
    for code in CODES {
        metrics::counter!(REFUSED, "code" => code).increment(0);
    }
    ns.with(move |socket: Socket| {
        let verifier = verifier.clone();
        async move {
            let checked = verifier.verify_auth(&socket.handshake().auth).and_then(|identity| {
                // A recovered session keeps its user: another user's token
                // does not take it (nor what it missed) over.
                match socket.user() {
                    Some(owner) if owner != identity.user => Err(Refusal::new(
                        "session_of_another_user",
                        "the session being recovered belongs to another user: open a new connection",
                    )),
                    _ => Ok(identity),
                }
            });
            match checked {
                Ok(identity) => {
                    socket.set_user(identity.user.clone());
                    socket.insert_extension(identity);
                    Ok(())
                }
                Err(refusal) => {
                    metrics::counter!(REFUSED, "code" => refusal.code).increment(1);
                    tracing::debug!(
                        sid = socket.id(),
                        code = refusal.code,
                        "connection refused: {refusal}"
                    );
                    Err(refusal.into())
                }
            }
        }
    })
}

/// Connections refused for their token, by `code` (counter).
pub const REFUSED: &str = "tether_auth_refused_total";
/// Every [`Refusal::code`].
pub const CODES: [&str; 8] = [
    "token_missing",
    "token_malformed",
    "bad_signature",
    "token_expired",
    "token_not_yet_valid",
    "bad_algorithm",
    "no_subject",
    "session_of_another_user",
];

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &str = "a-test-secret-0123456789";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_checked() {
        let v = Verifier::from_secret(SECRET).unwrap();
        let ok = hs(
            json!({ "sub": "u1", "name": "Ana", "exp": now() + 600 }),
            SECRET,
        );
        assert_eq!(
            v.verify(&ok).unwrap(),
            Identity {
                user: "u1".into(),
                name: "Ana".into()
            }
        );
        let no_name = hs(json!({ "sub": "u2" }), SECRET);
        assert_eq!(v.verify(&no_name).unwrap().name, "u2");
        let code = |token: &str| v.verify(token).unwrap_err().code;
        assert_eq!(
            code(&hs(json!({ "sub": "u", "exp": now() - 3600 }), SECRET)),
            "token_expired"
        );
        assert_eq!(
            code(&hs(json!({ "sub": "u", "nbf": now() + 3600 }), SECRET)),
            "token_not_yet_valid"
        );
        assert_eq!(
            code(&hs(json!({ "sub": "u" }), "another-secret-0123456789")),
            "bad_signature"
        );
        assert_eq!(code(&hs(json!({ "name": "x" }), SECRET)), "no_subject");
        assert_eq!(code(&hs(json!({ "sub": "" }), SECRET)), "no_subject");
        assert_eq!(code(&hs(json!({ "sub": 7 }), SECRET)), "no_subject");
        assert_eq!(code("not.a.jwt"), "token_malformed");
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &json!({ "sub": "u" }),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let refusal = v.verify(&hs384).unwrap_err();
        assert_eq!(refusal.code, "bad_algorithm");
        assert!(refusal.message.contains("HS384"), "{refusal}");
        assert_eq!(v.verify_auth(&json!({})).unwrap_err().code, "token_missing");
        assert_eq!(
            v.verify_auth(&json!({ "token": 1 })).unwrap_err().code,
            "token_malformed"
        );
        assert!(matches!(
            Verifier::from_secret("short"),
            Err(KeyError::ShortSecret(5))
        ));
    }
}
