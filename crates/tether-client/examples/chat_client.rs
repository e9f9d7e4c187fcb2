//! A command-line client of the Tether chat (`tether serve`): lines typed on
//! stdin are sent, messages are printed as they arrive.
//!
//! ```sh
//! cargo run --release --bin tether -- serve            # the chat on :3000
//! cargo run -p tether-client --example chat_client -- http://127.0.0.1:3000 --name ada
//! ```
//!
//! Contract (the Socket.IO tutorial's): `chat message` (content, clientOffset)
//! acked with `{seq, duplicate}`; the server sends `chat message` (content,
//! serverOffset, meta {id, name}) plus Tether's recovery offset. Every line
//! goes through the retry queue with a message id (the clientOffset) that its
//! retries reuse, so it is stored once; the client sends the last
//! serverOffset it saw at each connect (`auth.serverOffset`, a [`Stream`]),
//! so a reconnection catches up, and the connection state recovery covers
//! disconnections. With `--state FILE`, the last serverOffset and the lines
//! not acknowledged yet (the outbox) survive a restart of the client.

use std::time::Duration;

use serde_json::{json, Value};
use tether_client::{Client, Lifecycle, Position, Stream, Transport};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "http://127.0.0.1:3000".to_owned();
    let mut name = std::env::var("USER").unwrap_or_else(|_| "anonymous".into());
    let mut websocket_only = false;
    let mut state = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = args.next().ok_or("--name needs a value")?,
            "--websocket" => websocket_only = true,
            "--state" => state = Some(args.next().ok_or("--state needs a file")?),
            "-h" | "--help" => {
                eprintln!("usage: chat_client [URL] [--name NAME] [--websocket] [--state FILE]");
                return Ok(());
            }
            other => url = other.to_owned(),
        }
    }

    let transports = if websocket_only {
        vec![Transport::WebSocket]
    } else {
        vec![Transport::Polling, Transport::WebSocket]
    };
    let mut builder = Client::builder(url.as_str())
        .transports(transports)
        // serverOffset 0 at first: the history comes first, as in the
        // tutorial; then the stream's last position replaces it.
        .auth(json!({ "name": name, "serverOffset": 0 }))
        .stream(
            Stream::new("serverOffset")
                .event("chat message")
                .position(Position::Arg(1)),
        )
        .ack_timeout(Duration::from_secs(5))
        .retries(10)
        .on("chat message", |ev| async move {
            let content: String = ev.args().get(0).unwrap_or_default();
            let meta: Value = ev.args().get(2).unwrap_or_default();
            let who = meta["name"].as_str().unwrap_or("anonymous");
            println!("[{who}] {content}");
        });
    if let Some(state) = state {
        builder = builder.state_file(state);
    }
    let client = builder.build().await?;
    eprintln!("connected to {url} as {name} (type lines; Ctrl-D quits)");

    let mut lifecycle = client.manager().lifecycle();
    tokio::spawn(async move {
        while let Some(ev) = lifecycle.recv().await {
            match ev {
                Lifecycle::Disconnect { reason, .. } => eprintln!("* disconnected: {reason}"),
                Lifecycle::ReconnectAttempt { attempt } => eprintln!("* reconnecting ({attempt})"),
                Lifecycle::Connect { recovered, .. } => {
                    eprintln!("* connected{}", if recovered { " (recovered)" } else { "" })
                }
                Lifecycle::ReconnectFailed => eprintln!("* gave up reconnecting"),
                _ => {}
            }
        }
    });

    // One sender task keeps the order of the lines.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let socket = client.socket().clone();
    let sender = tokio::spawn(async move {
        while let Some(line) = lines_rx.recv().await {
            match socket.emit_reliable("chat message", (line,)).await {
                Ok(sent) => {
                    let ack: Value = sent.ack.get(0).unwrap_or_default();
                    if let Some(error) = ack.get("error") {
                        eprintln!("* not sent: {error}");
                    }
                }
                Err(e) => eprintln!("* not sent: {e}"),
            }
        }
    });
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        let line = line.trim().to_owned();
        if !line.is_empty() {
            lines_tx.send(line)?;
        }
    }
    drop(lines_tx);
    // Let the last lines be acknowledged before leaving.
    let _ = tokio::time::timeout(Duration::from_secs(10), sender).await;
    client.close();
    Ok(())
}
