//! Authenticated users (`--jwt-secret`, `--jwt-public-key`), against the
//! real `tether serve` binary with the official socket.io-client
//! (tests/node/auth):
//! - a valid HS256 token connects; the chat shows its `name` (else its
//!   `sub`), whatever name the client gives;
//! - a missing, expired, not-yet-valid, badly signed, malformed or
//!   subject-less token gets a CONNECT_ERROR whose message and code say
//!   which, and its connection receives no event before the refusal (it
//!   asked for every stored message); a session recovered with an expired
//!   token, or with another user's valid one, is refused too and gets
//!   nothing of what it missed; with its owner's valid token it recovers
//!   and gets what it missed;
//! - RS256 and ES256 key pairs made here (Node's crypto, rcgen) work with
//!   `--jwt-public-key`; an HS256 token signed with the public key as its
//!   secret is refused;
//! - the inbox: an entry pushed with `POST /api/v1/inbox/USER` reaches the
//!   socket whose token's `sub` is USER and nobody else, comes again until
//!   acknowledged, and not after;
//! - the settings: flag, `TETHER_JWT_SECRET`, TOML; `--check` hides the
//!   secret; both settings at once, a short secret or a file that is no key
//!   are refused naming the setting; neither the secret nor a token is
//!   ever logged.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run, tether, Node, Server, TempDir, EXIT_BUDGET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "test-jwt-secret-0123456789abcdef";
const KEY: &str = "test-api-key-0123456789";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn token(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).expect("encode a token")
}

fn hs256(claims: Value) -> String {
    token(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn start(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    // Debug logs: whatever is logged, no secret and no token is.
    env.push(("RUST_LOG", "debug"));
    Server::start(dir.path(), &all, &env)
}

/// Runs a script of tests/node (bounded) and returns its verdict, checked:
/// exit 0 and `"ok": true`.
fn node(script: &str, args: &[&str]) -> Value {
    Node::run(script, args).verdict(Duration::from_secs(60))
}

/// One HTTP/1.1 POST of a JSON body with the API key: (status, body).
fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        common::dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Asserts that what the server logged holds none of `secrets`.
fn assert_not_logged(server: &Server, secrets: &[&str]) {
    let logs = server.stderr();
    assert!(
        logs.contains("DEBUG"),
        "debug logs expected (RUST_LOG=debug): {logs}"
    );
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "a secret or token is in the logs: {secret}"
        );
    }
}

/// The refusal of `label` in the verdict of auth/chat.mjs: its message
/// and code are `message` and `code`, and no event came before it.
fn assert_refused(verdict: &Value, label: &str, message: &str, code: &str) {
    let refusal = verdict["refusals"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["label"] == label))
        .unwrap_or_else(|| panic!("no refusal {label}: {verdict}"));
    assert_eq!(refusal["error"]["message"], message, "{label}: {refusal}");
    assert_eq!(refusal["error"]["data"]["code"], code, "{label}: {refusal}");
    assert_eq!(
        refusal["events"],
        json!([]),
        "{label}: events before the refusal"
    );
    assert_eq!(refusal["messages"], 0, "{label}: {refusal}");
}

const MISSING: &str =
    "unauthorized: this server needs a token: connect with auth: { token: \"<JWT>\" }";
const EXPIRED: &str = "unauthorized: the token has expired";
const NOT_YET: &str = "unauthorized: the token is not valid yet (its nbf is in the future)";
const BAD_SIGNATURE: &str = "unauthorized: the token's signature does not verify";
const MALFORMED: &str = "unauthorized: the token is not a well-formed JWT";
const NO_SUBJECT: &str = "unauthorized: the token has no sub claim (a non-empty string: the user)";

/// HS256, over WebSocket and long-polling: names from the tokens, every
/// kind of bad token refused with its reason before anything is sent, a
/// recovery with an expired token or another user's too.
#[test]
fn hs256_tokens_name_the_user_and_bad_ones_get_nothing() {
    for transport in ["websocket", "polling"] {
        hs256_on(transport);
    }
}

fn hs256_on(transport: &str) {
    let dir = TempDir::new("jwt-hs256");
    let server = start(&dir, &["--store", "chat.db", "--jwt-secret", SECRET], &[]);
    let exp = now() + 600;
    let alice = hs256(json!({ "sub": "alice", "name": "Alice Liddell", "exp": exp }));
    let bob = hs256(json!({ "sub": "bob", "exp": exp }));
    let expired = hs256(json!({ "sub": "alice", "name": "Alice Liddell", "exp": now() - 3600 }));
    let not_yet = hs256(json!({ "sub": "alice", "nbf": now() + 3600 }));
    let forged = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not-the-server-secret-0123456789"),
        json!({ "sub": "alice", "exp": exp }),
    );
    let no_sub = hs256(json!({ "name": "Nobody", "exp": exp }));
    let bad = json!([
        { "label": "missing", "token": null },
        { "label": "expired", "token": expired },
        { "label": "not yet valid", "token": not_yet },
        { "label": "bad signature", "token": forged },
        { "label": "malformed", "token": "not-a-jwt" },
        { "label": "no sub", "token": no_sub },
    ]);
    let verdict = node(
        "auth/chat.mjs",
        &[
            "--url",
            &server.url(),
            "--transport",
            transport,
            "--token",
            &alice,
            "--token2",
            &bob,
            "--bad",
            &bad.to_string(),
            "--expired",
            &expired,
            "--other",
            &bob,
        ],
    );
    // The token's name (a forged name argument and auth.name ignored),
    // else its sub; the user is the sub.
    assert_eq!(
        untimed(&verdict["metas"]),
        json!([
            { "content": "hello from alice", "id": "alice-1", "name": "Alice Liddell", "user": "alice" },
            { "content": "hello from bob", "id": "bob-1", "name": "bob", "user": "bob" },
        ]),
        "{verdict}"
    );
    assert_refused(&verdict, "missing", MISSING, "token_missing");
    assert_refused(&verdict, "expired", EXPIRED, "token_expired");
    assert_refused(&verdict, "not yet valid", NOT_YET, "token_not_yet_valid");
    assert_refused(&verdict, "bad signature", BAD_SIGNATURE, "bad_signature");
    assert_refused(&verdict, "malformed", MALFORMED, "token_malformed");
    assert_refused(&verdict, "no sub", NO_SUBJECT, "no_subject");
    // Recovering the session with an expired token: refused, nothing of
    // what was sent meanwhile replayed.
    let recovery = &verdict["recovery"];
    assert_eq!(recovery["error"]["message"], EXPIRED, "{recovery}");
    // Bob's valid token does not take alice's session over.
    assert_eq!(
        recovery["other"],
        json!({
            "message": "unauthorized: the session being recovered belongs to another user: open a new connection",
            "data": { "code": "session_of_another_user" },
        }),
        "{recovery}"
    );
    assert_eq!(recovery["events"], json!([]), "{recovery}");
    // Alice's valid token recovers it, with what she missed.
    assert_eq!(recovery["recovered"], true, "{recovery}");
    assert_eq!(recovery["missed"], json!(["while away"]), "{recovery}");
    // Counted by code.
    let (status, text) = common::http_get(server.addr, "/metrics").expect("scrape /metrics");
    assert_eq!(status, 200);
    let samples = common::parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let refused = |code: &str| {
        samples
            .iter()
            .find(|s| {
                s.name == "tether_auth_refused_total"
                    && s.labels.get("code").map(String::as_str) == Some(code)
            })
            .map(|s| s.value)
    };
    for (code, n) in [
        ("token_missing", 1.0),
        ("token_expired", 2.0),
        ("token_not_yet_valid", 1.0),
        ("bad_signature", 1.0),
        ("token_malformed", 1.0),
        ("no_subject", 1.0),
        ("session_of_another_user", 1.0),
        ("bad_algorithm", 0.0),
    ] {
        assert_eq!(refused(code), Some(n), "{code}:\n{text}");
    }
    assert_not_logged(&server, &[SECRET, &alice, &bob, &expired, &forged]);
}

/// An RSA key pair made with Node's crypto (node runs the official client
/// anyway; ring, under rcgen, makes no RSA keys).
fn rsa_pair(dir: &TempDir) -> (EncodingKey, PathBuf) {
    let private = dir.path().join("rsa.pem");
    let public = dir.path().join("rsa.pub.pem");
    let script = "const { generateKeyPairSync } = require('node:crypto'); \
        const fs = require('node:fs'); \
        const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, \
          publicKeyEncoding: { type: 'spki', format: 'pem' }, \
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' } }); \
        fs.writeFileSync(process.argv[1], privateKey); fs.writeFileSync(process.argv[2], publicKey);";
    let out = Command::new("node")
        .args(["-e", script])
        .arg(&private)
        .arg(&public)
        .output()
        .expect("node runs (is Node.js installed?)");
    assert!(out.status.success(), "an RSA key pair: {out:?}");
    let pem = std::fs::read(&private).unwrap();
    (
        EncodingKey::from_rsa_pem(&pem).expect("the RSA key"),
        public,
    )
}

/// An EC P-256 key pair made with rcgen.
fn ec_pair(dir: &TempDir, name: &str) -> (EncodingKey, PathBuf) {
    let pair = rcgen::KeyPair::generate().expect("an EC key pair");
    let public = dir.write(name, &pair.public_key_pem());
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("the EC key");
    (key, public)
}

/// `--jwt-public-key` with RS256 and ES256 keys: their tokens get in; a
/// token of another key, and an HS256 token signed with the public key's
/// PEM as a secret (the algorithm confusion), do not.
#[test]
fn rs256_and_es256_public_keys() {
    let dir = TempDir::new("jwt-public");
    let (rsa, rsa_pub) = rsa_pair(&dir);
    let (ec, ec_pub) = ec_pair(&dir, "ec.pub.pem");
    let (other_ec, _) = ec_pair(&dir, "other.pub.pem");
    for (alg, key, public, other_alg) in [
        (Algorithm::RS256, &rsa, &rsa_pub, "RS256"),
        (Algorithm::ES256, &ec, &ec_pub, "ES256"),
    ] {
        let server = start(
            &dir,
            &[
                "--store",
                "memory",
                "--jwt-public-key",
                public.to_str().unwrap(),
            ],
            &[],
        );
        let exp = now() + 600;
        let alice = token(
            alg,
            key,
            json!({ "sub": "alice", "name": "Alice", "exp": exp }),
        );
        let bob = token(alg, key, json!({ "sub": "bob", "exp": exp }));
        let pem = std::fs::read(public).unwrap();
        let confused = token(
            Algorithm::HS256,
            &EncodingKey::from_secret(&pem),
            json!({ "sub": "alice", "exp": exp }),
        );
        let other = token(
            Algorithm::ES256,
            &other_ec,
            json!({ "sub": "alice", "exp": exp }),
        );
        let bad = json!([
            { "label": "hs256 with the public key", "token": confused },
            { "label": "another key", "token": other },
        ]);
        let verdict = node(
            "auth/chat.mjs",
            &[
                "--url",
                &server.url(),
                "--token",
                &alice,
                "--token2",
                &bob,
                "--bad",
                &bad.to_string(),
            ],
        );
        assert_eq!(
            untimed(&verdict["metas"]),
            json!([
                { "content": "hello from alice", "id": "alice-1", "name": "Alice", "user": "alice" },
                { "content": "hello from bob", "id": "bob-1", "name": "bob", "user": "bob" },
            ]),
            "{other_alg}: {verdict}"
        );
        assert_refused(
            &verdict,
            "hs256 with the public key",
            &format!("unauthorized: the token is signed with HS256: this server takes {other_alg}"),
            "bad_algorithm",
        );
        // Another EC key: a bad signature for ES256, the wrong algorithm for RS256.
        let (message, code) = match alg {
            Algorithm::ES256 => (BAD_SIGNATURE.to_owned(), "bad_signature"),
            _ => (
                "unauthorized: the token is signed with ES256: this server takes RS256".to_owned(),
                "bad_algorithm",
            ),
        };
        assert_refused(&verdict, "another key", &message, code);
    }
}

/// The inbox position alice acknowledged, read from the store file
/// (read-only) while the server runs.
fn acked_upto(db: &Path, user: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the store read-only");
    conn.query_row(
        "SELECT upto FROM inbox_acks WHERE user = ?1",
        [user],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

/// An entry pushed for USER reaches the socket whose token's sub is USER
/// (not another user's), comes again while it is not acknowledged, and no
/// more once it is.
#[test]
fn the_inbox_follows_the_tokens_sub_until_acknowledged() {
    let dir = TempDir::new("jwt-inbox");
    let server = start(
        &dir,
        &[
            "--store",
            "inbox.db",
            "--jwt-secret",
            SECRET,
            "--api-key",
            KEY,
        ],
        &[],
    );
    let exp = now() + 600;
    let alice = hs256(json!({ "sub": "alice", "name": "Alice Liddell", "exp": exp }));
    let bob = hs256(json!({ "sub": "bob", "exp": exp }));
    let url = server.url();
    let phase = |phase: &str, extra: &[&str]| {
        let mut args = vec!["--url", &url, "--phase", phase, "--token", &alice];
        args.extend_from_slice(extra);
        node("auth/inbox.mjs", &args)
    };

    let first = phase("first", &["--token2", &bob, "--key", KEY]);
    let position = first["position"].as_u64().expect("the entry's position");
    let entry = json!(["dm", "for alice", position, "ack requested"]);
    assert_eq!(first["inbox"]["alice"], json!([entry]), "{first}");
    let bobs = &first["inbox"]["bob"];
    assert_eq!(bobs.as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(bobs[0][1], "for bob", "bob got only his own: {first}");

    // Not acknowledged: it comes again, and is acknowledged this time.
    let again = phase("again", &[]);
    assert_eq!(again["inbox"]["alice"], json!([entry]), "{again}");
    let db = dir.path().join("inbox.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked_upto(&db, "alice") < position as i64 {
        assert!(
            Instant::now() < deadline,
            "alice's ack of {position} not stored within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Acknowledged: the next connection gets only what came after.
    let (status, answer) = post(
        server.addr,
        "/api/v1/inbox/alice",
        &json!({ "event": "dm2", "args": ["after the ack"] }),
    );
    assert_eq!(status, 200, "{answer}");
    let second = answer["position"].as_u64().unwrap();
    let after = phase("after", &["--expect", "dm2"]);
    assert_eq!(
        after["inbox"]["alice"],
        json!([["dm2", "after the ack", second, "ack requested"]]),
        "{after}"
    );
    assert_not_logged(&server, &[SECRET, &alice, &bob]);
}

/// The settings: a flag, `TETHER_JWT_SECRET` or the TOML file; `--check`
/// hides the secret and names the key file; bad combinations are refused
/// naming the setting, without echoing the secret.
#[test]
fn jwt_settings_are_checked_and_the_secret_is_hidden() {
    let dir = TempDir::new("jwt-settings");
    let check = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["serve", "--check", "--store", "memory"];
        all.extend_from_slice(args);
        run(&mut tether(dir.path(), &all, env), EXIT_BUDGET).unwrap()
    };
    let toml = dir.write("t.toml", &format!("jwt_secret = \"{SECRET}\"\n"));
    for (how, out) in [
        ("flag", check(&["--jwt-secret", SECRET], &[])),
        ("env", check(&[], &[("TETHER_JWT_SECRET", SECRET)])),
        ("toml", check(&["--config", toml.to_str().unwrap()], &[])),
    ] {
        assert!(out.status.success(), "{how}: {out:?}");
        assert!(
            out.stdout.contains("jwt_secret = \"(hidden)\""),
            "{how}: {}",
            out.stdout
        );
        assert!(!out.stdout.contains(SECRET), "{how}: the secret is printed");
        assert!(out.stdout.contains("jwt_public_key = \"\""), "{how}");
    }
    let anonymous = check(&[], &[]);
    assert!(anonymous.status.success(), "{anonymous:?}");
    assert!(
        anonymous.stdout.contains("jwt_secret = \"\""),
        "{anonymous:?}"
    );

    let (_, ec_pub) = ec_pair(&dir, "ec.pub.pem");
    let public = check(&["--jwt-public-key", ec_pub.to_str().unwrap()], &[]);
    assert!(public.status.success(), "{public:?}");
    assert!(
        public
            .stdout
            .contains(&format!("jwt_public_key = \"{}\"", ec_pub.display())),
        "{public:?}"
    );

    let refused = |args: &[&str], env: &[(&str, &str)], wants: &[&str]| {
        let out = check(args, env);
        assert!(!out.status.success(), "{args:?} accepted: {out:?}");
        for want in wants {
            assert!(
                out.stderr.contains(want),
                "{args:?}: no {want:?} in {out:?}"
            );
        }
        assert!(
            !out.stderr.contains(SECRET),
            "the secret is echoed: {out:?}"
        );
        assert!(
            !out.stderr.contains("short-secret"),
            "the secret is echoed: {out:?}"
        );
    };
    refused(
        &[
            "--jwt-secret",
            SECRET,
            "--jwt-public-key",
            ec_pub.to_str().unwrap(),
        ],
        &[],
        &["jwt_public_key", "not both"],
    );
    refused(
        &[],
        &[("TETHER_JWT_SECRET", "short-secret")],
        &["jwt_secret", "TETHER_JWT_SECRET", "at least 16"],
    );
    let not_a_key = dir.write("cert.txt", "hello\n");
    refused(
        &["--jwt-public-key", not_a_key.to_str().unwrap()],
        &[],
        &[
            "jwt_public_key",
            "--jwt-public-key",
            "cert.txt",
            "not an RSA or EC public key",
        ],
    );
    refused(
        &["--jwt-public-key", "missing.pem"],
        &[],
        &["jwt_public_key", "cannot read missing.pem"],
    );
}

/// The metas of the chat messages without their `time` (each must have one,
/// a number: milliseconds since the epoch).
fn untimed(metas: &Value) -> Value {
    let list = metas.as_array().expect("metas is a list");
    Value::Array(
        list.iter()
            .map(|meta| {
                let mut meta = meta.clone();
                let time = meta.as_object_mut().and_then(|m| m.remove("time"));
                assert!(
                    time.as_ref().is_some_and(Value::is_u64),
                    "meta without a time: {meta}"
                );
                meta
            })
            .collect(),
    )
}
