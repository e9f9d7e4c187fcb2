//! The `tether` binary as its users run it: settings precedence and errors,
//! `/healthz` and `/metrics`, the chat tutorial's own client logic, graceful
//! shutdown on SIGTERM, and the store tools (`bounds`, `history`).
//!
//! Every `tether` runs as a child process with a clean environment (only
//! PATH and the TETHER_* variables under test) in a fresh temporary working
//! directory. The chat clients are the official npm `socket.io-client`
//! (tests/node, `npm ci` first) running the scripts of tests/node/chat.
//!
//! Every wait is bounded: a TCP connect or `/healthz` polled until a
//! deadline, a child process waited for until a deadline.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn prometheus_parser() {
    let text = "# HELP x_total a counter\n# TYPE x_total counter\nx_total 6\n\n\
                y{quantile=\"0.5\",path=\"/a \\\"b\\\"\"} 1.5e-3 1700000000000\n\
                z_sum{} +Inf\n";
    let samples = parse_prometheus(text).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(metric(&samples, "x_total"), Some(6.0));
    assert_eq!(samples[1].name, "y");
    assert_eq!(samples[1].labels["quantile"], "0.5");
    assert_eq!(samples[1].labels["path"], "/a \"b\"");
    assert_eq!(samples[1].value, 0.0015);
    assert_eq!(metric(&samples, "z_sum"), Some(f64::INFINITY));
    assert!(parse_prometheus("x{a=1} 2").is_err());
    assert!(parse_prometheus("x{a=\"1\" 2").is_err());
    assert!(parse_prometheus("x one").is_err());
    assert!(parse_prometheus("9x 1").is_err());
}

// ------------------------------------------------------------------ settings --

/// The port and store named on the first line `Tether chat on http://ADDR/ (store: S)`.
fn announced(server: &Server) -> (u16, String) {
    let store = server
        .first_line
        .split_once("(store: ")
        .and_then(|(_, s)| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no `(store: ...)` in {:?}", server.first_line))
        .to_owned();
    (server.addr.port(), store)
}

/// A TOML file sets the port, TETHER_PORT overrides it, --port overrides
/// both; the same for the store (first line, and the file it creates).
#[test]
fn settings_precedence_flag_env_toml_default() {
    let (p_toml, p_env, p_flag) = (free_port(), free_port(), free_port());
    assert!(
        p_toml != p_env && p_env != p_flag && p_toml != p_flag,
        "three distinct ports"
    );

    // Defaults (port 0 only so as not to depend on 3000 being free): the
    // store is tether.db in the working directory.
    let dir = TempDir::new("defaults");
    let mut server = Server::start(dir.path(), &["--port", "0"], &[]);
    assert_eq!(announced(&server).1, "tether.db");
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1", "default host");
    assert!(
        dir.path().join("tether.db").exists(),
        "default store file in the working directory: {:?}",
        dir.entries()
    );
    assert!(server.stop(EXIT_BUDGET).success());

    // TOML only.
    let dir = TempDir::new("precedence");
    let config = dir.write(
        "tether.toml",
        &format!("port = {p_toml}\nstore = \"memory\"\nlog_format = \"json\"\n"),
    );
    let config = config.to_str().unwrap();
    let mut server = Server::start(dir.path(), &["--config", config], &[]);
    assert_eq!(
        announced(&server),
        (p_toml, "memory".to_owned()),
        "{}",
        server.first_line
    );
    let (status, _) = http_get(SocketAddr::from(([127, 0, 0, 1], p_toml)), "/healthz")
        .expect("connect to the TOML port");
    assert_eq!(status, 200);
    // log_format = "json" from the file: the log lines on stderr are JSON.
    let logs = server.wait_stderr(|e| e.contains('\n'), Duration::from_secs(10));
    let first_log = logs.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first_log).is_ok(),
        "log_format = \"json\" from the TOML file: {logs}"
    );
    assert!(server.stop(EXIT_BUDGET).success());

    // TETHER_CONFIG names the file; TETHER_PORT and TETHER_STORE override it.
    let port = p_env.to_string();
    let mut server = Server::start(
        dir.path(),
        &[],
        &[
            ("TETHER_CONFIG", config),
            ("TETHER_PORT", &port),
            ("TETHER_STORE", "from-env.db"),
        ],
    );
    assert_eq!(
        announced(&server),
        (p_env, "from-env.db".to_owned()),
        "{}",
        server.first_line
    );
    let (status, _) = http_get(SocketAddr::from(([127, 0, 0, 1], p_env)), "/healthz")
        .expect("connect to the env port");
    assert_eq!(status, 200);
    assert!(
        dir.path().join("from-env.db").exists(),
        "TETHER_STORE file: {:?}",
        dir.entries()
    );
    assert!(server.stop(EXIT_BUDGET).success());

    // Flags override both.
    let port = p_flag.to_string();
    let env_port = p_env.to_string();
    let mut server = Server::start(
        dir.path(),
        &["--config", config, "--port", &port, "--store", "memory"],
        &[
            ("TETHER_PORT", &env_port),
            ("TETHER_STORE", "from-env-2.db"),
        ],
    );
    assert_eq!(
        announced(&server),
        (p_flag, "memory".to_owned()),
        "{}",
        server.first_line
    );
    let (status, body) = http_get(SocketAddr::from(([127, 0, 0, 1], p_flag)), "/healthz")
        .expect("connect to the flag port");
    assert_eq!((status, body.trim()), (200, "ok"));
    assert!(
        !dir.path().join("from-env-2.db").exists(),
        "--store memory wins over TETHER_STORE"
    );
    assert!(server.stop(EXIT_BUDGET).success());
}

/// One bad setting: how it is given, and what the error must name.
struct Bad {
    what: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    toml: Option<&'static str>,
    /// Each must appear in stderr (case-insensitive).
    names: &'static [&'static str],
}

const fn bad(
    what: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    toml: Option<&'static str>,
    names: &'static [&'static str],
) -> Bad {
    Bad {
        what,
        args,
        env,
        toml,
        names,
    }
}

#[rustfmt::skip]
const BAD_SETTINGS: &[Bad] = &[
    bad("port flag too big", &["--port", "99999"], &[], None, &["port"]),
    bad("port flag not a number", &["--port", "eighty"], &[], None, &["port"]),
    bad("port env", &[], &[("TETHER_PORT", "70000")], None, &["port"]),
    bad("port env negative", &[], &[("TETHER_PORT", "-1")], None, &["port"]),
    bad("port TOML too big", &[], &[], Some("port = 70000"), &["port"]),
    bad("port TOML string", &[], &[], Some("port = \"eighty\""), &["port"]),
    bad("durability flag", &["--durability", "sometimes"], &[], None, &["durability"]),
    bad("durability env", &[], &[("TETHER_DURABILITY", "never")], None, &["durability"]),
    bad("durability TOML", &[], &[], Some("durability = \"eventually\""), &["durability"]),
    bad("log_format flag", &["--log-format", "xml"], &[], None, &["log_format"]),
    bad("log_format env", &[], &[("TETHER_LOG_FORMAT", "yaml")], None, &["log_format"]),
    bad("log_format TOML", &[], &[], Some("log_format = \"csv\""), &["log_format"]),
    bad("recovery_window soon (flag)", &["--recovery-window", "soon"], &[], None, &["recovery_window"]),
    bad("recovery_window 5y (flag)", &["--recovery-window", "5y"], &[], None, &["recovery_window"]),
    bad("recovery_window soon (env)", &[], &[("TETHER_RECOVERY_WINDOW", "soon")], None, &["recovery_window"]),
    bad("recovery_window 5y (TOML)", &[], &[], Some("recovery_window = \"5y\""), &["recovery_window"]),
    bad("retention_age soon (flag)", &["--retention-age", "soon"], &[], None, &["retention_age"]),
    bad("retention_age 5y (flag)", &["--retention-age", "5y"], &[], None, &["retention_age"]),
    bad("retention_age 5y (env)", &[], &[("TETHER_RETENTION_AGE", "5y")], None, &["retention_age"]),
    bad("retention_age soon (TOML)", &[], &[], Some("retention_age = \"soon\""), &["retention_age"]),
    bad("max_buffer < max_payload (flags)", &["--max-payload", "4096", "--max-buffer", "2048"], &[], None, &["max_buffer"]),
    bad("max_buffer < max_payload (env)", &[], &[("TETHER_MAX_PAYLOAD", "65536"), ("TETHER_MAX_BUFFER", "65535")], None, &["max_buffer"]),
    bad("max_buffer < max_payload (TOML)", &[], &[], Some("max_payload = 8192\nmax_buffer = 4096"), &["max_buffer"]),
    bad("unknown key in the TOML", &[], &[], Some("port = 0\ncolour = \"blue\""), &["colour"]),
    bad("--config that does not exist", &["--config", "missing.toml"], &[], None, &["config", "missing.toml"]),
    bad("TETHER_CONFIG that does not exist", &[], &[("TETHER_CONFIG", "nowhere/tether.toml")], None, &["config", "nowhere/tether.toml"]),
    bad("redis over TLS (flag)", &["--store", "rediss://127.0.0.1:6379"], &[], None, &["store", "redis"]),
    bad("redis over TLS (env)", &[], &[("TETHER_STORE", "rediss://localhost")], None, &["store", "redis"]),
    bad("redis over a unix socket (TOML)", &[], &[], Some("store = \"redis+unix:///tmp/r.sock\""), &["store", "redis"]),
    bad("unknown store scheme (flag)", &["--store", "mysql://u@h/db"], &[], None, &["store", "mysql://u@h/db", "unknown scheme", "postgres://", "redis://"]),
    bad("unknown store scheme (env)", &[], &[("TETHER_STORE", "http://example/db")], None, &["store", "http://example/db", "postgresql://"]),
    bad("empty redis_prefix (flag)", &["--redis-prefix", ""], &[], None, &["redis_prefix"]),
    bad("header_read_timeout 0s (flag)", &["--header-read-timeout", "0s"], &[], None, &["header_read_timeout"]),
    bad("header_read_timeout soon (env)", &[], &[("TETHER_HEADER_READ_TIMEOUT", "soon")], None, &["header_read_timeout"]),
    bad("body_read_timeout forever (flag)", &["--body-read-timeout", "forever"], &[], None, &["body_read_timeout"]),
    bad("write_timeout soon (flag)", &["--write-timeout", "soon"], &[], None, &["write_timeout"]),
    bad("body_read_timeout 0s (TOML)", &[], &[], Some("body_read_timeout = \"0s\""), &["body_read_timeout"]),
];

/// Every bad value: a non-zero exit (no server started), an error naming the
/// setting, and no store file left behind.
#[test]
fn bad_settings_fail_naming_the_setting() {
    let mut failures = Vec::new();
    for case in BAD_SETTINGS {
        let dir = TempDir::new("bad");
        // Port 0 so that a wrongly accepted setting cannot collide on 3000.
        let mut args = vec!["serve"];
        if !case.what.starts_with("port") {
            args.extend(["--port", "0"]);
        }
        args.extend_from_slice(case.args);
        if let Some(toml) = case.toml {
            dir.write("tether.toml", &format!("{toml}\n"));
            args.extend(["--config", "tether.toml"]);
        }
        let before = dir.entries();
        let out = match run(&mut tether(dir.path(), &args, case.env), EXIT_BUDGET) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{}: {e}", case.what));
                continue;
            }
        };
        let stderr = out.stderr.to_lowercase();
        if out.status.success() {
            failures.push(format!(
                "{}: exit 0\nstdout: {}\nstderr: {}",
                case.what, out.stdout, out.stderr
            ));
            continue;
        }
        for name in case.names {
            if !stderr.contains(&name.to_lowercase()) {
                failures.push(format!(
                    "{}: error does not name `{name}`: {}",
                    case.what,
                    out.stderr.trim()
                ));
            }
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: printed on stdout: {}", case.what, out.stdout));
        }
        if dir.entries() != before {
            failures.push(format!(
                "{}: left files behind: {:?}",
                case.what,
                dir.entries()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} bad setting(s) mishandled:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `tether serve --help` mentions every setting, its flag and its variable.
#[test]
fn serve_help_lists_every_setting_and_env_variable() {
    let dir = TempDir::new("help");
    let out = run(
        &mut tether(dir.path(), &["serve", "--help"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let settings = [
        "host",
        "port",
        "store",
        "redis_prefix",
        "durability",
        "recovery_window",
        "retention_age",
        "retention_count",
        "stream_retention",
        "max_payload",
        "max_connections",
        "max_buffer",
        "max_buffer_total",
        "header_read_timeout",
        "body_read_timeout",
        "write_timeout",
        "max_connections_per_ip",
        "cors_origins",
        "log_format",
        "api_key",
        "config",
    ];
    let mut missing = Vec::new();
    for name in settings {
        let flag = format!("--{}", name.replace('_', "-"));
        let env = format!("TETHER_{}", name.to_uppercase());
        for want in [&flag, &env] {
            if !out.stdout.contains(want.as_str()) {
                missing.push(want.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "`tether serve --help` does not mention {missing:?}:\n{}",
        out.stdout
    );
}

// ------------------------------------------------------------------ metrics --

/// 5 chat messages + 1 retry from the official client, then exact counters.
#[test]
fn metrics_count_events_duplicates_and_acks() {
    let dir = TempDir::new("metrics");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "memory"], &[]);
    let url = server.url();
    let verdict = Node::start("drive", &["--url", &url, "--transport", "websocket"])
        .verdict(Duration::from_secs(60));
    assert_eq!(
        verdict["seqs"],
        serde_json::json!([1, 2, 3, 4, 5]),
        "{verdict}"
    );

    let (status, text) = http_get(server.addr, "/metrics").expect("scrape /metrics");
    assert_eq!(status, 200, "{text}");
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        metric(&samples, "tether_events_in_total"),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        metric(&samples, "tether_duplicates_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&samples, "tether_acks_total"), Some(6.0), "{text}");
    assert!(
        samples
            .iter()
            .any(|s| s.name.starts_with("tether_store_commit_seconds")),
        "tether_store_commit_seconds missing:\n{text}"
    );
    let commits = samples
        .iter()
        .find(|s| {
            s.name == "tether_store_commit_seconds_count"
                || s.name == "tether_store_commit_seconds_bucket"
        })
        .map(|s| s.value);
    assert!(
        commits.is_some_and(|n| n >= 1.0),
        "at least one store commit timed:\n{text}"
    );
}

/// A fresh server, before any client: every series is there at 0, with its
/// `# HELP` and `# TYPE` lines, so dashboards and alerts work from the start.
#[test]
fn metrics_exist_at_zero_with_help_on_a_fresh_server() {
    let dir = TempDir::new("metrics-fresh");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "memory"], &[]);
    let (status, text) = http_get(server.addr, "/metrics").expect("scrape /metrics");
    assert_eq!(status, 200, "{text}");
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // The library's list is complete (its unit test checks every name the
    // code records is in it); these are the series dashboards rely on.
    for name in [
        "tether_connections",
        "tether_events_in_total",
        "tether_events_out_total",
        "tether_acks_total",
        "tether_duplicates_total",
        "tether_store_errors_total",
        "tether_replayed_events_total",
        "tether_send_queue_pauses_total",
        "tether_store_commit_seconds",
        "tether_recoveries_total",
    ] {
        assert!(
            tether::metrics::ALL.iter().any(|m| m.name == name),
            "{name} is not in tether::metrics::ALL"
        );
    }
    for m in tether::metrics::ALL {
        // Set by the health check only (a 0 before it would read "unhealthy").
        if m.name == tether::metrics::STORE_HEALTHY {
            continue;
        }
        let name = m.name;
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}:\n{text}"
        );
        match m.kind {
            tether::metrics::Kind::Histogram => assert_eq!(
                metric(&samples, &format!("{name}_count")),
                Some(0.0),
                "{name}:\n{text}"
            ),
            // Labelled: each `result` below.
            _ if name == tether::metrics::RECOVERIES => {}
            // The budget's limit is the configured one, not 0.
            _ if name == tether::metrics::SEND_BUFFER_LIMIT_BYTES => {
                assert!(metric(&samples, name).is_some(), "{name}:\n{text}")
            }
            _ => assert_eq!(metric(&samples, name), Some(0.0), "{name}:\n{text}"),
        }
    }
    for result in [
        "recovered",
        "unknown session",
        "expired",
        "unknown offset",
        "store reset",
        "session in use",
    ] {
        let found = samples.iter().find(|s| {
            s.name == "tether_recoveries_total"
                && s.labels.get("result").map(String::as_str) == Some(result)
        });
        assert_eq!(
            found.map(|s| s.value),
            Some(0.0),
            "recoveries {result}:\n{text}"
        );
    }
}

// ----------------------------------------------------------------- tutorial --

fn tutorial(transport: &str) {
    let dir = TempDir::new("tutorial");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "chat.db"], &[]);
    let url = server.url();
    let verdict = Node::start(
        "tutorial",
        &["--url", &url, "--transport", transport, "--count", "50"],
    )
    .verdict(Duration::from_secs(120));
    assert_eq!(verdict["exchanged"], 100, "{verdict}");
    assert_eq!(verdict["c"], 101, "{verdict}");
    assert_eq!(verdict["d"], 41, "{verdict}");
}

/// The Socket.IO tutorial's client: two clients exchange 50 messages each,
/// then late clients catch up from serverOffset 0 and from message 60.
#[test]
fn tutorial_clients_websocket() {
    tutorial("websocket");
}

#[test]
fn tutorial_clients_polling() {
    tutorial("polling");
}

// ----------------------------------------------------------------- shutdown --

/// 200 acked messages, SIGTERM (exit 0 within 10 s), restart on the same
/// file: a tutorial client from serverOffset 0 gets the 200 exactly once in
/// order. Then `tether bounds` and `tether history` show them.
#[test]
fn graceful_shutdown_loses_nothing_and_tools_show_the_store() {
    let dir = TempDir::new("shutdown");
    let mut server = Server::start(dir.path(), &["--port", "0", "--store", "chat.db"], &[]);
    let url = server.url();
    let mut sender = Node::start("send", &["--url", &url, "--count", "200", "--hold", "1"]);
    sender.expect_line("READY sigterm", Duration::from_secs(60));
    let started = Instant::now();
    let status = server.stop(Duration::from_secs(10));
    assert!(
        status.success(),
        "SIGTERM: exit {status}; stderr:\n{}",
        server.stderr()
    );
    let took = started.elapsed();
    let sent = sender.verdict(Duration::from_secs(30));
    assert_eq!(
        (
            sent["acked"].as_u64(),
            sent["first"].as_u64(),
            sent["last"].as_u64()
        ),
        (Some(200), Some(1), Some(200)),
        "{sent}"
    );
    assert_eq!(
        sent["closed"], "transport close",
        "the client sees the server go: {sent}"
    );
    println!("shutdown took {took:?}");

    let mut server = Server::start(dir.path(), &["--port", "0", "--store", "chat.db"], &[]);
    let url = server.url();
    let caught = Node::start(
        "catch-up",
        &["--url", &url, "--count", "200", "--serverOffset", "0"],
    )
    .verdict(Duration::from_secs(60));
    assert_eq!(caught["received"], 201, "200 + the probe: {caught}");
    assert_eq!(
        (caught["first"].as_u64(), caught["last"].as_u64()),
        (Some(1), Some(200)),
        "{caught}"
    );
    let probe = caught["probe"].as_u64().expect("the probe's serverOffset");
    assert_eq!(probe, 201, "{caught}");
    let status = server.stop(Duration::from_secs(10));
    assert!(
        status.success(),
        "SIGTERM: exit {status}; stderr:\n{}",
        server.stderr()
    );

    // The tools, on the store the server left.
    let out = run(
        &mut tether(dir.path(), &["bounds", "--store", "chat.db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[0]
            .strip_prefix("epoch ")
            .is_some_and(|e| !e.trim().is_empty()),
        "{}",
        out.stdout
    );
    assert_eq!(
        &lines[1..],
        ["latest 201", "oldest kept 1"],
        "{}",
        out.stdout
    );

    let out = run(
        &mut tether(
            dir.path(),
            &["history", "--store", "chat.db", "--limit", "5"],
            &[],
        ),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 5, "{}", out.stdout);
    let want = [
        "message 197",
        "message 198",
        "message 199",
        "message 200",
        "probe",
    ];
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 4, "seq, time, event, args: {row:?}");
        assert_eq!(row[0], (197 + k).to_string(), "{}", out.stdout);
        assert!(humantime::parse_rfc3339(row[1]).is_ok(), "time: {row:?}");
        assert_eq!(row[2], "chat message");
        let args: serde_json::Value =
            serde_json::from_str(row[3]).unwrap_or_else(|e| panic!("args not JSON ({e}): {row:?}"));
        let content = args[0].as_str().unwrap_or_default();
        assert!(content.starts_with(want[k]), "row {k}: {row:?}");
    }

    // Every message went to the whole namespace: one stream of 201.
    let out = run(
        &mut tether(dir.path(), &["streams", "--store", "chat.db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["nsp\troom\tentries\toldest\tlatest", "/\t\t201\t1\t201"],
        "{}",
        out.stdout
    );

    // The sessions table lists public ids only: the private ids stay in the store.
    let out = run(
        &mut tether(dir.path(), &["sessions", "--store", "chat.db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout.lines().next(),
        Some("sid\tnsp\trooms\tconnected\tupdated_ms"),
        "{}",
        out.stdout
    );
    for row in out.stdout.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols.len(), 5, "{row}");
        assert_eq!(cols[1], "/", "{row}");
    }

    let out = run(
        &mut tether(dir.path(), &["history", "--store", "missing.db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.contains("no store at"), "{out:?}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "history must not create a store"
    );
}

/// SIGTERM while the tutorial's client is sending; the server comes back on
/// the same port and store and the client carries on by itself (reconnection,
/// retry queue): every message is stored and heard exactly once, in order.
fn sigterm_mid_stream(transport: &str) {
    let dir = TempDir::new("midstream");
    let port = free_port().to_string();
    let args = ["--port", port.as_str(), "--store", "chat.db"];
    let mut server = Server::start(dir.path(), &args, &[]);
    let url = server.url();
    let mut client = Node::start(
        "mid-stream",
        &[
            "--url",
            &url,
            "--transport",
            transport,
            "--count",
            "300",
            "--at",
            "100",
        ],
    );
    client.expect_line("READY sigterm", Duration::from_secs(60));
    let status = server.stop(Duration::from_secs(10));
    assert!(
        status.success(),
        "SIGTERM: exit {status}; stderr:\n{}",
        server.stderr()
    );
    let server = Server::start(dir.path(), &args, &[]);
    let verdict = client.verdict(Duration::from_secs(120));
    assert_eq!(
        verdict["recovered"], true,
        "sessions survive a graceful restart: {verdict}"
    );

    let caught = Node::start(
        "catch-up",
        &[
            "--url",
            &server.url(),
            "--count",
            "300",
            "--then",
            "probe mid-stream",
        ],
    )
    .verdict(Duration::from_secs(60));
    assert_eq!(caught["received"], 302, "300 + 2 probes: {caught}");
}

#[test]
fn sigterm_mid_stream_tutorial_client_carries_on_websocket() {
    sigterm_mid_stream("websocket");
}

#[test]
fn sigterm_mid_stream_tutorial_client_carries_on_polling() {
    sigterm_mid_stream("polling");
}

/// A second SIGTERM while shutting down ends the process (best effort: the
/// first shutdown is quick, so this only checks that it exits).
#[test]
fn second_sigterm_exits() {
    let dir = TempDir::new("sigterm2");
    let mut server = Server::start(dir.path(), &["--port", "0", "--store", "chat.db"], &[]);
    server.sigterm();
    server.sigterm();
    let status = wait_until(&mut server.child, Duration::from_secs(10));
    assert!(
        status.is_some(),
        "still running 10 s after two SIGTERMs; stderr:\n{}",
        server.stderr()
    );
    println!("after two SIGTERMs: {:?}", status);
}

/// After the first SIGTERM nothing new starts, on a kept-alive HTTP
/// connection either: `/healthz` answers 503 `shutting down` and a handshake
/// 503 "Server shutting down"; the process still exits 0. (A polling session
/// that does not read keeps the shutdown waiting for it, up to 3 s.)
#[test]
fn after_sigterm_a_kept_alive_connection_starts_nothing_new() {
    let dir = TempDir::new("sigterm-kept-alive");
    let key = "a-key-of-sixteen-or-more";
    let mut server = Server::start(
        dir.path(),
        &["--port", "0", "--store", "memory", "--api-key", key],
        &[],
    );
    let mut kept = KeptAlive::open(server.addr);
    let auth = format!("Authorization: Bearer {key}\r\n");
    let publish = r#"{"event":"chat message","args":["hi"]}"#;
    let (status, stored) = kept.request("POST", "/api/v1/publish", &auth, publish);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(kept.get("/healthz"), (200, "ok\n".to_owned()));
    let (status, open) = kept.get("/socket.io/?EIO=4&transport=polling");
    assert_eq!(status, 200, "{open}");

    server.sigterm();
    let log = server.wait_stderr(|t| t.contains("shutting down"), Duration::from_secs(10));
    assert!(log.contains("shutting down"), "no shutdown logged:\n{log}");
    assert_eq!(kept.get("/healthz"), (503, "shutting down\n".to_owned()));
    let (status, body) = kept.get("/socket.io/?EIO=4&transport=polling");
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"code":3,"message":"Server shutting down"}"#)
    );
    let (status, body) = kept.request("POST", "/api/v1/publish", &auth, publish);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    let status = wait_until(&mut server.child, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}; stderr:\n{}",
        server.stderr()
    );
}

// ---------------------------------------------------------------------- tls --

/// `--tls-cert` / `--tls-key`: the official client connects over https://
/// (long-polling, then the upgrade to wss://, and WebSocket alone) with a
/// self-signed certificate it trusts, sends and hears messages; the first
/// line says https.
#[test]
fn tls_serves_the_official_client_over_https_and_wss() {
    let dir = TempDir::new("tls");
    let (_, cert, key) = self_signed(&dir);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut server = Server::spawn(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        &[],
    );
    assert!(
        server.first_line.starts_with("Tether chat on https://"),
        "{}",
        server.first_line
    );
    let url = format!("https://{}", server.addr);
    for transport in ["upgrade", "websocket"] {
        let verdict = Node::start(
            "roundtrip",
            &["--url", &url, "--transport", transport, "--ca", &cert],
        )
        .verdict(Duration::from_secs(60));
        assert_eq!(verdict["transport"], "websocket", "{verdict}");
        assert_eq!(verdict["heard"], 3, "{verdict}");
    }
    assert!(server.stop(Duration::from_secs(10)).success());
}

/// TLS settings that cannot work are refused naming the setting and the
/// file: a key without a certificate, a file that is not PEM, a key that
/// does not match the certificate.
#[test]
fn tls_settings_that_cannot_work_are_refused() {
    let dir = TempDir::new("tls-bad");
    let (_, cert, key) = self_signed(&dir);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let other = TempDir::new("tls-other");
    let (_, _, other_key) = self_signed(&other);
    let other_key = other_key.display().to_string();
    let junk = dir
        .write("junk.pem", "not a certificate\n")
        .display()
        .to_string();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--tls-key", &key], &["tls_cert", "missing"]),
        (&["--tls-cert", &cert], &["tls_key", "missing"]),
        (
            &["--tls-cert", &junk, "--tls-key", &key],
            &["tls_cert", &junk],
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &other_key],
            &["tls_cert", &cert, &other_key],
        ),
    ];
    for (flags, words) in cases {
        let mut args = vec!["serve", "--check"];
        args.extend_from_slice(flags);
        let out = run(&mut tether(dir.path(), &args, &[]), EXIT_BUDGET).unwrap();
        assert!(!out.status.success(), "{args:?} accepted: {out:?}");
        for word in words {
            assert!(
                out.stderr.contains(word),
                "{args:?}: no {word:?} in {}",
                out.stderr
            );
        }
    }
}

/// One HTTP/1.1 connection kept alive for several requests.
struct KeptAlive(std::io::BufReader<std::net::TcpStream>);

impl KeptAlive {
    fn open(addr: SocketAddr) -> Self {
        let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .expect("connect to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self(std::io::BufReader::new(stream))
    }

    /// GET `path`: (status, body of Content-Length bytes).
    fn get(&mut self, path: &str) -> (u16, String) {
        self.request("GET", path, "", "")
    }

    /// A request with `headers` (each ending in CRLF) and `body`: (status,
    /// body of Content-Length bytes).
    fn request(&mut self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        use std::io::{BufRead, Read, Write};
        write!(
            self.0.get_mut(),
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send a request");
        let mut line = String::new();
        self.0.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut len = 0;
        loop {
            line.clear();
            self.0.read_line(&mut line).expect("header line");
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("content-length:") {
                len = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Once the server has said where it listens, it is up: a SIGTERM from then
/// on is a graceful shutdown (exit 0), not death by the signal's default
/// action. (Twenty tries: the window is short.)
#[test]
fn sigterm_right_after_start_is_graceful() {
    let dir = TempDir::new("early-sigterm");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let mut server = Server::spawn(dir.path(), &["--port", "0", "--store", "memory"], &[]);
        let status = server.stop(Duration::from_secs(10));
        statuses.push(status);
    }
    assert!(
        statuses.iter().all(ExitStatus::success),
        "SIGTERM right after `Tether chat on ...`: {} of {} not graceful: {statuses:?} \
         (wait status 15 = killed by SIGTERM: the handler is installed only after the \
         address is printed)",
        statuses.iter().filter(|s| !s.success()).count(),
        statuses.len()
    );
}

/// `tether history` prints messages as clients get them: the serverOffset
/// of each message in its place, not the store's internal placeholder.
#[test]
fn history_prints_messages_as_clients_get_them() {
    let dir = TempDir::new("history");
    let mut server = Server::start(dir.path(), &["--port", "0", "--store", "chat.db"], &[]);
    let url = server.url();
    Node::start("drive", &["--url", &url, "--transport", "websocket"])
        .verdict(Duration::from_secs(60));
    assert!(server.stop(Duration::from_secs(10)).success());

    let out = run(
        &mut tether(dir.path(), &["history", "--store", "chat.db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 5, "{}", out.stdout);
    for (k, row) in rows.iter().enumerate() {
        let seq = k + 1;
        let args: serde_json::Value =
            serde_json::from_str(row[3]).unwrap_or_else(|e| panic!("args not JSON ({e}): {row:?}"));
        // meta's `time` is when the server took it (checked for a number).
        let time = args[2]["time"].as_u64();
        assert!(time.is_some(), "meta.time in {row:?}");
        let mut args = args;
        args[2]["time"] = serde_json::json!(0);
        assert_eq!(
            args,
            serde_json::json!([format!("drive {seq}"), seq, {"id": format!("drive-{seq}"), "name": null, "time": 0}]),
            "the `chat message` args a client gets (content, serverOffset, meta):\n{}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------- operator --

/// `tether serve ARGS --check` (settings read and checked, nothing served)
/// in `dir` with `env`.
fn check(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    full.push("--check");
    run(&mut tether(dir.path(), &full, env), EXIT_BUDGET).expect("tether serve --check ends")
}

/// `serve --help` gives each setting's default, read from the settings'
/// own defaults (they are merged after the TOML file, so they are not clap
/// defaults and clap does not show them by itself).
#[test]
fn serve_help_shows_each_default() {
    let dir = TempDir::new("help-defaults");
    let out = run(
        &mut tether(dir.path(), &["serve", "--help"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Each flag's section: from its `--flag <VALUE>` line to the next flag.
    let section = |flag: &str| -> String {
        let mut lines = out
            .stdout
            .lines()
            .skip_while(|l| !l.trim_start().split([' ', ',']).any(|word| word == flag));
        let first = lines.next().unwrap_or_default().to_owned();
        let rest: Vec<&str> = lines
            .take_while(|l| !l.trim_start().starts_with('-'))
            .collect();
        format!("{first}\n{}", rest.join("\n"))
    };
    for (flag, default) in [
        ("--host", "127.0.0.1"),
        ("--port", "3000"),
        ("--store", "tether.db"),
        ("--redis-prefix", "tether"),
        ("--durability", "fsync"),
        ("--recovery-window", "10m"),
        ("--retention-age", "30d"),
        ("--retention-count", "0"),
        ("--stream-retention", "none"),
        ("--max-payload", "1000000"),
        ("--max-connections", "100000"),
        ("--max-buffer", "4194304"),
        ("--max-buffer-total", "268435456"),
        ("--header-read-timeout", "10s"),
        ("--body-read-timeout", "20s"),
        ("--write-timeout", "60s"),
        ("--max-connections-per-ip", "0"),
        ("--cors-origins", "none"),
        ("--log-format", "pretty"),
        ("--api-key", "none"),
    ] {
        let text = section(flag);
        assert!(
            text.contains(&format!("[default: {default}]")),
            "`serve --help` does not give {flag}'s default {default}:\n{text}\n\nall of it:\n{}",
            out.stdout
        );
    }
    // What the help says is what a server with no setting uses.
    let out = check(&dir, &[], &[]);
    assert!(out.status.success(), "{out:?}");
    for line in [
        "port = 3000",
        "store = \"tether.db\"",
        "recovery_window = \"10m\"",
        "retention_age = \"30d\"",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "{line}:\n{}",
            out.stdout
        );
    }
}

/// A bad value in an environment variable is reported with the variable's
/// name, not the flag's (clap names `--port` whichever gave the value); a
/// bad flag still names the flag.
#[test]
fn env_errors_name_the_variable() {
    let dir = TempDir::new("env-errors");
    for (var, value, name) in [
        ("TETHER_PORT", "abc", "port"),
        ("TETHER_PORT", "70000", "port"),
        ("TETHER_MAX_PAYLOAD", "lots", "max_payload"),
        ("TETHER_RETENTION_COUNT", "-3", "retention_count"),
        ("TETHER_RECOVERY_WINDOW", "soon", "recovery_window"),
        ("TETHER_DURABILITY", "never", "durability"),
        ("TETHER_CORS_ORIGINS", "example.com", "cors_origins"),
    ] {
        let out = check(&dir, &[], &[(var, value)]);
        assert!(!out.status.success(), "{var}={value} accepted: {out:?}");
        let flag = format!("--{}", name.replace('_', "-"));
        assert!(
            out.stderr.contains(var) && out.stderr.contains(value) && !out.stderr.contains(&flag),
            "{var}={value}: the error must name {var} (and not {flag}): {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // The flag wins over the variable: a bad variable under a good flag is
    // not used, and a bad flag is the flag's error.
    let out = check(&dir, &["--port", "4000"], &[("TETHER_PORT", "abc")]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("port = 4000"), "{out:?}");
    let out = check(&dir, &["--port", "abc"], &[("TETHER_PORT", "4000")]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("--port") && !out.stderr.contains("TETHER_PORT"),
        "{}",
        out.stderr
    );
    let out = check(&dir, &["--recovery-window", "soon"], &[]);
    assert!(
        !out.status.success() && out.stderr.contains("--recovery-window"),
        "{out:?}"
    );
}

/// Errors in the TOML file name the key as the user wrote it (not figment's
/// `default.port`) and the file.
#[test]
fn toml_errors_name_the_key_as_written() {
    let dir = TempDir::new("toml-errors");
    for (toml, want) in [
        ("port = 70000", &["`port`", "tether.toml"][..]),
        ("port = \"eighty\"", &["`port`", "tether.toml"]),
        ("max_buffer = -1", &["`max_buffer`", "tether.toml"]),
        (
            "max-payload = 4096",
            &["`max-payload`", "`max_payload`", "tether.toml"],
        ),
        ("colour = \"blue\"", &["`colour`", "tether.toml"]),
        (
            "recovery_window = \"soon\"",
            &["`recovery_window`", "tether.toml"],
        ),
        ("port = ", &["tether.toml", "line 1"]),
    ] {
        dir.write("tether.toml", &format!("{toml}\n"));
        let out = check(&dir, &["--config", "tether.toml"], &[]);
        assert!(!out.status.success(), "{toml:?} accepted: {out:?}");
        for want in want {
            assert!(
                out.stderr.contains(want),
                "{toml:?}: no {want} in {}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("default."), "{toml:?}: {}", out.stderr);
    }
}

/// A duration without a unit is refused wherever it is given (it used to be
/// seconds, silently); with a unit it is taken.
#[test]
fn durations_need_a_unit() {
    let dir = TempDir::new("durations");
    dir.write("tether.toml", "write_timeout = \"60\"\n");
    for (args, env, name) in [
        (&["--recovery-window", "10"][..], &[][..], "recovery_window"),
        (&[], &[("TETHER_RETENTION_AGE", "86400")], "retention_age"),
        (&["--header-read-timeout", "10"], &[], "header_read_timeout"),
        (&["--body-read-timeout", "5"], &[], "body_read_timeout"),
        (&["--config", "tether.toml"], &[], "write_timeout"),
    ] {
        let out = check(&dir, args, env);
        assert!(!out.status.success(), "{args:?} {env:?} accepted: {out:?}");
        assert!(
            out.stderr.contains(name) && out.stderr.contains("no unit"),
            "{args:?} {env:?}: {}",
            out.stderr
        );
    }
    let out = check(
        &dir,
        &[
            "--recovery-window",
            "10s",
            "--header-read-timeout",
            "500ms",
            "--retention-age",
            "2m",
            "--stream-retention",
            "typing=100,news=7d/5000",
        ],
        &[("TETHER_WRITE_TIMEOUT", "2h")],
    );
    assert!(out.status.success(), "{out:?}");
    for line in [
        "recovery_window = \"10s\"",
        "header_read_timeout = \"500ms\"",
        "retention_age = \"2m\"",
        "write_timeout = \"2h\"",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "{line}:\n{}",
            out.stdout
        );
    }
}

/// `--cors-origins` takes origins (`scheme://host[:port]`) and `*`, and
/// refuses anything else instead of never matching a browser's `Origin`.
#[test]
fn cors_origins_must_be_origins() {
    let dir = TempDir::new("cors");
    for good in [
        "*",
        "https://chat.example.com",
        "http://localhost:8080,https://chat.example.com",
        "http://[::1]:3000",
    ] {
        let out = check(&dir, &["--cors-origins", good], &[]);
        assert!(out.status.success(), "{good}: {out:?}");
    }
    for bad in [
        "chat.example.com",
        "https://chat.example.com/",
        "https://chat.example.com/app",
        "https://chat.example.com:99999",
        "https://Chat.example.com",
        "https://chat.example.com:443",
        "http://localhost:8080,localhost",
    ] {
        let out = check(&dir, &["--cors-origins", bad], &[]);
        assert!(!out.status.success(), "{bad} accepted: {out:?}");
        assert!(
            out.stderr.contains("cors_origins") && out.stderr.contains("not an origin"),
            "{bad}: {}",
            out.stderr
        );
    }
}

/// Store errors name the path and say what is wrong, before anything is
/// served; nothing is created.
#[test]
fn store_errors_name_the_path_and_the_problem() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("store-errors");
    dir.write(
        "notes.txt",
        "not a database, just some text that is long enough\n",
    );
    let readonly = dir.write("readonly.db", "");
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    for (store, want) in [
        (
            "missing/dir/chat.db",
            "directory missing/dir does not exist",
        ),
        ("notes.txt", "not a SQLite database"),
        ("readonly.db", "read-only"),
        ("adir", "is a directory"),
    ] {
        let before = dir.entries();
        let out = run(
            &mut tether(dir.path(), &["serve", "--port", "0", "--store", store], &[]),
            EXIT_BUDGET,
        )
        .unwrap();
        assert!(!out.status.success(), "{store}: {out:?}");
        assert!(
            out.stderr.contains(store) && out.stderr.contains(want),
            "{store}: want {want:?} in {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{store}: served: {out:?}");
        assert_eq!(dir.entries(), before, "{store}: files left behind");
    }
    // The tools say the same.
    let out = run(
        &mut tether(dir.path(), &["history", "--store", "notes.txt"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(
        !out.status.success() && out.stderr.contains("notes.txt: not a SQLite database"),
        "{out:?}"
    );
}

/// `tether history` prints each time as RFC 3339 (UTC, milliseconds), and
/// as milliseconds since the epoch with `--epoch-ms`; the other columns
/// stay what they were.
#[test]
fn history_prints_readable_times() {
    use tether::store::prelude::*;
    let dir = TempDir::new("history-times");
    let path = dir.path().join("chat.db");
    let before = std::time::SystemTime::now();
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store =
            tether::store::SqliteStore::open(&path, tether::store::Durability::Fsync).unwrap();
        rt.block_on(store.append(vec![tether::store::NewEntry {
            target: tether::store::Target {
                nsp: "/".into(),
                ..Default::default()
            },
            event: "chat message".into(),
            args: r#"["hello"]"#.into(),
            attachments: Vec::new(),
        }]))
        .unwrap();
    }
    let epoch_ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    };
    let (from, to) = (epoch_ms(before), epoch_ms(std::time::SystemTime::now()));

    let out = run(
        &mut tether(dir.path(), &["history", "--store", "chat.db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let row: Vec<&str> = out.stdout.trim_end().split('\t').collect();
    assert_eq!(row.len(), 4, "{}", out.stdout);
    assert_eq!(
        (row[0], row[2], row[3]),
        ("1", "chat message", r#"["hello"]"#)
    );
    let time = row[1];
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "RFC 3339 UTC with milliseconds (2026-12-03T17:30:09.123Z): {time:?}"
    );
    let parsed = humantime::parse_rfc3339(time).unwrap_or_else(|e| panic!("{time:?}: {e}"));
    assert!(
        (from..=to).contains(&epoch_ms(parsed)),
        "{time} not within the append"
    );

    let out = run(
        &mut tether(
            dir.path(),
            &["history", "--store", "chat.db", "--epoch-ms"],
            &[],
        ),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let row: Vec<&str> = out.stdout.trim_end().split('\t').collect();
    assert_eq!(row.len(), 4, "{}", out.stdout);
    let ms: i64 = row[1].parse().unwrap_or_else(|e| panic!("{row:?}: {e}"));
    assert_eq!(ms, epoch_ms(parsed), "the same time, in milliseconds");
}

// ----------------------------------------------------------------- postgres --

/// A schema of its own on the shared PostgreSQL (127.0.0.1:5432, user
/// `postgres`, database `test`), dropped with everything in it on drop.
struct PgSchema {
    schema: String,
}

impl PgSchema {
    const BASE: &'static str = "postgres://postgres@127.0.0.1:5432/test";

    /// `None`: PostgreSQL does not answer and this is not CI (said on
    /// stderr); in CI that is a failure.
    fn new(test: &str) -> Option<PgSchema> {
        let schema = format!(
            "cli_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0)
        );
        match Self::sql("SELECT 1") {
            Ok(()) => Some(PgSchema { schema }),
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!(
                    "{test}: PostgreSQL unreachable at {}: {why} (CI=true)",
                    Self::BASE
                )
            }
            Err(why) => {
                eprintln!(
                    "SKIPPED {test}: PostgreSQL unreachable at {}: {why}",
                    Self::BASE
                );
                None
            }
        }
    }

    fn url(&self) -> String {
        format!("{}?schema={}", Self::BASE, self.schema)
    }

    /// Runs `sql` on a connection of its own (a runtime of its own too).
    fn sql(sql: &str) -> Result<(), String> {
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let connect = tokio_postgres::connect(Self::BASE, tokio_postgres::NoTls);
                let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
                    .await
                    .map_err(|_| "no answer within 5 s".to_owned())?
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join()
        .map_err(|_| "the SQL thread panicked".to_owned())?
    }

    /// True when the schema exists.
    fn exists(name: &str) -> bool {
        // A DO block that fails when the schema is missing.
        Self::sql(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{name}') \
             THEN RAISE EXCEPTION 'missing'; END IF; END $$"
        ))
        .is_ok()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Err(e) = Self::sql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)) {
            eprintln!("could not drop schema {}: {e}", self.schema);
        }
    }
}

/// Two `tether serve` nodes on one postgres:// store: what a client sends
/// through one is stored once, and a client of the other catches up on it
/// from offset 0 and sees its own probe come back through the store's feed.
/// Then every store tool reads the store; a schema holding no store is
/// refused, and not created. Other schemes are refused naming the URL.
#[test]
fn postgres_store_serves_two_nodes_and_the_tools_read_it() {
    let Some(pg) = PgSchema::new("postgres_store_serves_two_nodes_and_the_tools_read_it") else {
        return;
    };
    let store = pg.url();
    let dir = TempDir::new("postgres");
    let mut a = Server::start(dir.path(), &["--port", "0", "--store", &store], &[]);
    let mut b = Server::start(dir.path(), &["--port", "0", "--store", &store], &[]);
    assert_eq!(http_get(a.addr, "/healthz").unwrap().0, 200);
    let sent =
        Node::start("send", &["--url", &a.url(), "--count", "20"]).verdict(Duration::from_secs(60));
    assert_eq!(
        (
            sent["acked"].as_u64(),
            sent["first"].as_u64(),
            sent["last"].as_u64()
        ),
        (Some(20), Some(1), Some(20)),
        "{sent}"
    );
    let caught = Node::start(
        "catch-up",
        &["--url", &b.url(), "--count", "20", "--serverOffset", "0"],
    )
    .verdict(Duration::from_secs(60));
    assert_eq!(
        caught["received"], 21,
        "20 + the probe, through node b: {caught}"
    );
    assert_eq!(caught["probe"].as_u64(), Some(21), "{caught}");
    assert!(a.stop(EXIT_BUDGET).success(), "{}", a.stderr());
    assert!(b.stop(EXIT_BUDGET).success(), "{}", b.stderr());
    assert!(
        !dir.entries().iter().any(|e| e.ends_with(".db")),
        "no SQLite file: {:?}",
        dir.entries()
    );

    let tool = |args: &[&str]| {
        let out = run(&mut tether(dir.path(), args, &[]), EXIT_BUDGET).unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        out.stdout
    };
    let bounds = tool(&["bounds", "--store", &store]);
    let lines: Vec<&str> = bounds.lines().collect();
    assert!(
        lines[0]
            .strip_prefix("epoch ")
            .is_some_and(|e| !e.is_empty()),
        "{bounds}"
    );
    assert_eq!(&lines[1..], ["latest 21", "oldest kept 1"], "{bounds}");

    let history = tool(&["history", "--store", &store, "--limit", "3"]);
    let rows: Vec<Vec<&str>> = history.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        ["19", "20", "21"],
        "{history}"
    );
    assert!(rows.iter().all(|r| r[2] == "chat message"), "{history}");
    assert!(rows[0][3].contains("message 19"), "{history}");

    let streams = tool(&["streams", "--store", &store]);
    assert_eq!(
        streams.lines().collect::<Vec<_>>(),
        ["nsp\troom\tentries\toldest\tlatest", "/\t\t21\t1\t21"],
        "{streams}"
    );
    // The clients left cleanly (their sessions went with them): a session
    // and an inbox entry of a library node on the same store.
    {
        use tether::store::prelude::*;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let node = tether::store::PostgresStore::connect(&store).await.unwrap();
            node.save_session(tether::store::SessionRecord {
                pid: "private".into(),
                sid: "public-sid".into(),
                nsp: "/".into(),
                rooms: vec!["public-sid".into(), "lobby".into()],
                data: None,
                user: Some("ann".into()),
                start_seq: 21,
                connected: true,
                updated_ms: 1_234,
            })
            .await
            .unwrap();
            node.inbox_push("ann", "note".into(), r#"["hi"]"#.into(), vec![])
                .await
                .unwrap();
        });
    }
    let sessions = tool(&["sessions", "--store", &store]);
    assert_eq!(
        sessions.lines().collect::<Vec<_>>(),
        [
            "sid\tnsp\trooms\tconnected\tupdated_ms",
            "public-sid\t/\t[\"public-sid\",\"lobby\"]\ttrue\t1234"
        ],
        "public ids only: {sessions}"
    );
    let inbox = tool(&["inbox", "--store", &store, "ann"]);
    let row: Vec<&str> = inbox.trim_end().split('\t').collect();
    assert_eq!(
        (row[0], row[2], row[3]),
        ("1", "note", r#"["hi"]"#),
        "{inbox}"
    );
    assert_eq!(
        tool(&["inbox", "--store", &store, "nobody"]),
        "",
        "an empty inbox prints nothing"
    );

    // A schema without a store: the tools refuse it and create nothing.
    let empty = format!("{}_none", pg.schema);
    let missing = format!("{}?schema={empty}", PgSchema::BASE);
    let out = run(
        &mut tether(dir.path(), &["bounds", "--store", &missing], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(
        !out.status.success() && out.stderr.contains(&missing) && out.stderr.contains("no store"),
        "{out:?}"
    );
    assert!(
        !PgSchema::exists(&empty),
        "the tools created schema {empty}"
    );
    assert!(PgSchema::exists(&pg.schema));

    // Other schemes: refused by the tools too, naming the URL and the schemes.
    let out = run(
        &mut tether(dir.path(), &["history", "--store", "mysql://u@h/db"], &[]),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(
        !out.status.success()
            && out.stderr.contains("mysql://u@h/db")
            && out.stderr.contains("postgres://"),
        "{out:?}"
    );
}

/// A `tether serve` node on a postgres:// store killed with SIGKILL while
/// its client is connected: every message it acknowledged is served by
/// another node started afterwards on the same store (from offset 0, then
/// the new client's own probe), nothing twice.
#[test]
fn postgres_node_killed_loses_nothing_it_acknowledged() {
    let Some(pg) = PgSchema::new("postgres_node_killed_loses_nothing_it_acknowledged") else {
        return;
    };
    let store = pg.url();
    let dir = TempDir::new("postgres-kill");
    let mut a = Server::start(dir.path(), &["--port", "0", "--store", &store], &[]);
    let mut sender = Node::start("send", &["--url", &a.url(), "--count", "50", "--hold", "1"]);
    sender.expect_line("READY sigterm", Duration::from_secs(60));
    a.child.kill().expect("SIGKILL the node");
    let _ = a.child.wait();
    let sent = sender.verdict(Duration::from_secs(30));
    assert_eq!(
        (
            sent["acked"].as_u64(),
            sent["first"].as_u64(),
            sent["last"].as_u64()
        ),
        (Some(50), Some(1), Some(50)),
        "{sent}"
    );

    let mut b = Server::start(dir.path(), &["--port", "0", "--store", &store], &[]);
    let caught = Node::start(
        "catch-up",
        &["--url", &b.url(), "--count", "50", "--serverOffset", "0"],
    )
    .verdict(Duration::from_secs(60));
    assert_eq!(caught["received"], 51, "50 + the probe: {caught}");
    assert_eq!(
        (
            caught["first"].as_u64(),
            caught["last"].as_u64(),
            caught["probe"].as_u64()
        ),
        (Some(1), Some(50), Some(51)),
        "{caught}"
    );
    assert!(b.stop(EXIT_BUDGET).success(), "{}", b.stderr());
}

/// Node a of two `tether serve` nodes on a postgres:// store is killed with
/// SIGKILL mid-stream; a new node takes its address. The official client
/// reconnects by itself and recovers its session from the store (rooms,
/// offset), gets every message once, in order, and its retries land once.
#[test]
fn postgres_client_recovers_on_another_node_after_a_kill() {
    let Some(pg) = PgSchema::new("postgres_client_recovers_on_another_node_after_a_kill") else {
        return;
    };
    let store = pg.url();
    let dir = TempDir::new("postgres-recover");
    let port = free_port().to_string();
    let args = ["--port", port.as_str(), "--store", store.as_str()];
    let mut a = Server::start(dir.path(), &args, &[]);
    let mut other = Server::start(dir.path(), &["--port", "0", "--store", &store], &[]);
    let mut client = Node::start(
        "mid-stream",
        &["--url", &a.url(), "--count", "150", "--at", "50"],
    );
    client.expect_line("READY sigterm", Duration::from_secs(60));
    a.child.kill().expect("SIGKILL node a");
    let _ = a.child.wait();
    let mut b = Server::start(dir.path(), &args, &[]);
    let verdict = client.verdict(Duration::from_secs(120));
    assert_eq!(
        verdict["recovered"], true,
        "the session of a killed node recovers on another: {verdict}"
    );
    let caught = Node::start(
        "catch-up",
        &[
            "--url",
            &other.url(),
            "--count",
            "150",
            "--then",
            "probe mid-stream",
        ],
    )
    .verdict(Duration::from_secs(60));
    assert_eq!(
        caught["received"], 152,
        "150 + 2 probes, through the other node: {caught}"
    );
    assert!(b.stop(EXIT_BUDGET).success(), "{}", b.stderr());
    assert!(other.stop(EXIT_BUDGET).success(), "{}", other.stderr());
}

// -------------------------------------------------------------------- redis --

/// The store tools on a redis:// store (with `--redis-prefix`): what a
/// `tether serve` node stored is read back, and a prefix holding no store is
/// refused without being given one.
#[test]
fn the_store_tools_read_a_redis_store() {
    use tether_testkit::redis as support;
    let test = "the_store_tools_read_a_redis_store";
    let Some(url) = support::shared(test) else {
        return;
    };
    let prefix = support::unique_prefix("cli-tools");
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = tether_testkit::redis::delete_prefix(&self.0, &self.1);
        }
    }
    let _cleanup = Cleanup(url.clone(), prefix.clone());
    let dir = TempDir::new("redis-tools");
    let mut server = Server::start(
        dir.path(),
        &["--port", "0", "--store", &url, "--redis-prefix", &prefix],
        &[],
    );
    let sent = Node::start("send", &["--url", &server.url(), "--count", "5"])
        .verdict(Duration::from_secs(60));
    assert_eq!(sent["acked"].as_u64(), Some(5), "{sent}");
    assert!(server.stop(EXIT_BUDGET).success(), "{}", server.stderr());
    {
        use tether::store::prelude::*;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let node = tether::store::RedisStore::connect(&url, &prefix).unwrap();
            node.save_session(tether::store::SessionRecord {
                pid: "private".into(),
                sid: "public-sid".into(),
                nsp: "/".into(),
                rooms: vec!["public-sid".into()],
                data: None,
                user: None,
                start_seq: 5,
                connected: false,
                updated_ms: 1_234,
            })
            .await
            .unwrap();
            node.inbox_push("ann", "note".into(), r#"["hi"]"#.into(), vec![])
                .await
                .unwrap();
        });
    }

    let tool = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["--store", url.as_str(), "--redis-prefix", prefix.as_str()]);
        let out = run(&mut tether(dir.path(), &full, &[]), EXIT_BUDGET).unwrap();
        assert!(out.status.success(), "{full:?}: {out:?}");
        out.stdout
    };
    let bounds = tool(&["bounds"]);
    assert_eq!(
        bounds.lines().skip(1).collect::<Vec<_>>(),
        ["latest 5", "oldest kept 1"],
        "{bounds}"
    );
    let history = tool(&["history", "--limit", "2"]);
    let rows: Vec<Vec<&str>> = history.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        ["4", "5"],
        "{history}"
    );
    assert!(rows[1][3].contains("message 5"), "{history}");
    assert_eq!(
        tool(&["streams"]).lines().collect::<Vec<_>>(),
        ["nsp\troom\tentries\toldest\tlatest", "/\t\t5\t1\t5"]
    );
    assert_eq!(
        tool(&["sessions"]).lines().collect::<Vec<_>>(),
        [
            "sid\tnsp\trooms\tconnected\tupdated_ms",
            "public-sid\t/\t[\"public-sid\"]\tfalse\t1234"
        ]
    );
    let inbox = tool(&["inbox", "ann"]);
    assert!(
        inbox.starts_with("1\t") && inbox.contains("\tnote\t[\"hi\"]"),
        "{inbox}"
    );

    let empty = support::unique_prefix("cli-tools-none");
    let out = run(
        &mut tether(
            dir.path(),
            &["bounds", "--store", &url, "--redis-prefix", &empty],
            &[],
        ),
        EXIT_BUDGET,
    )
    .unwrap();
    assert!(
        !out.status.success() && out.stderr.contains("no store under the key prefix"),
        "{out:?}"
    );
    assert_eq!(
        support::delete_prefix(&url, &empty).unwrap(),
        0,
        "the tools gave the empty prefix no store"
    );
}
