//! The HTTP API for backends (`/api/v1`): publish into namespaces and rooms,
//! read history pages, push into users' inboxes, with JSON in and out.
//!
//! On only when an API key is set (`--api-key`, `TETHER_API_KEY`, `api_key`
//! in the TOML file). Every request carries `Authorization: Bearer KEY`
//! (else 401). A publish is answered once the event is committed to the
//! store, with its position; an `idempotency_key` seen before answers the
//! first position with `"duplicate": true` and delivers nothing again. The
//! keys live in the store with their entries, so this holds across restarts
//! and on every node sharing the store, for as long as retention keeps the
//! entry. Errors are `{"error": "...", "field": "..."}`, the message naming
//! the bad field. The description of all of it is `openapi.json`, served at
//! `/api/v1/openapi.json`.

mod keys;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use tether::engine::Body;
use tether::store::{AppendOnce, StoreError};
use tether::{Args, ArgsExt, EmitError, HistoryError, SocketIo, MAX_HISTORY_PAGE};

pub(crate) use keys::same as same_secret;
pub use keys::ApiKeys;

/// The OpenAPI 3 description of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Where the API lives.
const PREFIX: &str = "/api/v1";
/// Entries of a history page when `limit` is not given.
const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Longest idempotency key, in bytes.
const MAX_KEY_BYTES: usize = 200;
/// Longest namespace, room, event or user name, in bytes.
const MAX_NAME_BYTES: usize = 200;
/// Most rooms one publish names.
const MAX_ROOMS: usize = 100;
/// Event names clients reserve for themselves (socket.io-client never hands
/// them to the app as events).
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];
/// The API's idempotency keys are stored under this prefix, so that they never
/// meet the chat's client message ids in the same namespace.
const KEY_PREFIX: &str = "api:";

/// An endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Publish,
    History,
    Inbox,
    OpenApi,
}

/// Every route: method, path (`{user}` is one path segment), endpoint. The
/// OpenAPI description lists exactly these (checked by a test).
const ROUTES: [(Method, &str, Endpoint); 4] = [
    (Method::POST, "/api/v1/publish", Endpoint::Publish),
    (Method::GET, "/api/v1/history", Endpoint::History),
    (Method::POST, "/api/v1/inbox/{user}", Endpoint::Inbox),
    (Method::GET, "/api/v1/openapi.json", Endpoint::OpenApi),
];

/// Why a request failed; each is an HTTP status and a message.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// No `Authorization: Bearer KEY` with a known key.
    #[error("missing or wrong API key: send `Authorization: Bearer KEY`")]
    Unauthorized,
    /// A field of the body or a query parameter is missing or bad.
    #[error("{field}: {why}")]
    BadField {
        field: Cow<'static, str>,
        why: String,
    },
    /// The body is not a JSON object.
    #[error("body: {0}")]
    BadBody(String),
    /// No such path under `/api/v1`.
    #[error("no endpoint {0} (see /api/v1/openapi.json)")]
    NotFound(String),
    /// The namespace is not served by this server.
    #[error("namespace: {0:?} is not a namespace of this server")]
    UnknownNamespace(String),
    /// The path exists, not with this method.
    #[error("{method} is not allowed on {path}: use {allow}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: &'static str,
    },
    /// The body is larger than `max_payload`.
    #[error("body: larger than max_payload ({0} bytes)")]
    TooLarge(usize),
    /// The body did not arrive within `body_read_timeout`.
    #[error("body: not received within {0:?}")]
    BodyTimeout(Duration),
    /// The store cannot keep or read anything now.
    #[error("{0}")]
    StoreDown(String),
    /// The server got its stop signal: nothing new is taken.
    #[error("shutting down: send it to another node, or again once this one is back")]
    ShuttingDown,
    /// Anything else (a bug, or data the store cannot decode).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn bad(field: impl Into<Cow<'static, str>>, why: impl Into<String>) -> Self {
        ApiError::BadField {
            field: field.into(),
            why: why.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadField { .. } | ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::UnknownNamespace(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::StoreDown(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field the error is about, for programs.
    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadField { field, .. } => Some(field),
            ApiError::UnknownNamespace(_) => Some("namespace"),
            ApiError::BadBody(_) | ApiError::TooLarge(_) | ApiError::BodyTimeout(_) => Some("body"),
            _ => None,
        }
    }

    fn response(&self) -> Response<Body> {
        #[derive(Serialize)]
        struct Error<'a> {
            error: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let mut res = json_response(
            self.status(),
            &Error {
                error: self.to_string(),
                field: self.field(),
            },
        );
        let headers = res.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tether\""),
                );
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::StoreDown(_) | ApiError::ShuttingDown => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

impl From<EmitError> for ApiError {
    fn from(e: EmitError) -> Self {
        match e {
            EmitError::Store(e) => store_error(e),
            EmitError::Serialize(e) => ApiError::bad("args", e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Store(e) => store_error(e),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    if e.is_unavailable() || matches!(e, StoreError::Closed) {
        tracing::warn!(error = %e, "api: store unavailable");
        ApiError::StoreDown(e.to_string())
    } else {
        tracing::error!(error = %e, "api: store failed");
        ApiError::Internal(e.to_string())
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = Response::new(Body::from(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// True for the paths the API answers (everything under `/api/v1`).
pub fn serves(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The endpoint of `method` and `path`, and the `{user}` segment if any.
fn route<'p>(method: &Method, path: &'p str) -> Result<(Endpoint, Option<&'p str>), ApiError> {
    let mut allowed: Vec<&'static str> = Vec::new();
    let mut found = None;
    for (m, template, endpoint) in &ROUTES {
        let Some(user) = matches(template, path) else {
            continue;
        };
        if m == method {
            found = Some((*endpoint, user));
        }
        allowed.push(m.as_str());
    }
    if let Some(found) = found {
        return Ok(found);
    }
    match allowed.first() {
        None => Err(ApiError::NotFound(path.to_owned())),
        Some(allow) => Err(ApiError::MethodNotAllowed {
            method: method.clone(),
            path: path.to_owned(),
            // One method per path.
            allow,
        }),
    }
}

/// `Some(segment)` when `path` matches `template` (`Some(None)` when the
/// template has no `{user}`).
fn matches<'p>(template: &str, path: &'p str) -> Option<Option<&'p str>> {
    match template.split_once("{user}") {
        None => (template == path).then_some(None),
        Some((before, after)) => {
            let rest = path.strip_prefix(before)?.strip_suffix(after)?;
            (!rest.is_empty() && !rest.contains('/')).then_some(Some(rest))
        }
    }
}

/// The HTTP API of one server.
pub struct Api {
    io: SocketIo,
    keys: ApiKeys,
    max_payload: usize,
    body_read_timeout: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("keys", &self.keys)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

/// `{"position": N, "duplicate": bool}`.
#[derive(Serialize)]
struct Stored {
    position: u64,
    duplicate: bool,
}

impl From<AppendOnce> for Stored {
    fn from(outcome: AppendOnce) -> Self {
        Stored {
            position: outcome.seq(),
            duplicate: outcome.is_duplicate(),
        }
    }
}

/// A history page.
#[derive(Serialize)]
struct Page {
    entries: Vec<PageEntry>,
    next: u64,
}

#[derive(Serialize)]
struct PageEntry {
    position: u64,
    event: String,
    args: Vec<Box<RawValue>>,
    rooms: Vec<String>,
    time_ms: i64,
}

impl Api {
    /// The API over `io`'s namespaces and store, accepting `keys`. Bodies
    /// over `max_payload` bytes are refused (413), and so are bodies slower
    /// than `body_read_timeout` (408).
    pub fn new(
        io: SocketIo,
        keys: ApiKeys,
        max_payload: usize,
        body_read_timeout: Duration,
    ) -> Self {
        Self {
            io,
            keys,
            max_payload,
            body_read_timeout,
        }
    }

    /// Answers a request whose path is under `/api/v1` (see [`serves`]).
    pub async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        match self.answer(req).await {
            Ok(res) => res,
            Err(e) => e.response(),
        }
    }

    async fn answer(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        if !self.keys.accepts(req.headers().get(header::AUTHORIZATION)) {
            return Err(ApiError::Unauthorized);
        }
        let path = req.uri().path().to_owned();
        let (endpoint, user) = route(req.method(), &path)?;
        match endpoint {
            Endpoint::OpenApi => {
                let mut res = Response::new(Body::from(Bytes::from_static(OPENAPI.as_bytes())));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(res)
            }
            Endpoint::History => {
                let page = self.history(req.uri().query().unwrap_or("")).await?;
                Ok(json_response(StatusCode::OK, &page))
            }
            Endpoint::Publish | Endpoint::Inbox if self.io.is_shutting_down() => {
                Err(ApiError::ShuttingDown)
            }
            Endpoint::Publish => {
                let body = self.read_body(req).await?;
                let stored = self.publish(&body).await?;
                Ok(json_response(StatusCode::OK, &stored))
            }
            Endpoint::Inbox => {
                let user = decode_user(user.unwrap_or_default())?;
                let body = self.read_body(req).await?;
                let stored = self.inbox(&user, &body).await?;
                Ok(json_response(StatusCode::OK, &stored))
            }
        }
    }

    /// The body, at most `max_payload` bytes, within `body_read_timeout`.
    async fn read_body(&self, req: Request<hyper::body::Incoming>) -> Result<Bytes, ApiError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_payload as u64) {
            return Err(ApiError::TooLarge(self.max_payload));
        }
        let body = Limited::new(req.into_body(), self.max_payload);
        match tokio::time::timeout(self.body_read_timeout, body.collect()).await {
            Err(_) => Err(ApiError::BodyTimeout(self.body_read_timeout)),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(ApiError::TooLarge(self.max_payload))
            }
            Ok(Err(e)) => Err(ApiError::BadBody(format!("cannot read it: {e}"))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    /// `POST /api/v1/publish`.
    async fn publish(&self, body: &[u8]) -> Result<Stored, ApiError> {
        let mut fields = Fields::parse(body)?;
        let namespace = fields
            .take::<String>("namespace", "a string")?
            .unwrap_or_else(|| "/".to_owned());
        check_namespace(&namespace)?;
        let rooms = fields
            .take::<Vec<String>>("rooms", "an array of strings")?
            .unwrap_or_default();
        if rooms.len() > MAX_ROOMS {
            return Err(ApiError::bad(
                "rooms",
                format!("at most {MAX_ROOMS} rooms, not {}", rooms.len()),
            ));
        }
        for (i, room) in rooms.iter().enumerate() {
            check_name(format!("rooms[{i}]"), room)?;
        }
        let event = fields.required::<String>("event", "a string")?;
        check_event(&event)?;
        let args = fields.args()?;
        let key = fields.idempotency_key()?;
        let append_position = fields
            .take::<bool>("append_position", "true or false")?
            .unwrap_or(false);
        fields.finish()?;

        let mut op = self
            .io
            .of(&namespace)
            .ok_or_else(|| ApiError::UnknownNamespace(namespace.clone()))?;
        for room in rooms {
            op = op.to(room);
        }
        let mut args = Args::from_raw(args, Vec::new());
        if append_position {
            args.push_seq();
        }
        let stored = match key {
            Some(key) => op
                .publish_once(format!("{KEY_PREFIX}{key}"), &event, args)
                .await?
                .into(),
            None => Stored {
                position: op.publish(&event, args).await?,
                duplicate: false,
            },
        };
        Ok(stored)
    }

    /// `GET /api/v1/history`.
    async fn history(&self, query: &str) -> Result<Page, ApiError> {
        let mut params: BTreeMap<Cow<'_, str>, Cow<'_, str>> = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !matches!(name.as_ref(), "namespace" | "room" | "after" | "limit") {
                return Err(ApiError::bad(
                    name.into_owned(),
                    "unknown parameter (the parameters are namespace, room, after, limit)",
                ));
            }
            if params.contains_key(&name) {
                return Err(ApiError::bad(name.into_owned(), "given twice"));
            }
            params.insert(name, value);
        }
        let namespace = params
            .get("namespace")
            .map_or("/", |n| n.as_ref())
            .to_owned();
        check_namespace(&namespace)?;
        let room = params.get("room").map(|r| r.to_string());
        if let Some(room) = &room {
            check_name("room", room)?;
        }
        let after = match params.get("after") {
            None => 0,
            Some(n) => n.parse::<u64>().map_err(|_| {
                ApiError::bad("after", format!("{n:?} is not a position (0 or more)"))
            })?,
        };
        let limit = match params.get("limit") {
            None => DEFAULT_HISTORY_LIMIT,
            Some(n) => match n.parse::<usize>() {
                Ok(0) | Err(_) => {
                    return Err(ApiError::bad(
                        "limit",
                        format!("{n:?} is not a number from 1 to {MAX_HISTORY_PAGE}"),
                    ))
                }
                Ok(n) => n.min(MAX_HISTORY_PAGE),
            },
        };
        if self.io.of(&namespace).is_none() {
            return Err(ApiError::UnknownNamespace(namespace));
        }
        let mut query = self.io.history(namespace).limit(limit);
        if let Some(room) = room {
            query = query.room(room);
        }
        let entries = query.after(after).await?;
        let next = entries.last().map_or(after, |e| e.seq);
        Ok(Page {
            entries: entries
                .into_iter()
                .map(|e| PageEntry {
                    position: e.seq,
                    event: e.event,
                    args: e.args.into_parts().0,
                    rooms: e.rooms,
                    time_ms: e.ts_ms,
                })
                .collect(),
            next,
        })
    }

    /// `POST /api/v1/inbox/{user}`.
    async fn inbox(&self, user: &str, body: &[u8]) -> Result<Stored, ApiError> {
        let mut fields = Fields::parse(body)?;
        let event = fields.required::<String>("event", "a string")?;
        check_event(&event)?;
        let args = fields.args()?;
        if fields.idempotency_key()?.is_some() {
            // The stores keep no idempotency record for inbox entries yet:
            // refused rather than silently stored twice on a retry.
            return Err(ApiError::bad(
                "idempotency_key",
                "not supported on the inbox yet (a retry would be stored twice): leave it out",
            ));
        }
        fields.finish()?;
        let inbox = self
            .io
            .inbox(user)
            .ok_or_else(|| ApiError::Internal("the server has no store".into()))?;
        let position = inbox.push(&event, Args::from_raw(args, Vec::new())).await?;
        Ok(Stored {
            position,
            duplicate: false,
        })
    }
}

/// The `{user}` path segment, percent-decoded.
fn decode_user(raw: &str) -> Result<String, ApiError> {
    let user = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad("user", "the path segment is not UTF-8 once decoded"))?;
    check_name("user", &user)?;
    Ok(user.into_owned())
}

fn check_namespace(namespace: &str) -> Result<(), ApiError> {
    if !namespace.starts_with('/') {
        return Err(ApiError::bad(
            "namespace",
            format!("{namespace:?} must start with `/`"),
        ));
    }
    check_name("namespace", namespace)
}

fn check_name(field: impl Into<Cow<'static, str>>, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad(
            field,
            format!("at most {MAX_NAME_BYTES} bytes, not {}", name.len()),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad(field, "must not hold control characters"));
    }
    Ok(())
}

fn check_event(event: &str) -> Result<(), ApiError> {
    check_name("event", event)?;
    if RESERVED_EVENTS.contains(&event) {
        return Err(ApiError::bad(
            "event",
            format!("{event:?} is reserved by Socket.IO clients"),
        ));
    }
    Ok(())
}

/// The fields of a JSON object body, taken one by one (each as raw JSON
/// until it is read, so `args` is forwarded as sent).
struct Fields<'a> {
    map: BTreeMap<String, &'a RawValue>,
}

impl<'a> Fields<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadBody("empty: send a JSON object".into()));
        }
        let map = serde_json::from_slice::<BTreeMap<String, &RawValue>>(body).map_err(|e| {
            ApiError::BadBody(if e.is_data() {
                "must be a JSON object".to_owned()
            } else {
                format!("not JSON: {e}")
            })
        })?;
        Ok(Self { map })
    }

    /// The field `name` as a `T`, if present and not `null`; `what` says
    /// what it must be.
    fn take<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
        what: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.map.remove(name) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|_| ApiError::bad(name, format!("must be {what}"))),
        }
    }

    fn required<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
        what: &str,
    ) -> Result<T, ApiError> {
        self.take(name, what)?
            .ok_or_else(|| ApiError::bad(name, format!("missing: must be {what}")))
    }

    /// `args`: an array of JSON values, kept as sent (default: none).
    fn args(&mut self) -> Result<Vec<Box<RawValue>>, ApiError> {
        let args = self
            .take::<Vec<Box<RawValue>>>("args", "an array")?
            .unwrap_or_default();
        // Tether's stand-in for an entry's own position (ArgsExt::push_seq):
        // a value written like it would be replaced on delivery.
        let placeholder = {
            let mut probe = Args::new();
            probe.push_seq();
            probe.into_parts().0
        };
        if let Some(i) = args
            .iter()
            .position(|a| placeholder.iter().any(|p| p.get() == a.get()))
        {
            return Err(ApiError::bad(
                format!("args[{i}]"),
                "this value is reserved by Tether (it stands for the position)",
            ));
        }
        Ok(args)
    }

    /// `idempotency_key`: a non-empty string of at most 200 bytes.
    fn idempotency_key(&mut self) -> Result<Option<String>, ApiError> {
        const NAME: &str = "idempotency_key";
        let key = self.take::<String>(NAME, "a string")?;
        if let Some(key) = &key {
            if key.is_empty() {
                return Err(ApiError::bad(NAME, "must not be empty"));
            }
            if key.len() > MAX_KEY_BYTES {
                return Err(ApiError::bad(
                    NAME,
                    format!("at most {MAX_KEY_BYTES} bytes, not {}", key.len()),
                ));
            }
        }
        Ok(key)
    }

    /// Fails on a field nobody took (a typo: `room` for `rooms`).
    fn finish(self) -> Result<(), ApiError> {
        match self.map.into_keys().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::bad(name, "unknown field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(serves("/api/v1"));
        assert!(serves("/api/v1/publish"));
        assert!(!serves("/api/v10"));
        assert!(!serves("/api"));
        fn ok(m: Method, p: &str) -> Result<(Endpoint, Option<&str>), String> {
            route(&m, p).map_err(|e| e.to_string())
        }
        assert_eq!(
            ok(Method::POST, "/api/v1/publish"),
            Ok((Endpoint::Publish, None))
        );
        assert_eq!(
            ok(Method::POST, "/api/v1/inbox/alice"),
            Ok((Endpoint::Inbox, Some("alice")))
        );
        assert!(matches!(
            route(&Method::GET, "/api/v1/publish"),
            Err(ApiError::MethodNotAllowed { allow: "POST", .. })
        ));
        for missing in ["/api/v1", "/api/v1/", "/api/v1/inbox/", "/api/v1/inbox/a/b"] {
            assert!(
                matches!(route(&Method::POST, missing), Err(ApiError::NotFound(_))),
                "{missing}"
            );
        }
    }

    /// The OpenAPI description lists exactly the routes served, and every
    /// `$ref` in it resolves.
    #[test]
    fn openapi_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn fields_name_what_is_wrong() {
        let mut f = Fields::parse(br#"{"event": 3, "rooms": "r", "x": 1}"#).unwrap();
        let e = f.required::<String>("event", "a string").unwrap_err();
        assert_eq!(e.to_string(), "event: must be a string");
        let e = f
            .take::<Vec<String>>("rooms", "an array of strings")
            .unwrap_err();
        assert_eq!(e.field(), Some("rooms"));
        assert_eq!(f.finish().unwrap_err().to_string(), "x: unknown field");
        assert!(matches!(Fields::parse(b"[1]"), Err(ApiError::BadBody(_))));
        assert!(matches!(Fields::parse(b"{"), Err(ApiError::BadBody(_))));
        assert!(matches!(Fields::parse(b" "), Err(ApiError::BadBody(_))));
        let mut f = Fields::parse(br#"{"args": [1, {"_tether_seq":true}]}"#).unwrap();
        assert_eq!(f.args().unwrap_err().field(), Some("args[1]"));
    }
}
