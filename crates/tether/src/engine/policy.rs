//! Who may use the endpoint: the allowed transports, and the cross-origin
//! policy (which also filters requests by their `Origin`).

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::Body;

/// Which Engine.IO transports clients may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// HTTP long-polling.
    pub polling: bool,
    /// WebSocket.
    pub websocket: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Self {
            polling: true,
            websocket: true,
        }
    }
}

/// Cross-origin policy. The default allows no other origin: browsers may only
/// connect from pages served by the same origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed to connect (`https://app.example.com`); `*` allows any
    /// origin (without credentials).
    pub origins: Vec<String>,
    /// Whether browsers may send cookies and auth headers.
    pub credentials: bool,
}

impl Cors {
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        if self.origins.iter().any(|o| o == text) {
            Some(origin.clone())
        } else if !self.credentials && self.origins.iter().any(|o| o == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    }

    /// Whether a request with these headers may reach the endpoint: it has
    /// no `Origin` (not a browser, or a same-origin GET), its `Origin` is
    /// the request's own (its host and port are the `Host` header, or the
    /// first `X-Forwarded-Host` of a reverse proxy), or the
    /// origin is allowed (listed, or `*`). Browsers send `Origin` on every
    /// WebSocket upgrade and cross-origin request, so this refuses pages of
    /// other sites (cross-site WebSocket hijacking) even where CORS does not
    /// apply.
    pub fn allows_request(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(text) = origin.to_str() else {
            return false;
        };
        if self.origins.iter().any(|o| o == text || o == "*") {
            return true;
        }
        // Behind a reverse proxy that rewrites `Host`, the public host is in
        // `X-Forwarded-Host`. A page cannot forge either: browsers set `Host`
        // themselves, add no header to a WebSocket upgrade, and send a
        // cross-origin request with a custom header only after a preflight,
        // which the endpoint refuses to foreign origins.
        let forwarded = headers
            .get("x-forwarded-host")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split(',').next());
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        [host, forwarded]
            .into_iter()
            .flatten()
            .any(|host| same_origin(text, host))
    }

    /// Adds the CORS headers of an allowed origin to a response.
    pub(crate) fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if let Some(allowed) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            if self.credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }

    /// The answer to a preflight `OPTIONS` request.
    pub(crate) fn preflight(&self, origin: Option<&HeaderValue>) -> Response<Body> {
        let mut res = Response::new(Body::default());
        if self.allowed(origin).is_none() {
            *res.status_mut() = StatusCode::FORBIDDEN;
            return res;
        }
        *res.status_mut() = StatusCode::NO_CONTENT;
        let headers = res.headers_mut();
        self.apply(origin, headers);
        // The reference server's list: a browser that sends another method
        // than GET or POST gets the protocol's 400 ("Bad handshake method")
        // instead of an opaque CORS failure.
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, PUT, PATCH, POST, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        res
    }
}

/// True when `origin` (`http://host[:port]`) names the same host and port as
/// the `Host` header `host` (default ports omitted or not, any case).
fn same_origin(origin: &str, host: &str) -> bool {
    let (rest, default_port) = if let Some(rest) = origin.strip_prefix("http://") {
        (rest, ":80")
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (rest, ":443")
    } else {
        return false;
    };
    let trim = |h: &str| {
        let h = h.trim().trim_end_matches('.');
        h.strip_suffix(default_port)
            .unwrap_or(h)
            .to_ascii_lowercase()
    };
    !rest.contains('/') && trim(rest) == trim(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn origins_allowed_by_default_are_none_and_the_own() {
        let cors = Cors::default();
        assert!(cors.allows_request(&headers(None, "127.0.0.1:3000")));
        assert!(cors.allows_request(&headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000")));
        assert!(cors.allows_request(&headers(Some("http://Chat.Example"), "chat.example:80")));
        assert!(cors.allows_request(&headers(Some("https://chat.example"), "chat.example")));
        assert!(!cors.allows_request(&headers(Some("https://chat.example"), "chat.example:80")));
        assert!(!cors.allows_request(&headers(Some("http://127.0.0.1:3001"), "127.0.0.1:3000")));
        assert!(!cors.allows_request(&headers(Some("http://evil.example"), "chat.example")));
        assert!(!cors.allows_request(&headers(Some("null"), "chat.example")));
        let mut proxied = headers(Some("https://chat.example"), "127.0.0.1:3000");
        proxied.insert("x-forwarded-host", HeaderValue::from_static("chat.example"));
        assert!(cors.allows_request(&proxied));
        let mut no_host = HeaderMap::new();
        no_host.insert(header::ORIGIN, HeaderValue::from_static("http://a.example"));
        assert!(!cors.allows_request(&no_host));
    }

    #[test]
    fn listed_origins_and_star_are_allowed() {
        let listed = Cors {
            origins: vec!["http://app.example".into()],
            credentials: true,
        };
        assert!(listed.allows_request(&headers(Some("http://app.example"), "api.example")));
        assert!(!listed.allows_request(&headers(Some("http://evil.example"), "api.example")));
        let any = Cors {
            origins: vec!["*".into()],
            credentials: false,
        };
        assert!(any.allows_request(&headers(Some("http://evil.example"), "api.example")));
    }
}
