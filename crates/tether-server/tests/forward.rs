//! Client events to a backend (`--forward-url`), against the real `tether
//! serve` binary, the official socket.io-client (tests/node/forward) and a
//! backend in this test (hyper on loopback) that records every request:
//! - every event the server does not handle itself is POSTed as JSON
//!   (namespace, event, args, the token's user, the socket, the message id,
//!   which also comes as `Idempotency-Key`); the chat's own `chat message`
//!   is not;
//! - a 2xx `{"ack": [..]}` acks the client with those arguments; a 500, 503,
//!   429 or an answer slower than `--forward-timeout` acks
//!   `{"error", "retry": true}`, so the client sends it again with the same
//!   id until it is acked (every attempt reached the backend: calls and
//!   acks counted); a 400 acks `retry: false`;
//! - the official client's own `retries` (a resend when no ack came within
//!   its `ackTimeout`) get the event acked in the end, the backend seeing
//!   each attempt;
//! - `/metrics` counts requests, failures by reason and latency;
//! - at most `--forward-concurrency` requests are in flight;
//! - the settings are checked (http:// only, a timeout above 0).

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{http_get, metric, parse_prometheus, run, tether, Node, Server, TempDir, EXIT_BUDGET};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "test-jwt-secret-0123456789abcdef";

/// What the backend does with one request.
enum Plan {
    /// 200 `{"ack": [{"ok": true, "id", "attempt"}]}`.
    Ack,
    /// This status, no ack.
    Status(u16),
    /// Waits this long, then acks.
    Slow(Duration),
    /// Waits (at most 3 s) until this many requests are in flight, then acks.
    Gate(usize),
}

/// How the backend answers: by the request's body and its attempt (1 for
/// the first request of that event and id).
type PlanFn = dyn Fn(&Value, usize) -> Plan + Send + Sync;

/// One request the backend got.
#[derive(Debug, Clone)]
struct Call {
    body: Value,
    idempotency_key: Option<String>,
    content_type: Option<String>,
}

/// The test's backend: records every request, answers by plan.
#[derive(Clone)]
struct Backend {
    calls: Arc<Mutex<Vec<Call>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    plan: Arc<PlanFn>,
}

/// Counts a request in flight while it lives.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Backend {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    async fn handle(
        self,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (idempotency_key, content_type) = (header("idempotency-key"), header("content-type"));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(self.in_flight.clone());
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let attempt = {
            let mut calls = self.calls.lock().unwrap();
            let attempt = 1 + calls
                .iter()
                .filter(|c| c.body["event"] == body["event"] && c.body["id"] == body["id"])
                .count();
            calls.push(Call {
                body: body.clone(),
                idempotency_key,
                content_type,
            });
            attempt
        };
        let ack = || {
            let answer = json!({ "ack": [{ "ok": true, "id": body["id"], "attempt": attempt }] });
            Response::new(Full::new(Bytes::from(answer.to_string())))
        };
        Ok(match (self.plan)(&body, attempt) {
            Plan::Ack => ack(),
            Plan::Status(status) => {
                let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                res
            }
            Plan::Slow(wait) => {
                tokio::time::sleep(wait).await;
                ack()
            }
            Plan::Gate(n) => {
                let deadline = Instant::now() + Duration::from_secs(3);
                while self.in_flight.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ack()
            }
        })
    }
}

/// Starts a backend on loopback in `rt`: its address and handle.
fn backend(
    rt: &tokio::runtime::Runtime,
    plan: impl Fn(&Value, usize) -> Plan + Send + Sync + 'static,
) -> (SocketAddr, Backend) {
    let backend = Backend {
        calls: Arc::default(),
        in_flight: Arc::default(),
        max_in_flight: Arc::default(),
        plan: Arc::new(plan),
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the backend");
    let addr = listener.local_addr().unwrap();
    let serving = backend.clone();
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let backend = serving.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| backend.clone().handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, backend)
}

/// Runs a script of tests/node (bounded) and returns its verdict, checked:
/// exit 0 and `"ok": true`.
fn node(script: &str, args: &[&str]) -> Value {
    Node::run(script, args).verdict(Duration::from_secs(60))
}

fn start(dir: &TempDir, args: &[&str]) -> Server {
    let mut all = vec!["--port", "0", "--store", "memory"];
    all.extend_from_slice(args);
    Server::start(dir.path(), &all, &[("RUST_LOG", "warn")])
}

/// The value of `name{reason="..."}`.
fn labelled(samples: &[common::Sample], name: &str, reason: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("reason").map(String::as_str) == Some(reason))
        .map(|s| s.value)
}

/// Retries after a 500, a 503 then a 429, and an answer slower than the
/// timeout are acked in the end, each attempt having reached the backend;
/// a 400 is final; a no-ack event is posted; the chat's own event is not.
#[test]
fn events_reach_the_backend_and_every_retry_is_acked_in_the_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, backend) = backend(&rt, |body, attempt| {
        match (body["id"].as_str().unwrap_or(""), attempt) {
            ("m-1", 1) => Plan::Status(500),
            ("m-2", 1) => Plan::Slow(Duration::from_secs(3)),
            ("m-3", 1) => Plan::Status(503),
            ("m-3", 2) => Plan::Status(429),
            ("m-bad", _) => Plan::Status(400),
            _ => Plan::Ack,
        }
    });
    let dir = TempDir::new("forward");
    let url = format!("http://{addr}/events");
    let server = start(
        &dir,
        &[
            "--jwt-secret",
            SECRET,
            "--forward-url",
            &url,
            "--forward-timeout",
            "500ms",
        ],
    );
    let token = encode(
        &Header::default(),
        &json!({ "sub": "alice", "exp": jsonwebtoken::get_current_timestamp() + 600 }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let ids = ["m-0", "m-1", "m-2", "m-3", "m-bad"];
    let verdict = node(
        "forward/events.mjs",
        &[
            "--url",
            &server.url(),
            "--token",
            &token,
            "--ids",
            &json!(ids).to_string(),
            "--extra",
            "1",
        ],
    );
    let results = &verdict["results"];
    let ok = |id: &str, attempt: u64| json!({ "ok": true, "id": id, "attempt": attempt });
    let retry = |why: &str| json!({ "error": format!("forward: {why}, retry"), "retry": true });
    let expected = json!({
        "m-0": { "attempts": 1, "errors": [], "ack": ok("m-0", 1), "noAnswer": 0 },
        "m-1": { "attempts": 2, "errors": [retry("the backend answered 500 Internal Server Error")],
                 "ack": ok("m-1", 2), "noAnswer": 0 },
        "m-2": { "attempts": 2, "errors": [retry("the backend did not answer within 500ms")],
                 "ack": ok("m-2", 2), "noAnswer": 0 },
        "m-3": { "attempts": 3, "errors": [retry("the backend answered 503 Service Unavailable"),
                                           retry("the backend answered 429 Too Many Requests")],
                 "ack": ok("m-3", 3), "noAnswer": 0 },
        "m-bad": { "attempts": 1, "noAnswer": 0, "ack": null, "errors": [
            { "error": "forward: the backend answered 400 Bad Request", "retry": false }] },
    });
    assert_eq!(results, &expected, "{verdict}");

    // The note has no ack: wait (bounded) until the backend got it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend.calls().iter().any(|c| c.body["event"] == "note") {
        assert!(
            Instant::now() < deadline,
            "the note never reached the backend"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let calls = backend.calls();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for call in &calls {
        let body = &call.body;
        assert_eq!(body["namespace"], "/", "{body}");
        assert_eq!(body["user"], "alice", "{body}");
        assert!(
            body["socket"].as_str().is_some_and(|s| !s.is_empty()),
            "{body}"
        );
        assert_eq!(call.content_type.as_deref(), Some("application/json"));
        match body["event"].as_str() {
            Some("order") => {
                let id = body["id"].as_str().expect("an order's id");
                let n = ids.iter().position(|i| *i == id).unwrap();
                assert_eq!(body["args"], json!([{ "n": n }, id]), "{body}");
                assert_eq!(call.idempotency_key.as_deref(), Some(id));
                *per_id.entry(id.to_owned()).or_default() += 1;
            }
            Some("note") => {
                assert_eq!(body["args"], json!(["fire and forget"]), "{body}");
                assert_eq!(body["id"], Value::Null, "{body}");
                assert_eq!(call.idempotency_key, None);
            }
            _ => panic!("only order and note are forwarded, not {body}"),
        }
    }
    // Every attempt the client made reached the backend, once.
    for id in ids {
        assert_eq!(
            per_id.get(id).copied(),
            results[id]["attempts"].as_u64().map(|n| n as usize),
            "{id}: backend calls vs attempts"
        );
    }
    assert_eq!(calls.len(), 1 + 2 + 2 + 3 + 1 + 1, "{calls:?}");

    // /metrics: requests, failures by reason, latency of every event.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let (status, text) = http_get(server.addr, "/metrics").expect("scrape /metrics");
        assert_eq!(status, 200);
        let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        if metric(&samples, "tether_forward_latency_seconds_count") == Some(10.0) {
            break samples;
        }
        assert!(Instant::now() < deadline, "latency count not 10:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        metric(&samples, "tether_forward_requests_total"),
        Some(10.0)
    );
    let failures = |reason| labelled(&samples, "tether_forward_failures_total", reason);
    assert_eq!(failures("status"), Some(4.0));
    assert_eq!(failures("timeout"), Some(1.0));
    assert_eq!(failures("unreachable"), Some(0.0));
    assert_eq!(failures("busy"), Some(0.0));
    assert_eq!(failures("bad_answer"), Some(0.0));
    drop(server);
    drop(rt);
}

/// The official client's own `retries`: an answer slower than its
/// `ackTimeout` makes it send the event again (same id), and the second
/// attempt's ack is the one it gets; the backend saw both.
#[test]
fn the_official_clients_retries_are_acked_in_the_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, backend) = backend(&rt, |body, attempt| {
        match (body["id"].as_str().unwrap_or(""), attempt) {
            ("r-1", 1) => Plan::Slow(Duration::from_millis(1500)),
            _ => Plan::Ack,
        }
    });
    let dir = TempDir::new("forward-retries");
    let url = format!("http://{addr}/");
    let server = start(&dir, &["--forward-url", &url, "--forward-timeout", "10s"]);
    let verdict = node(
        "forward/events.mjs",
        &[
            "--url",
            &server.url(),
            "--ids",
            r#"["r-0","r-1","r-2"]"#,
            "--retries",
            "3",
            "--ackTimeout",
            "500",
        ],
    );
    let ok = |id: &str, attempt: u64| json!({ "ok": true, "id": id, "attempt": attempt });
    for (id, attempt) in [("r-0", 1), ("r-1", 2), ("r-2", 1)] {
        assert_eq!(verdict["results"][id]["ack"], ok(id, attempt), "{verdict}");
        assert_eq!(verdict["results"][id]["errors"], json!([]), "{verdict}");
    }
    // The slow first attempt is answered too (late: the client dropped
    // that ack id); wait for it so that the counts are final.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.in_flight.load(Ordering::SeqCst) > 0 {
        assert!(Instant::now() < deadline, "a request still in flight");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ids: Vec<Value> = backend
        .calls()
        .iter()
        .map(|c| c.body["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!("r-0"), json!("r-1"), json!("r-1"), json!("r-2")]
    );
    drop(server);
    drop(rt);
}

/// With `--forward-concurrency 2`, five clients sending at once never have
/// more than two requests in flight (the backend holds each until a second
/// one is there, so two is reached), and every event is acked once.
#[test]
fn requests_in_flight_are_bounded() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, backend) = backend(&rt, |_, _| Plan::Gate(2));
    let dir = TempDir::new("forward-bound");
    let url = format!("http://{addr}/");
    let server = start(
        &dir,
        &[
            "--forward-url",
            &url,
            "--forward-concurrency",
            "2",
            "--forward-timeout",
            "20s",
        ],
    );
    let verdict = node(
        "forward/events.mjs",
        &[
            "--url",
            &server.url(),
            "--sockets",
            "5",
            "--ids",
            r#"["a","b","c"]"#,
            "--ackTimeout",
            "30000",
        ],
    );
    let results = verdict["results"].as_object().expect("results");
    assert_eq!(results.len(), 15, "{verdict}");
    for (id, result) in results {
        assert_eq!(result["attempts"], 1, "{id}: {result}");
        assert_eq!(result["errors"], json!([]), "{id}: {result}");
        assert_eq!(result["ack"]["id"], id.as_str(), "{id}: {result}");
    }
    let calls = backend.calls();
    assert_eq!(calls.len(), 15);
    assert!(
        calls.iter().all(|c| c.body["user"].is_null()),
        "anonymous: no user"
    );
    assert_eq!(backend.max_in_flight.load(Ordering::SeqCst), 2);
    drop(server);
    drop(rt);
}

/// The settings: defaults shown by `--check`; https://, a URL with a
/// password or without a host, a zero timeout and a zero concurrency are
/// refused naming the setting.
#[test]
fn forward_settings_are_checked() {
    let dir = TempDir::new("forward-settings");
    let check = |args: &[&str]| {
        let mut all = vec!["serve", "--check", "--store", "memory"];
        all.extend_from_slice(args);
        run(&mut tether(dir.path(), &all, &[]), EXIT_BUDGET).unwrap()
    };
    let ok = check(&[]);
    assert!(ok.status.success(), "{ok:?}");
    for line in [
        "forward_url = \"\"",
        "forward_timeout = \"5s\"",
        "forward_concurrency = 64",
    ] {
        assert!(ok.stdout.lines().any(|l| l == line), "no {line}: {ok:?}");
    }
    let set = check(&["--forward-url", "http://127.0.0.1:9/events"]);
    assert!(set.status.success(), "{set:?}");
    for (args, wants) in [
        (
            vec!["--forward-url", "https://backend.example/events"],
            vec!["--forward-url", "https:// is not supported"],
        ),
        (
            vec!["--forward-url", "http://user:hunter2@127.0.0.1:9/"],
            vec!["--forward-url", "no user or password"],
        ),
        (
            vec!["--forward-url", "/events"],
            vec!["--forward-url", "give an http://host[:port]/path URL"],
        ),
        (
            vec!["--forward-timeout", "0s"],
            vec!["--forward-timeout", "above 0"],
        ),
        (
            vec!["--forward-timeout", "forever"],
            vec!["--forward-timeout", "above 0"],
        ),
        (
            vec!["--forward-concurrency", "0"],
            vec!["--forward-concurrency", "at least 1"],
        ),
    ] {
        let out = check(&args);
        assert!(!out.status.success(), "{args:?} accepted: {out:?}");
        for want in wants {
            assert!(
                out.stderr.contains(want),
                "{args:?}: no {want:?} in {out:?}"
            );
        }
        assert!(
            !out.stderr.contains("hunter2"),
            "a password echoed: {out:?}"
        );
    }
}
