//! The server URL: where to connect, and which namespace it names.

use crate::error::Error;

/// A parsed server URL (`http://host:port/namespace?query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerUrl {
    /// `https` / `wss`.
    pub(crate) secure: bool,
    /// Host as written in URIs (IPv6 literals keep their brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The namespace named by the path (`/` when there is none).
    pub(crate) nsp: String,
    /// Query parameters, passed to the Engine.IO requests.
    pub(crate) query: Vec<(String, String)>,
}

impl ServerUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidUrl(format!("{url}: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("http") | Some("ws") => false,
            Some("https") | Some("wss") => true,
            _ => return Err(bad("the scheme must be http, https, ws or wss")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let nsp = match uri.path() {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        let query = uri.query().map(parse_query).unwrap_or_default();
        Ok(Self {
            secure,
            host,
            port,
            nsp,
            query,
        })
    }
}

/// Splits `a=1&b=2` into decoded pairs.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query component.
pub(crate) fn encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = ServerUrl::parse("http://127.0.0.1:3000/admin?token=a%20b&x").unwrap();
        assert_eq!(
            u,
            ServerUrl {
                secure: false,
                host: "127.0.0.1".into(),
                port: 3000,
                nsp: "/admin".into(),
                query: vec![("token".into(), "a b".into()), ("x".into(), String::new())],
            }
        );
        let u = ServerUrl::parse("wss://example.com").unwrap();
        assert_eq!((u.secure, u.port, u.nsp.as_str()), (true, 443, "/"));
        assert!(ServerUrl::parse("ftp://x").is_err());
        let mut s = String::new();
        encode("a b/é", &mut s);
        assert_eq!(s, "a%20b%2F%C3%A9");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
