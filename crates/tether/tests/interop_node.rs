//! The official npm `socket.io-client` (pinned in tests/node/package-lock.json)
//! against a Tether server: every scenario of tests/node/scenarios over
//! long-polling, WebSocket, and polling upgraded to WebSocket.
//!
//! Needs `npm ci` in tests/node (the README's test command and .ci/run do it).

use tether_testkit::interop;

use std::path::PathBuf;

use tether::{Parser, SocketIo};

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// Starts a contract server on a free loopback port; returns its URL.
async fn start_server(parser: Parser) -> String {
    let io = SocketIo::new(interop::config().parser(parser));
    interop::install(&io);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.serve(listener));
    format!("http://{addr}")
}

/// Runs one scenario script and checks its verdict and its final JSON line.
async fn scenario(name: &str, transport: &str, parser: Parser) {
    assert!(
        node_dir().join("node_modules/socket.io-client").is_dir(),
        "tests/node/node_modules is missing: run `npm ci` in tests/node (the README's test command does)"
    );
    let url = start_server(parser).await;
    let parser_arg = match parser {
        Parser::Json => "default",
        Parser::MsgPack => "msgpack",
    };
    let out = tokio::process::Command::new("node")
        .arg(format!("scenarios/{name}.mjs"))
        .args([
            "--url",
            &url,
            "--transport",
            transport,
            "--parser",
            parser_arg,
        ])
        .current_dir(node_dir())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}/{transport}/{parser_arg} failed:\n{stdout}\n{stderr}"
    );
    let verdict: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON verdict from {name}: {stdout}"));
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["transport"], transport, "{verdict}");
    println!("{verdict}");
}

macro_rules! scenarios {
    ($($test:ident: $name:literal, $transport:literal, $parser:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                scenario($name, $transport, $parser).await;
            }
        )*
    };
}

scenarios! {
    events_polling: "events", "polling", Parser::Json;
    events_websocket: "events", "websocket", Parser::Json;
    events_upgrade: "events", "upgrade", Parser::Json;
    acks_polling: "acks", "polling", Parser::Json;
    acks_websocket: "acks", "websocket", Parser::Json;
    acks_upgrade: "acks", "upgrade", Parser::Json;
    binary_polling: "binary", "polling", Parser::Json;
    binary_websocket: "binary", "websocket", Parser::Json;
    binary_upgrade: "binary", "upgrade", Parser::Json;
    namespaces_polling: "namespaces", "polling", Parser::Json;
    namespaces_websocket: "namespaces", "websocket", Parser::Json;
    namespaces_upgrade: "namespaces", "upgrade", Parser::Json;
    rooms_polling: "rooms", "polling", Parser::Json;
    rooms_websocket: "rooms", "websocket", Parser::Json;
    rooms_upgrade: "rooms", "upgrade", Parser::Json;
    disconnect_polling: "disconnect", "polling", Parser::Json;
    disconnect_websocket: "disconnect", "websocket", Parser::Json;
    disconnect_upgrade: "disconnect", "upgrade", Parser::Json;
    reconnect_polling: "reconnect", "polling", Parser::Json;
    reconnect_websocket: "reconnect", "websocket", Parser::Json;
    reconnect_upgrade: "reconnect", "upgrade", Parser::Json;
    msgpack_events_polling: "events", "polling", Parser::MsgPack;
    msgpack_acks_websocket: "acks", "websocket", Parser::MsgPack;
    msgpack_binary_polling: "binary", "polling", Parser::MsgPack;
    msgpack_binary_websocket: "binary", "websocket", Parser::MsgPack;
    msgpack_namespaces_upgrade: "namespaces", "upgrade", Parser::MsgPack;
    msgpack_rooms_websocket: "rooms", "websocket", Parser::MsgPack;
}
