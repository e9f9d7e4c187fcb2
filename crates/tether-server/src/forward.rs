//! Client events to a backend (`--forward-url URL`): every event of a client
//! that the server does not handle itself (the chat's `chat message` it
//! does) is POSTed to URL as JSON, and the client's ack is answered from the
//! backend's answer.
//!
//! The request body:
//!
//! ```json
//! {"namespace": "/", "event": "order", "args": [{"sku": 7}, "m-42"],
//!  "user": "alice", "socket": "Xk3…", "id": "m-42"}
//! ```
//!
//! `user` is the token's `sub` (null without `--jwt-*`), `socket` the socket
//! id, and `id` the client's message id: the event's second argument when
//! it is a string, as the chat's `emit("chat message", content,
//! clientOffset)` sends it (null otherwise). A client retries with the same
//! id, so the backend keys its idempotency on it (delivery to the backend is
//! at least once); it also comes as the `Idempotency-Key` header.
//!
//! A 2xx answer `{"ack": [..]}` acks the client with those arguments (an
//! empty body or no `ack`: an ack without arguments). Anything else acks
//! with one argument `{"error": "...", "retry": true|false}`: `retry` is true
//! for a timeout, an unreachable backend, a 5xx, 408 or 429, or no room in
//! the concurrency bound within the timeout (send it again, same id); false
//! for another status or an answer that is not `{"ack": [..]}`. An event
//! without an ack request is posted all the same; its answer is dropped.
//!
//! At most `forward_concurrency` requests are in flight; an event waits for
//! room (the client's next events wait behind it, in order), and the wait
//! counts in `forward_timeout`, the bound of the whole exchange.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tether::{AckSender, Args, Event, Socket};
use tokio::sync::Semaphore;

/// POSTs attempted (counter).
pub const REQUESTS: &str = "tether_forward_requests_total";
/// POSTs that failed, by `reason`: `timeout`, `unreachable`, `status`,
/// `bad_answer`, `busy` (counter).
pub const FAILURES: &str = "tether_forward_failures_total";
/// Time from the event to the backend's answer (histogram, seconds).
pub const LATENCY: &str = "tether_forward_latency_seconds";
/// The reasons of [`FAILURES`].
const REASONS: [&str; 5] = ["timeout", "unreachable", "status", "bad_answer", "busy"];

/// Why an event was not answered by the backend.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No answer within the timeout.
    #[error("the backend did not answer within {0:?}")]
    Timeout(Duration),
    /// No connection, or it broke.
    #[error("the backend is unreachable")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    /// The body could not be read.
    #[error("the backend's answer could not be read")]
    Body,
    /// Not a 2xx.
    #[error("the backend answered {0}")]
    Status(http::StatusCode),
    /// A 2xx whose body is not `{"ack": [..]}`.
    #[error("the backend's answer is not {{\"ack\": [..]}}")]
    BadAnswer,
    /// No room in the concurrency bound within the timeout.
    #[error("too many events in flight to the backend")]
    Busy,
    /// The event has binary arguments, which JSON cannot carry.
    #[error("binary arguments are not forwarded")]
    Binary,
}

impl ForwardError {
    /// True when sending the event again may succeed.
    pub fn retry(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Unreachable(_) | Self::Body | Self::Busy => true,
            Self::Status(s) => {
                s.is_server_error()
                    || *s == http::StatusCode::REQUEST_TIMEOUT
                    || *s == http::StatusCode::TOO_MANY_REQUESTS
            }
            Self::BadAnswer | Self::Binary => false,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Unreachable(_) | Self::Body => "unreachable",
            Self::Status(_) => "status",
            Self::BadAnswer | Self::Binary => "bad_answer",
            Self::Busy => "busy",
        }
    }

    /// The error ack: `{"error": "forward: ...", "retry": bool}`.
    fn ack(&self) -> serde_json::Value {
        let retry = self.retry();
        let then = if retry { ", retry" } else { "" };
        json!({ "error": format!("forward: {self}{then}"), "retry": retry })
    }
}

/// What a 2xx answer holds.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    ack: Option<Vec<Box<RawValue>>>,
}

/// The forwarding of one server.
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
    timeout: Duration,
    permits: Arc<Semaphore>,
    /// Largest answer read.
    max_answer: usize,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("url", &self.inner.url)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Forwards to `url` (an `http://` URL, checked by the settings), at
    /// most `concurrency` requests at once, each within `timeout`; answers
    /// over `max_answer` bytes are refused.
    pub fn new(url: Uri, timeout: Duration, concurrency: usize, max_answer: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        describe();
        Self {
            inner: Arc::new(Inner {
                client,
                url,
                timeout,
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                max_answer,
            }),
        }
    }

    /// Sends every event of `socket` without a handler of its own to the
    /// backend.
    pub fn attach(&self, socket: &Socket) {
        let forwarder = self.clone();
        socket.on_fallback(move |socket: Socket, ev: Event| {
            let forwarder = forwarder.clone();
            async move { forwarder.forward(&socket, ev).await }
        });
    }

    /// Waits for room in the concurrency bound (the socket's next events
    /// wait behind), then posts the event from a task of its own and acks
    /// the client with the answer.
    async fn forward(&self, socket: &Socket, mut ev: Event) {
        let started = Instant::now();
        let ack = ev.take_ack();
        let body = match request_body(socket, &ev) {
            Ok(body) => body,
            Err(e) => return answer(ack, Err(e), started),
        };
        let permits = self.inner.permits.clone();
        let permit = tokio::time::timeout(self.inner.timeout, permits.acquire_owned()).await;
        // The permit moves into the task: given back when the request ends.
        let permit = match permit {
            Ok(Ok(permit)) => permit,
            // Timed out, or the semaphore closed (never: nothing closes it).
            _ => return answer(ack, Err(ForwardError::Busy), started),
        };
        let this = self.clone();
        let id = body.id.clone();
        tokio::spawn(async move {
            let left = this.inner.timeout.saturating_sub(started.elapsed());
            let result = match tokio::time::timeout(left, this.post(body.json, id)).await {
                Ok(result) => result,
                Err(_) => Err(ForwardError::Timeout(this.inner.timeout)),
            };
            drop(permit);
            answer(ack, result, started);
        });
    }

    async fn post(&self, json: Vec<u8>, id: Option<String>) -> Result<Args, ForwardError> {
        let mut request = Request::post(self.inner.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("tether/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(id) = id.filter(|id| http::HeaderValue::from_str(id).is_ok()) {
            request = request.header("idempotency-key", id);
        }
        let request = request
            .body(Full::new(Bytes::from(json)))
            .map_err(|_| ForwardError::BadAnswer)?;
        metrics::counter!(REQUESTS).increment(1);
        let response = self
            .inner
            .client
            .request(request)
            .await
            .map_err(ForwardError::Unreachable)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), self.inner.max_answer)
            .collect()
            .await
            .map_err(|_| ForwardError::Body)?
            .to_bytes();
        if !status.is_success() {
            return Err(ForwardError::Status(status));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Args::new());
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| ForwardError::BadAnswer)?;
        Ok(Args::from_raw(answer.ack.unwrap_or_default(), Vec::new()))
    }
}

/// The request body and the message id.
struct Body {
    json: Vec<u8>,
    id: Option<String>,
}

fn request_body(socket: &Socket, ev: &Event) -> Result<Body, ForwardError> {
    let args = ev.args();
    if !args.attachments().is_empty() {
        return Err(ForwardError::Binary);
    }
    let id = args.get::<String>(1).ok();
    let body = json!({
        "namespace": socket.nsp(),
        "event": ev.name(),
        "args": args.values(),
        "user": socket.user(),
        "socket": socket.id(),
        "id": id,
    });
    let json = serde_json::to_vec(&body).map_err(|_| ForwardError::BadAnswer)?;
    Ok(Body { json, id })
}

/// Acks the client with the backend's answer, or the error; counts it.
fn answer(ack: Option<AckSender>, result: Result<Args, ForwardError>, started: Instant) {
    metrics::histogram!(LATENCY).record(started.elapsed().as_secs_f64());
    let reply = match result {
        Ok(args) => args,
        Err(e) => {
            metrics::counter!(FAILURES, "reason" => e.reason()).increment(1);
            tracing::debug!(error = %e, "event not forwarded");
            let mut args = Args::new();
            if args.push(&e.ack()).is_err() {
                return;
            }
            args
        }
    };
    if let Some(ack) = ack {
        if let Err(e) = ack.send(reply) {
            tracing::debug!(error = %e, "forward ack not sent");
        }
    }
}

/// Describes the forwarding metrics and registers them at zero.
fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        Unit::Count,
        "Events POSTed to the --forward-url backend"
    );
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Events the backend did not answer with a 2xx {\"ack\": [..]}, by reason"
    );
    describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time from a client's event to the backend's answer (or the failure)"
    );
    metrics::counter!(REQUESTS).increment(0);
    for reason in REASONS {
        metrics::counter!(FAILURES, "reason" => reason).increment(0);
    }
}
