//! HTTP long-polling requests (hyper 1 client).

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{EngineOptions, Transport};
use crate::error::EngineError;
use crate::tls::Connector;

/// The pooled HTTP client used for polling requests.
pub(crate) type HttpClient = Client<Connector, Full<Bytes>>;

/// A new HTTP/1.1 client with a connection pool (`https` with `tls`).
pub(crate) fn client(tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> HttpClient {
    Client::builder(TokioExecutor::new()).build(Connector { tls })
}

async fn request(
    http: &HttpClient,
    opts: &EngineOptions,
    method: Method,
    sid: Option<&str>,
    body: Bytes,
) -> Result<Bytes, EngineError> {
    let uri = opts.uri(false, Transport::Polling, sid);
    let mut req = Request::builder().method(method.clone()).uri(&uri);
    if let Some(headers) = req.headers_mut() {
        headers.extend(opts.headers.clone());
        if method == Method::POST {
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain;charset=UTF-8"),
            );
        }
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| EngineError::Http(e.to_string()))?;
    let res = http
        .request(req)
        .await
        .map_err(|e| EngineError::Http(format!("{method} {uri}: {}", chain(&e))))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| EngineError::Http(e.to_string()))?
        .to_bytes();
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body);
        return Err(EngineError::Http(format!(
            "{method} answered {status}: {text}"
        )));
    }
    Ok(body)
}

/// An error and its sources (hyper's own message hides the cause: a TLS
/// certificate refused, say).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One long-polling GET: the payload the server had (or the handshake).
pub(crate) async fn get(
    http: &HttpClient,
    opts: &EngineOptions,
    sid: Option<&str>,
) -> Result<Bytes, EngineError> {
    request(http, opts, Method::GET, sid, Bytes::new()).await
}

/// One POST of a payload.
pub(crate) async fn post(
    http: &HttpClient,
    opts: &EngineOptions,
    sid: &str,
    body: Bytes,
) -> Result<(), EngineError> {
    request(http, opts, Method::POST, Some(sid), body)
        .await
        .map(drop)
}
