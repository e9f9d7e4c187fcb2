//! The HTTP API for backends (`/api/v1`, contract 1.5 of the shared notes),
//! against the real `tether serve` binary over HTTP on loopback:
//! - off without a key; 401 without a key or with a wrong one; several keys
//!   (flags, `TETHER_API_KEY`, the TOML file) all accepted, so one rotates;
//! - 400 naming the field, 404 for an unknown namespace, 405, 413 over
//!   `max_payload` (declared or chunked);
//! - a publish reaches the official socket.io-client (tests/node/api) as a
//!   stored event; its idempotency key retried, live and after a restart on
//!   the same SQLite file, answers the first position with `duplicate` and
//!   delivers nothing again;
//! - history pages give exactly what was published, in order; limits;
//! - inbox pushes are kept for their user across a restart;
//! - 503 while the store is down (its file deleted under the server);
//! - two nodes on one Redis share idempotency keys, delivery and history;
//! - the OpenAPI description served at `/api/v1/openapi.json` is a sound
//!   OpenAPI 3 document listing exactly the routes served, and every answer
//!   of every test here is checked against the schema it documents.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{dechunk, http_get, run, tether, Node, Server, TempDir, EXIT_BUDGET};
use serde_json::{json, Value};

const KEY: &str = "test-key-one-0123456789";
const KEY2: &str = "test-key-two-0123456789";

// --------------------------------------------------------------- http client --

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }
}

/// One HTTP/1.1 request (`Connection: close`), bounded in time. `body` is
/// sent with a Content-Length, or chunked when `chunked`.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    } else {
        head.push_str("\r\n");
    }
    let mut out = head.into_bytes();
    if chunked {
        for chunk in body.chunks(1000) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(body);
    }
    // The server may answer (413) and close before reading all of it.
    let _ = stream.write_all(&out);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status: {head:?}"));
    let is_chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    Reply {
        status,
        head: head.to_owned(),
        body: if is_chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

// ---------------------------------------------------------- openapi checking --

/// A client of one server's API that checks every answer against the
/// OpenAPI description the server serves.
struct Api {
    addr: SocketAddr,
    key: String,
    doc: Value,
    /// (method, path template, status) of every answer checked.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

impl Api {
    fn new(server: &Server, key: &str) -> Api {
        let reply = request(
            server.addr,
            "GET",
            "/api/v1/openapi.json",
            &[("Authorization", &format!("Bearer {key}"))],
            b"",
            false,
        );
        assert_eq!(reply.status, 200, "openapi.json: {reply:?}");
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
        let doc = reply.json();
        check_document(&doc);
        Api {
            addr: server.addr,
            key: key.to_owned(),
            doc,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.raw("POST", path, body.to_string().as_bytes())
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.raw("GET", path, b"")
    }

    /// A request with the key; its answer checked against the description.
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let reply = self.send(method, path, &[], body, false);
        (reply.status, reply.json())
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        chunked: bool,
    ) -> Reply {
        let auth = format!("Bearer {}", self.key);
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        let reply = request(self.addr, method, path, &all, body, chunked);
        self.check(method, path, &reply);
        reply
    }

    /// `reply` is what the description says `method path` answers with its
    /// status.
    fn check(&self, method: &str, path: &str, reply: &Reply) {
        let path = path.split('?').next().unwrap_or(path);
        let template = match path.strip_prefix("/api/v1/inbox/") {
            Some(user) if !user.is_empty() && !user.contains('/') => "/api/v1/inbox/{user}",
            _ => path,
        };
        let what = format!("{method} {path} -> {}: {}", reply.status, reply.body);
        let body: Value =
            serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        let Some(item) = self.doc["paths"].get(template) else {
            // Not an endpoint: still an error of the documented shape.
            assert!([401, 404].contains(&reply.status), "{what}");
            validate(
                &self.doc,
                &self.doc["components"]["schemas"]["Error"],
                &body,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            return;
        };
        let schema = match item.get(method.to_ascii_lowercase()) {
            Some(op) => {
                let response = op["responses"]
                    .get(reply.status.to_string())
                    .unwrap_or_else(|| panic!("{what}: status not documented"));
                let response = resolve(&self.doc, response);
                response["content"]["application/json"]["schema"].clone()
            }
            None => {
                // A method the path does not take: 405 (401 first without
                // a key), an Error.
                assert!([401, 405].contains(&reply.status), "{what}");
                json!({ "$ref": "#/components/schemas/Error" })
            }
        };
        assert!(!schema.is_null(), "{what}: no JSON schema documented");
        validate(&self.doc, &schema, &body).unwrap_or_else(|e| panic!("{what}: {e}"));
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_owned(), template.to_owned(), reply.status));
    }
}

/// Follows a `$ref` (local ones only, as the description uses).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {r} resolves to nothing"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// `value` against the subset of JSON Schema the description uses: type,
/// properties, required, additionalProperties, items, minimum, minLength,
/// maxLength, maxItems, `$ref`.
fn validate(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(doc, schema, value, "$")
}

fn validate_at(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => return Err(format!("{at}: unknown type {other} in the schema")),
        };
        if !ok {
            return Err(format!("{at}: {value} is not of type {ty}"));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if value.as_f64().is_some_and(|v| v < min) {
            return Err(format!("{at}: {value} is below {min}"));
        }
    }
    if let Some(s) = value.as_str() {
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if (s.chars().count() as u64) < min {
                return Err(format!("{at}: shorter than {min}"));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if s.chars().count() as u64 > max {
                return Err(format!("{at}: longer than {max}"));
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: required property {name} missing"));
            }
        }
        for (name, v) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => validate_at(doc, sub, v, &format!("{at}.{name}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: property {name} is not documented"))
                }
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                return Err(format!("{at}: more than {max} items"));
            }
        }
        if let Some(item) = schema.get("items") {
            for (i, v) in items.iter().enumerate() {
                validate_at(doc, item, v, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}

/// The description is an OpenAPI 3 document: version, info, operations
/// with responses, each with a description, and every `$ref` resolves.
fn check_document(doc: &Value) {
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi: {version:?}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().expect("path item") {
            assert!(
                ["get", "post", "put", "delete", "patch"].contains(&method.as_str()),
                "{path}: {method}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (status, response) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{status}"
                );
                assert!(
                    resolve(doc, response)["description"].is_string(),
                    "{method} {path} {status}: no description"
                );
            }
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let p = resolve(doc, parameter);
                assert!(p["name"].is_string() && p["in"].is_string(), "{p}");
                if p["in"] == "path" {
                    assert!(path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())));
                    assert_eq!(p["required"], true, "path parameters are required");
                }
            }
        }
    }
    fn refs(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("$ref") {
                    resolve(doc, v);
                }
                map.values().for_each(|v| refs(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(doc, v)),
            _ => {}
        }
    }
    refs(doc, doc);
}

// ------------------------------------------------------------------- helpers --

/// `tether serve --port 0 ARGS` in `dir`.
fn start(dir: &TempDir, args: &[&str]) -> Server {
    start_with(dir, args, &[])
}

fn start_with(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "warn"));
    Server::start(dir.path(), &all, &env)
}

fn publish(api: &Api, body: Value) -> (u64, bool) {
    let (status, answer) = api.post("/api/v1/publish", &body);
    assert_eq!(status, 200, "publish {body}: {answer}");
    (
        answer["position"].as_u64().expect("position"),
        answer["duplicate"].as_bool().expect("duplicate"),
    )
}

/// A 400 whose error names `field` (it starts with it, and `field` says it).
fn assert_names(status: u16, answer: &Value, field: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!("{field}: ")),
        "{what}: the error does not name `{field}`: {error:?}"
    );
    assert_eq!(answer["field"], field, "{what}: {answer}");
}

/// Runs a script of tests/node (bounded) and returns its verdict, checked:
/// exit 0 and `"ok": true`.
fn node(script: &str, args: &[&str]) -> Value {
    Node::run(script, args).verdict(Duration::from_secs(60))
}

// --------------------------------------------------------------------- tests --

/// Without a key there is no API; with keys, each is accepted and nothing
/// else is: flags (two at once, for a rotation), `TETHER_API_KEY`
/// (comma-separated) and the TOML file.
#[test]
fn keys_are_required_and_every_given_key_works() {
    let dir = TempDir::new("api-keys");
    let off = start(&dir, &["--store", "memory"]);
    let reply = request(
        off.addr,
        "GET",
        "/api/v1/history",
        &[("Authorization", &format!("Bearer {KEY}"))],
        b"",
        false,
    );
    assert_eq!(reply.status, 404, "no key, no API: {reply:?}");
    drop(off);

    let server = start(
        &dir,
        &["--store", "memory", "--api-key", KEY, "--api-key", KEY2],
    );
    let api = Api::new(&server, KEY);
    let refused = |headers: &[(&str, &str)], path: &str, method: &str| {
        let reply = request(
            server.addr,
            method,
            path,
            headers,
            b"{\"event\":\"e\"}",
            false,
        );
        api.check(method, path, &reply);
        assert_eq!(reply.status, 401, "{headers:?} {path}: {reply:?}");
        assert_eq!(
            reply.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"tether\"")
        );
        assert!(reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer KEY"));
    };
    let wrong = format!("Bearer {KEY}x");
    let short = format!("Bearer {}", &KEY[..KEY.len() - 1]);
    let basic = format!("Basic {KEY}");
    let bare = KEY.to_owned();
    for path in [
        "/api/v1/publish",
        "/api/v1/history",
        "/api/v1/openapi.json",
        "/api/v1/nothing",
    ] {
        refused(&[], path, "POST");
        refused(&[], path, "GET");
        for bad in [&wrong, &short, &basic, &bare] {
            refused(&[("Authorization", bad)], path, "POST");
        }
    }
    for key in [KEY, KEY2] {
        let (status, _) = Api::new(&server, key).get("/api/v1/history");
        assert_eq!(status, 200, "{key}");
    }
    let (status, answer) = api.get("/api/v1/nothing");
    assert_eq!(status, 404, "{answer}");
    drop(server);

    let from_env = start_with(
        &dir,
        &["--store", "memory"],
        &[("TETHER_API_KEY", &format!("{KEY},{KEY2}"))],
    );
    for key in [KEY, KEY2] {
        assert_eq!(
            Api::new(&from_env, key).get("/api/v1/history").0,
            200,
            "{key}"
        );
    }
    drop(from_env);

    let toml = dir.write("tether.toml", &format!("api_key = [\"{KEY2}\"]\n"));
    let from_file = start(
        &dir,
        &["--store", "memory", "--config", toml.to_str().unwrap()],
    );
    assert_eq!(Api::new(&from_file, KEY2).get("/api/v1/history").0, 200);
    let reply = request(
        from_file.addr,
        "GET",
        "/api/v1/history",
        &[("Authorization", &format!("Bearer {KEY}"))],
        b"",
        false,
    );
    assert_eq!(reply.status, 401, "only the file's key: {reply:?}");

    // A short key is refused at start, naming the setting, not the key.
    let out = run(
        &mut tether(dir.path(), &["serve", "--api-key", "short-key"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("api_key") && out.stderr.contains("--api-key"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("short-key"), "{}", out.stderr);
    // --check shows how many keys, not them.
    let out = run(
        &mut tether(
            dir.path(),
            &["serve", "--check"],
            &[("TETHER_API_KEY", &format!("{KEY},{KEY2}"))],
        ),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l == r#"api_key = ["(hidden)","(hidden)"]"#),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(KEY), "{}", out.stdout);
}

/// Bad requests get 400 with an error naming the field; an unknown
/// namespace 404; a wrong method 405; a body over max_payload 413.
#[test]
fn bad_requests_name_the_field() {
    let dir = TempDir::new("api-bad");
    let server = start(
        &dir,
        &[
            "--store",
            "memory",
            "--api-key",
            KEY,
            "--max-payload",
            "2048",
        ],
    );
    let api = Api::new(&server, KEY);
    let publish_cases: &[(&str, &str)] = &[
        ("{}", "event"),
        (r#"{"event": 1}"#, "event"),
        (r#"{"event": ""}"#, "event"),
        (r#"{"event": "connect"}"#, "event"),
        (r#"{"event": "e", "rooms": "r1"}"#, "rooms"),
        (r#"{"event": "e", "rooms": [1]}"#, "rooms"),
        (r#"{"event": "e", "rooms": ["ok", ""]}"#, "rooms[1]"),
        (r#"{"event": "e", "args": {"a": 1}}"#, "args"),
        (
            r#"{"event": "e", "args": [{"_tether_seq":true}]}"#,
            "args[0]",
        ),
        (
            r#"{"event": "e", "idempotency_key": ""}"#,
            "idempotency_key",
        ),
        (r#"{"event": "e", "idempotency_key": 7}"#, "idempotency_key"),
        (
            r#"{"event": "e", "append_position": "yes"}"#,
            "append_position",
        ),
        (r#"{"event": "e", "namespace": "chat"}"#, "namespace"),
        (r#"{"event": "e", "room": "r1"}"#, "room"),
        ("not json", "body"),
        ("[1, 2]", "body"),
        ("", "body"),
    ];
    for (body, field) in publish_cases {
        let (status, answer) = api.raw("POST", "/api/v1/publish", body.as_bytes());
        assert_names(status, &answer, field, body);
    }
    let long_key = "k".repeat(201);
    let (status, answer) = api.post(
        "/api/v1/publish",
        &json!({ "event": "e", "idempotency_key": long_key }),
    );
    assert_names(status, &answer, "idempotency_key", "a key of 201 bytes");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("page=2", "page"),
        ("limit=1&limit=2", "limit"),
        ("namespace=chat", "namespace"),
        ("room=", "room"),
    ] {
        let (status, answer) = api.get(&format!("/api/v1/history?{query}"));
        assert_names(status, &answer, field, query);
    }
    for (body, field) in [
        (r#"{"args": [1]}"#, "event"),
        (r#"{"event": "dm", "args": "x"}"#, "args"),
        (r#"{"event": "dm", "to": "bob"}"#, "to"),
        (
            r#"{"event": "dm", "idempotency_key": "k1"}"#,
            "idempotency_key",
        ),
    ] {
        let (status, answer) = api.raw("POST", "/api/v1/inbox/bob", body.as_bytes());
        assert_names(status, &answer, field, body);
    }
    let (status, answer) = api.raw("POST", "/api/v1/inbox/%FF", b"{\"event\":\"dm\"}");
    assert_names(status, &answer, "user", "a user that is not UTF-8");

    // Unknown namespace: 404, named.
    let (status, answer) = api.post(
        "/api/v1/publish",
        &json!({ "namespace": "/nowhere", "event": "e" }),
    );
    assert_eq!(
        (status, &answer["field"]),
        (404, &json!("namespace")),
        "{answer}"
    );
    let (status, answer) = api.get("/api/v1/history?namespace=%2Fnowhere");
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("/nowhere"));

    // Wrong method: 405 with Allow.
    for (method, path, allow) in [
        ("GET", "/api/v1/publish", "POST"),
        ("POST", "/api/v1/history", "GET"),
        ("DELETE", "/api/v1/inbox/bob", "POST"),
    ] {
        let reply = api.send(method, path, &[], b"", false);
        assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
        assert_eq!(reply.header("allow").as_deref(), Some(allow));
    }

    // Over max_payload (2048 bytes): 413, whether the length is declared or
    // the body comes chunked; just under it is taken.
    let big = json!({ "event": "e", "args": ["x".repeat(3000)] }).to_string();
    for path in ["/api/v1/publish", "/api/v1/inbox/bob"] {
        for chunked in [false, true] {
            let reply = api.send("POST", path, &[], big.as_bytes(), chunked);
            assert_eq!(reply.status, 413, "{path} chunked={chunked}: {reply:?}");
            assert_eq!(reply.json()["field"], "body");
            assert!(reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("max_payload"));
        }
    }
    let fits = json!({ "event": "e", "args": ["x".repeat(1900)] }).to_string();
    assert!(fits.len() <= 2048);
    let reply = api.send("POST", "/api/v1/publish", &[], fits.as_bytes(), true);
    assert_eq!(reply.status, 200, "{reply:?}");
    // Nothing of the refused requests was stored.
    let (_, page) = api.get("/api/v1/history");
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
}

/// A publish reaches the official client as a stored event; the same
/// idempotency key again, live or after a restart on the same SQLite file,
/// answers the first position, `duplicate`, and delivers nothing again;
/// `append_position` gives the chat's event shape; an event for a room
/// does not reach a client outside it.
#[test]
fn published_events_reach_the_official_client_once_across_a_restart() {
    let dir = TempDir::new("api-publish");
    let args = ["--store", "api.db", "--api-key", KEY];
    let server = start(&dir, &args);
    let api = Api::new(&server, KEY);
    let news =
        json!({ "event": "news", "args": ["hello", { "n": 1.5 }], "idempotency_key": "news-1" });
    let (p1, dup) = publish(&api, news.clone());
    assert!(!dup);
    assert_eq!(publish(&api, news.clone()), (p1, true), "retried at once");
    let (p2, _) = publish(
        &api,
        json!({ "event": "chat message", "args": ["typed by a backend"], "append_position": true }),
    );
    let (p3, _) = publish(
        &api,
        json!({ "event": "room only", "rooms": ["r1"], "args": [3], "idempotency_key": "room-1" }),
    );
    assert!(p1 < p2 && p2 < p3, "{p1} {p2} {p3}");
    drop(api);
    let mut server = server;
    assert!(server.stop(Duration::from_secs(20)).success());

    // Restarted on the same file: the keys are still known.
    let server = start(&dir, &args);
    let api = Api::new(&server, KEY);
    assert_eq!(publish(&api, news.clone()), (p1, true), "after a restart");
    let room = json!({ "event": "other", "rooms": ["r1"], "idempotency_key": "room-1" });
    assert_eq!(
        publish(&api, room),
        (p3, true),
        "the key, whatever the body"
    );
    // The same key in another namespace would be another key; the chat's
    // client ids never meet the API's keys.
    let verdict = node(
        "api/publish.mjs",
        &["--url", &server.url(), "--key", KEY, "--expect", "2"],
    );
    let received = verdict["received"].as_array().expect("received");
    let live = verdict["position"].as_u64().expect("position");
    assert!(live > p3, "{verdict}");
    let shapes: Vec<(Value, Vec<Value>, String)> = received
        .iter()
        .map(|r| {
            let items = r.as_array().unwrap();
            let offset = items.last().and_then(Value::as_str).unwrap_or_default();
            (
                items[0].clone(),
                items[1..items.len() - 1].to_vec(),
                offset.to_owned(),
            )
        })
        .collect();
    let want = [
        (json!("news"), vec![json!("hello"), json!({ "n": 1.5 })], p1),
        (
            json!("chat message"),
            vec![json!("typed by a backend"), json!(p2)],
            p2,
        ),
        (
            json!("live"),
            vec![json!("from a backend"), json!({ "n": 1 })],
            live,
        ),
    ];
    assert_eq!(
        shapes.len(),
        want.len(),
        "exactly these, once each: {received:?}"
    );
    for ((event, args, offset), (want_event, want_args, position)) in shapes.iter().zip(&want) {
        assert_eq!((event, args), (want_event, want_args), "{received:?}");
        assert!(
            offset.starts_with("t.") && offset.ends_with(&format!(".{position}")),
            "recovery offset {offset:?} of position {position}"
        );
    }
    // The history holds each once, too.
    let (_, page) = api.get("/api/v1/history");
    let positions: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [p1, p2, live]);
}

/// History pages give exactly what was published, oldest first, paged with
/// `after` = `next`; rooms have their own streams; the default page is 100
/// entries, and a page is at most 1000.
#[test]
fn history_pages_return_what_was_published_in_order() {
    let dir = TempDir::new("api-history");
    let server = start(&dir, &["--store", "memory", "--api-key", KEY]);
    let api = Api::new(&server, KEY);
    let mut everyone = Vec::new();
    let mut r1 = Vec::new();
    let mut r2 = Vec::new();
    let before = common_now_ms();
    for i in 0..33 {
        let (rooms, event) = match i % 5 {
            1 => (json!(["r1"]), "to r1"),
            3 => (json!(["r1", "r2"]), "to both"),
            _ => (json!([]), "to all"),
        };
        let args = json!([i, format!("message {i}"), { "i": i }]);
        let body = json!({ "event": event, "rooms": rooms, "args": args });
        let (position, _) = publish(&api, body);
        let entry = (position, event.to_owned(), args, rooms.clone());
        match i % 5 {
            1 => r1.push(entry),
            3 => {
                r1.push(entry.clone());
                r2.push(entry);
            }
            _ => everyone.push(entry),
        }
    }
    let after = common_now_ms();
    let read_all = |query: &str, limit: usize| -> Vec<(u64, String, Value, Value)> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let (status, page) = api.get(&format!(
                "/api/v1/history?{query}&after={from}&limit={limit}"
            ));
            assert_eq!(status, 200, "{page}");
            let entries = page["entries"].as_array().unwrap();
            assert!(entries.len() <= limit);
            for e in entries {
                let t = e["time_ms"].as_i64().unwrap();
                assert!((before..=after).contains(&t), "time_ms {t}");
                out.push((
                    e["position"].as_u64().unwrap(),
                    e["event"].as_str().unwrap().to_owned(),
                    e["args"].clone(),
                    e["rooms"].clone(),
                ));
            }
            let next = page["next"].as_u64().unwrap();
            match entries.last() {
                Some(last) => assert_eq!(next, last["position"].as_u64().unwrap()),
                None => {
                    assert_eq!(next, from, "an empty page's next is its after");
                    return out;
                }
            }
            from = next;
        }
    };
    assert_eq!(read_all("namespace=%2F", 10), everyone);
    assert_eq!(read_all("namespace=/", 7), everyone);
    assert_eq!(read_all("room=r1", 3), r1);
    assert_eq!(read_all("room=r2", 1000), r2);
    assert_eq!(read_all("room=nobody", 10), []);
    // The last page is short; past the end, empty.
    let (_, page) = api.get(&format!(
        "/api/v1/history?after={}&limit=5",
        everyone[everyone.len() - 2].0
    ));
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let (_, page) = api.get(&format!(
        "/api/v1/history?after={}",
        everyone.last().unwrap().0
    ));
    assert_eq!(page["entries"], json!([]));

    // Default 100 a page, at most 1000.
    for i in 0..1001 {
        publish(&api, json!({ "event": "bulk", "args": [i] }));
    }
    let total = everyone.len() + 1001;
    let (_, page) = api.get("/api/v1/history");
    assert_eq!(page["entries"].as_array().unwrap().len(), 100);
    assert_eq!(page["entries"][0]["position"], everyone[0].0);
    let (_, page) = api.get("/api/v1/history?limit=5000");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1000);
    let (_, rest) = api.get(&format!(
        "/api/v1/history?after={}&limit=1000",
        page["next"]
    ));
    assert_eq!(
        1000 + rest["entries"].as_array().unwrap().len(),
        total,
        "two pages hold everything"
    );
    let last = rest["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["event"], &last["args"]),
        (&json!("bulk"), &json!([1000]))
    );
}

fn common_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Inbox pushes are stored for their user, in order, and kept (across a
/// restart) while no device of the user acknowledged them. (A device of
/// the user acknowledging them: tests/auth.rs, with `--jwt-secret`.)
#[test]
fn inbox_pushes_are_kept_for_their_user() {
    let dir = TempDir::new("api-inbox");
    let args = ["--store", "inbox.db", "--api-key", KEY];
    let server = start(&dir, &args);
    let api = Api::new(&server, KEY);
    let push = |user: &str, body: Value| -> u64 {
        let (status, answer) = api.post(&format!("/api/v1/inbox/{user}"), &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["duplicate"], false);
        answer["position"].as_u64().unwrap()
    };
    let a1 = push("al%20ice", json!({ "event": "dm", "args": ["hi", 1] }));
    let b1 = push("bob", json!({ "event": "dm", "args": ["for bob"] }));
    let a2 = push(
        "al%20ice",
        json!({ "event": "invoice", "args": [{ "total": 12.5 }] }),
    );
    assert!(a1 < a2, "{a1} {a2}");
    assert!(b1 >= 1);
    drop(api);
    let mut server = server;
    assert!(server.stop(Duration::from_secs(20)).success());

    let pending = |user: &str| -> Vec<String> {
        let out = run(
            &mut tether(dir.path(), &["inbox", "--store", "inbox.db", user], &[]),
            EXIT_BUDGET,
        )
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
            .lines()
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                format!("{} {} {}", cols[0], cols[2], cols[3])
            })
            .collect()
    };
    assert_eq!(
        pending("al ice"),
        [
            format!("{a1} dm [\"hi\",1]"),
            format!("{a2} invoice [{{\"total\":12.5}}]")
        ]
    );
    assert_eq!(pending("bob"), [format!("{b1} dm [\"for bob\"]")]);

    let server = start(&dir, &args);
    let api = Api::new(&server, KEY);
    let (status, answer) = api.post("/api/v1/inbox/al%20ice", &json!({ "event": "dm" }));
    assert_eq!(status, 200, "{answer}");
    assert!(answer["position"].as_u64().unwrap() > a2);
    drop(server);
    assert_eq!(pending("al ice").len(), 3);
}

/// While the store is down (its file deleted under the server), publishes
/// and inbox pushes get 503 with the reason and Retry-After, and nothing is
/// acknowledged.
#[test]
fn store_down_is_503() {
    let dir = TempDir::new("api-503");
    let server = start(&dir, &["--store", "tether.db", "--api-key", KEY]);
    let api = Api::new(&server, KEY);
    publish(&api, json!({ "event": "kept" }));
    for name in ["tether.db", "tether.db-wal", "tether.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(server.addr, "/healthz").map(|(s, _)| s).ok() != Some(503) {
        assert!(Instant::now() < deadline, "/healthz never said 503");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (path, body) in [
        (
            "/api/v1/publish",
            json!({ "event": "lost", "idempotency_key": "l1" }),
        ),
        ("/api/v1/publish", json!({ "event": "lost" })),
        ("/api/v1/inbox/bob", json!({ "event": "lost" })),
    ] {
        let reply = api.send("POST", path, &[], body.to_string().as_bytes(), false);
        assert_eq!(reply.status, 503, "{path}: {reply:?}");
        assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("store unavailable") && error.contains("deleted or replaced"),
            "{error}"
        );
    }
}

/// The description at /api/v1/openapi.json is an OpenAPI 3 document with
/// exactly the routes served, and each route answers what it documents:
/// success and errors, checked against the document's schemas (every other
/// test checks its answers the same way).
#[test]
fn openapi_describes_every_route_and_the_answers_match() {
    let dir = TempDir::new("api-openapi");
    let server = start(&dir, &["--store", "memory", "--api-key", KEY]);
    let api = Api::new(&server, KEY);
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, item) in api.doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes.sort();
    assert_eq!(
        routes,
        [
            ("GET", "/api/v1/history"),
            ("GET", "/api/v1/openapi.json"),
            ("POST", "/api/v1/inbox/{user}"),
            ("POST", "/api/v1/publish"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
    // Each, for real: 200, 400, 401 and 405 where they apply.
    publish(&api, json!({ "event": "e", "args": [1], "rooms": ["r"] }));
    publish(&api, json!({ "event": "e", "idempotency_key": "k" }));
    publish(&api, json!({ "event": "e", "idempotency_key": "k" }));
    assert_eq!(api.get("/api/v1/history?room=r").0, 200);
    assert_eq!(api.get("/api/v1/history?limit=0").0, 400);
    assert_eq!(api.post("/api/v1/inbox/u", &json!({ "event": "e" })).0, 200);
    assert_eq!(api.post("/api/v1/inbox/u", &json!({})).0, 400);
    assert_eq!(api.post("/api/v1/publish", &json!({})).0, 400);
    assert_eq!(api.get("/api/v1/openapi.json").0, 200);
    for (method, path) in &routes {
        let path = path.replace("{user}", "u");
        let reply = request(server.addr, method, &path, &[], b"{}", false);
        api.check(method, &path, &reply);
        assert_eq!(reply.status, 401);
        let other = if method == "GET" { "POST" } else { "GET" };
        assert_eq!(api.send(other, &path, &[], b"", false).status, 405);
    }
    let seen = api.seen.lock().unwrap().clone();
    for (method, path) in &routes {
        for status in [200, 401] {
            assert!(
                seen.contains(&(method.clone(), path.clone(), status)),
                "{method} {path} {status} not exercised: {seen:?}"
            );
        }
    }
}

/// Two nodes on one Redis are one API: a key used on one node is known on
/// the other (same position, duplicate, no second delivery), the official
/// client on one node gets what is published through the other, and both
/// read the same history. Skipped (said on stderr) without Redis, except in
/// CI.
#[test]
fn two_nodes_on_redis_share_idempotency_keys_and_history() {
    let Some(scope) = tether_testkit::redis::Scope::new("api-two-nodes") else {
        return;
    };
    let dir = TempDir::new("api-redis");
    let args = [
        "--store",
        scope.url.as_str(),
        "--redis-prefix",
        scope.prefix.as_str(),
        "--api-key",
        KEY,
    ];
    let a = start(&dir, &args);
    let b = start(&dir, &args);
    let api_a = Api::new(&a, KEY);
    let api_b = Api::new(&b, KEY);
    let body = json!({ "event": "news", "args": ["once"], "idempotency_key": "n1" });
    let (p1, dup) = publish(&api_a, body.clone());
    assert!(!dup);
    assert_eq!(
        publish(&api_b, body.clone()),
        (p1, true),
        "the key, on the other node"
    );
    let (p2, _) = publish(
        &api_b,
        json!({ "event": "chat message", "args": ["via b"], "append_position": true }),
    );
    assert!(p2 > p1);
    // Listening on A, publishing live through B.
    let verdict = node(
        "api/publish.mjs",
        &[
            "--url",
            &a.url(),
            "--api",
            &b.url(),
            "--key",
            KEY,
            "--expect",
            "2",
        ],
    );
    let live = verdict["position"].as_u64().expect("position");
    let events: Vec<&Value> = verdict["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r[0])
        .collect();
    assert_eq!(
        events,
        [&json!("news"), &json!("chat message"), &json!("live")]
    );
    for api in [&api_a, &api_b] {
        let (_, page) = api.get("/api/v1/history");
        let positions: Vec<u64> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect();
        assert_eq!(positions, [p1, p2, live]);
    }
}

/// A body that does not arrive within `body_read_timeout` is answered 408
/// (the connection is not held forever), and nothing is stored.
#[test]
fn a_body_slower_than_the_timeout_is_408() {
    let dir = TempDir::new("api-408");
    let server = start(
        &dir,
        &[
            "--store",
            "memory",
            "--api-key",
            KEY,
            "--body-read-timeout",
            "500ms",
        ],
    );
    let api = Api::new(&server, KEY);
    let mut stream = TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    // Twenty bytes announced, ten sent, then nothing.
    write!(
        stream,
        "POST /api/v1/publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Length: 20\r\n\r\n{{\"event\": ",
        server.addr
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an answer");
    let reply = Reply {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_owned(),
        body: body.to_owned(),
    };
    api.check("POST", "/api/v1/publish", &reply);
    assert_eq!(reply.status, 408, "{text}");
    assert_eq!(reply.json()["field"], "body");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    let (_, page) = api.get("/api/v1/history");
    assert_eq!(page["entries"], json!([]));
}
