//! The benchmark's clients: publishers and subscribers, on the Rust client
//! (`tether-client`, in this process) and on the official npm
//! `socket.io-client` (`bench/faults-node.mjs`, one Node process each). All
//! report what they see as [`Obs`] on one channel.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tether_client::{Client, Lifecycle, Reconnection, Transport};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::check::MsgId;

/// Which client library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// `tether-client`.
    Rust,
    /// The official npm `socket.io-client`.
    Node,
}

impl Lib {
    /// `rust` or `node`.
    pub fn name(self) -> &'static str {
        match self {
            Lib::Rust => "rust",
            Lib::Node => "node",
        }
    }
}

/// An observation of one client (`who`: its index among all clients).
#[derive(Debug, Clone)]
pub enum Obs {
    /// A publisher emitted a message for the first time.
    Sent { who: usize, seq: u64 },
    /// A publisher's message was acknowledged with a position.
    Acked {
        who: usize,
        seq: u64,
        offset: u64,
        duplicate: bool,
    },
    /// A publisher emitted a message again (retries ran out or error ack).
    Retried,
    /// A publisher sent all its messages.
    Done { who: usize },
    /// A subscriber received a message.
    Received {
        who: usize,
        content: String,
        offset: u64,
    },
    /// A subscriber received an event it could not read.
    Malformed { who: usize, what: String },
    /// A client connected; `after` is the time since its disconnection
    /// (`None` for the first connection).
    Connected {
        who: usize,
        recovered: bool,
        after: Option<Duration>,
    },
    /// A client lost its connection.
    Disconnected { who: usize, reason: String },
    /// A client's connection to the namespace was refused (CONNECT_ERROR, or
    /// a failed attempt to open the connection); `gave_up`: the client will
    /// not try again by itself.
    ConnectError {
        who: usize,
        message: String,
        gave_up: bool,
    },
    /// A client ended (its task or process).
    Ended { who: usize, error: Option<String> },
}

/// What a client does.
#[derive(Debug, Clone)]
pub struct Role {
    /// Index among all clients (used in [`Obs`]).
    pub who: usize,
    /// Name: the publisher id in message contents.
    pub name: String,
    /// Library.
    pub lib: Lib,
    /// Publisher of `count` messages, or subscriber.
    pub publish: Option<u64>,
    /// Its own URL (a slow consumer's proxy) instead of [`Common::url`].
    pub via: Option<String>,
    /// Pause between two messages of a publisher.
    pub pace: Duration,
    /// Time a subscriber spends on each message.
    pub slow: Duration,
    /// Filler bytes in each message of a publisher.
    pub pad: usize,
}

/// Settings shared by every client.
#[derive(Debug, Clone)]
pub struct Common {
    /// `http://127.0.0.1:PORT` (the proxy).
    pub url: String,
    /// Ack timeout of one try.
    pub ack_timeout: Duration,
    /// When every client must have stopped.
    pub deadline: Instant,
    /// The Node script.
    pub node_script: PathBuf,
    /// The `node` executable.
    pub node: PathBuf,
    /// `--transports` of the Node script.
    pub node_transports: String,
    /// Transports of the Rust clients.
    pub rust_transports: Vec<Transport>,
}

/// Parses `websocket`, `polling` or `polling,websocket`.
pub fn parse_transports(s: &str) -> Result<Vec<Transport>, String> {
    s.split(',')
        .map(|t| match t.trim() {
            "websocket" => Ok(Transport::WebSocket),
            "polling" => Ok(Transport::Polling),
            other => Err(format!(
                "unknown transport {other:?} (websocket or polling)"
            )),
        })
        .collect()
}

/// A running client; stopped with [`Running::stop`].
pub enum Running {
    /// A task of this process.
    Rust {
        /// The task.
        task: JoinHandle<()>,
        /// Set to true to stop it.
        stop: watch::Sender<bool>,
    },
    /// A Node process.
    Node {
        /// The process (its stdin closed to stop it).
        child: Child,
        /// Reads its stdout.
        reader: JoinHandle<()>,
    },
}

impl Running {
    /// Stops the client and waits (bounded) for it to end.
    pub async fn stop(self) {
        match self {
            Running::Rust { task, stop } => {
                let _ = stop.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
            Running::Node { mut child, reader } => {
                // Closing stdin asks the script for its summary.
                drop(child.stdin.take());
                if tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
            }
        }
    }
}

/// Starts a client.
pub fn start(
    role: Role,
    common: &Common,
    obs: mpsc::UnboundedSender<Obs>,
) -> std::io::Result<Running> {
    match role.lib {
        Lib::Rust => {
            let (stop, stop_rx) = watch::channel(false);
            let common = common.clone();
            let who = role.who;
            let task = tokio::spawn(async move {
                let result = match role.publish {
                    Some(count) => rust_publisher(&role, count, &common, &obs, stop_rx).await,
                    None => rust_subscriber(&role, &common, &obs, stop_rx).await,
                };
                let _ = obs.send(Obs::Ended {
                    who,
                    error: result.err().map(|e| e.to_string()),
                });
            });
            Ok(Running::Rust { task, stop })
        }
        Lib::Node => start_node(role, common, obs),
    }
}

/// The reconnection of the Rust clients (as the Node script's).
fn reconnection() -> Reconnection {
    Reconnection {
        delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        ..Reconnection::default()
    }
}

/// Forwards a Rust client's connections and disconnections as [`Obs`].
fn watch_lifecycle(client: &Client, who: usize, obs: mpsc::UnboundedSender<Obs>) -> JoinHandle<()> {
    let mut events = client.manager().lifecycle();
    tokio::spawn(async move {
        let mut lost_at: Option<Instant> = None;
        while let Some(ev) = events.recv().await {
            match ev {
                Lifecycle::Connect { recovered, .. } => {
                    let _ = obs.send(Obs::Connected {
                        who,
                        recovered,
                        after: lost_at.take().map(|t| t.elapsed()),
                    });
                }
                Lifecycle::ConnectError { error, .. } => {
                    // The socket goes inactive on a refusal (as the
                    // official client's does).
                    let _ = obs.send(Obs::ConnectError {
                        who,
                        message: error.to_string(),
                        gave_up: true,
                    });
                }
                Lifecycle::Disconnect { reason, .. } if lost_at.is_none() => {
                    lost_at = Some(Instant::now());
                    let _ = obs.send(Obs::Disconnected {
                        who,
                        reason: reason.to_string(),
                    });
                }
                _ => {}
            }
        }
    })
}

/// Publishes `count` messages, one at a time, each until it is acknowledged
/// with a position (the same clientOffset on every try).
async fn rust_publisher(
    role: &Role,
    count: u64,
    common: &Common,
    obs: &mpsc::UnboundedSender<Obs>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let who = role.who;
    let remaining = || common.deadline.saturating_duration_since(Instant::now());
    let client = tokio::time::timeout(
        remaining(),
        Client::builder(role.via.clone().unwrap_or_else(|| common.url.clone()))
            .transports(common.rust_transports.clone())
            .reconnection(reconnection())
            .auth(serde_json::json!({ "serverOffset": 0 }))
            .ack_timeout(common.ack_timeout)
            .retries(1000)
            .build(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("not connected before the deadline"))??;
    let lifecycle = watch_lifecycle(&client, who, obs.clone());
    let _ = obs.send(Obs::Connected {
        who,
        recovered: false,
        after: None,
    });
    'messages: for seq in 1..=count {
        let id = MsgId {
            publisher: role.name.clone(),
            seq,
        };
        let _ = obs.send(Obs::Sent { who, seq });
        loop {
            if *stop.borrow() {
                break 'messages;
            }
            let emit = client.emit_reliable_with_id(
                "chat message",
                (id.padded_content(role.pad),),
                id.client_offset(),
            );
            let answer = tokio::select! {
                answer = tokio::time::timeout(remaining(), emit) => answer,
                _ = stop.changed() => break 'messages,
            };
            let Ok(answer) = answer else {
                break 'messages; // the deadline
            };
            let ack = match answer {
                Ok(reliable) => reliable.ack.get::<serde_json::Value>(0).ok(),
                Err(_) => None,
            };
            let position = ack
                .as_ref()
                .and_then(|a| a.get("seq"))
                .and_then(|s| s.as_u64());
            if let Some(offset) = position {
                let duplicate = ack
                    .as_ref()
                    .and_then(|a| a.get("duplicate"))
                    .and_then(|d| d.as_bool())
                    .unwrap_or(false);
                let _ = obs.send(Obs::Acked {
                    who,
                    seq,
                    offset,
                    duplicate,
                });
                break;
            }
            let _ = obs.send(Obs::Retried);
            // An error ack ("not stored, retry"): try again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !role.pace.is_zero() {
            tokio::time::sleep(role.pace).await;
        }
        if seq == count {
            let _ = obs.send(Obs::Done { who });
        }
    }
    // Stay connected until told to stop (as a Node publisher does).
    if !*stop.borrow() {
        let _ = tokio::time::timeout(remaining(), stop.changed()).await;
    }
    client.close();
    lifecycle.abort();
    Ok(())
}

/// Receives every message from position 0 on (the chat contract:
/// `auth.serverOffset` moves with each message received), until told to stop.
async fn rust_subscriber(
    role: &Role,
    common: &Common,
    obs: &mpsc::UnboundedSender<Obs>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let who = role.who;
    let last = Arc::new(AtomicU64::new(0));
    let auth_last = last.clone();
    let handler_obs = obs.clone();
    let slow = role.slow;
    let remaining = || common.deadline.saturating_duration_since(Instant::now());
    let client = tokio::time::timeout(
        remaining(),
        Client::builder(role.via.clone().unwrap_or_else(|| common.url.clone()))
            .transports(common.rust_transports.clone())
            .reconnection(reconnection())
            .auth_with(move || {
                let offset = auth_last.load(Ordering::Acquire);
                async move { serde_json::json!({ "serverOffset": offset }) }
            })
            .on("chat message", move |ev| {
                let obs = handler_obs.clone();
                let last = last.clone();
                async move {
                    let content = ev.args().get::<String>(0);
                    let offset = ev.args().get::<u64>(1);
                    match (content, offset) {
                        (Ok(content), Ok(offset)) => {
                            last.fetch_max(offset, Ordering::AcqRel);
                            let _ = obs.send(Obs::Received {
                                who,
                                content,
                                offset,
                            });
                        }
                        _ => {
                            let _ = obs.send(Obs::Malformed {
                                who,
                                what: format!("{:?}", ev.args()),
                            });
                        }
                    }
                    if !slow.is_zero() {
                        tokio::time::sleep(slow).await;
                    }
                }
            })
            .build(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("not connected before the deadline"))??;
    let lifecycle = watch_lifecycle(&client, who, obs.clone());
    let _ = obs.send(Obs::Connected {
        who,
        recovered: false,
        after: None,
    });
    let _ = tokio::time::timeout(remaining(), stop.changed()).await;
    client.close();
    lifecycle.abort();
    Ok(())
}

/// One line of `bench/faults-node.mjs`.
#[derive(Debug, Deserialize)]
#[serde(tag = "ev", rename_all = "lowercase")]
enum NodeLine {
    Connect {
        recovered: bool,
        ms: Option<u64>,
    },
    Disconnect {
        reason: String,
    },
    Sent {
        seq: u64,
    },
    Ack {
        seq: u64,
        offset: u64,
        duplicate: bool,
    },
    Retry {},
    #[serde(rename = "connect_error")]
    ConnectError {
        message: String,
        active: bool,
    },
    Done {},
    Msg {
        c: serde_json::Value,
        o: serde_json::Value,
    },
    Summary {},
}

/// Turns one line of the Node script into an observation.
fn node_obs(who: usize, line: &str) -> Option<Obs> {
    let parsed: NodeLine = match serde_json::from_str(line) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Some(Obs::Malformed {
                who,
                what: format!("{e}: {line}"),
            })
        }
    };
    Some(match parsed {
        NodeLine::Connect { recovered, ms } => Obs::Connected {
            who,
            recovered,
            after: ms.map(Duration::from_millis),
        },
        NodeLine::Disconnect { reason } => Obs::Disconnected { who, reason },
        NodeLine::Sent { seq } => Obs::Sent { who, seq },
        NodeLine::Ack {
            seq,
            offset,
            duplicate,
        } => Obs::Acked {
            who,
            seq,
            offset,
            duplicate,
        },
        NodeLine::Retry {} => Obs::Retried,
        NodeLine::ConnectError { message, active } => Obs::ConnectError {
            who,
            message,
            gave_up: !active,
        },
        NodeLine::Done {} => Obs::Done { who },
        NodeLine::Msg { c, o } => match (c.as_str(), o.as_u64()) {
            (Some(content), Some(offset)) => Obs::Received {
                who,
                content: content.to_owned(),
                offset,
            },
            _ => Obs::Malformed {
                who,
                what: line.to_owned(),
            },
        },
        NodeLine::Summary {} => return None,
    })
}

fn start_node(
    role: Role,
    common: &Common,
    obs: mpsc::UnboundedSender<Obs>,
) -> std::io::Result<Running> {
    let deadline_ms = common
        .deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .to_string();
    let mut cmd = Command::new(&common.node);
    cmd.arg(&common.node_script)
        .args([
            "--id",
            &role.name,
            "--url",
            role.via.as_deref().unwrap_or(&common.url),
        ])
        .args(["--deadlineMs", &deadline_ms])
        .args(["--transports", &common.node_transports])
        .args([
            "--ackTimeoutMs",
            &common.ack_timeout.as_millis().to_string(),
        ]);
    match role.publish {
        Some(count) => cmd
            .args(["--role", "pub", "--count", &count.to_string()])
            .args(["--paceMs", &role.pace.as_millis().to_string()])
            .args(["--padBytes", &role.pad.to_string()]),
        None => cmd
            .args(["--role", "sub"])
            .args(["--slowMs", &role.slow.as_millis().to_string()]),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let who = role.who;
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let error = loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(o) = node_obs(who, &line) {
                        let _ = obs.send(o);
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        let _ = obs.send(Obs::Ended { who, error });
    });
    Ok(Running::Node { child, reader })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse() {
        assert_eq!(
            parse_transports("polling,websocket"),
            Ok(vec![Transport::Polling, Transport::WebSocket])
        );
        assert!(parse_transports("carrier-pigeon").is_err());
    }

    #[test]
    fn node_lines_become_observations() {
        assert!(matches!(
            node_obs(3, r#"{"ev":"msg","c":"n0#4","o":12}"#),
            Some(Obs::Received { who: 3, offset: 12, ref content }) if content == "n0#4"
        ));
        assert!(matches!(
            node_obs(1, r#"{"ev":"ack","seq":2,"offset":7,"duplicate":true}"#),
            Some(Obs::Acked {
                who: 1,
                seq: 2,
                offset: 7,
                duplicate: true
            })
        ));
        assert!(matches!(
            node_obs(0, r#"{"ev":"connect","recovered":true,"ms":250}"#),
            Some(Obs::Connected { recovered: true, after: Some(d), .. }) if d == Duration::from_millis(250)
        ));
        assert!(node_obs(0, r#"{"ev":"summary","id":"n0"}"#).is_none());
        assert!(matches!(
            node_obs(2, r#"{"ev":"connect_error","message":"store unavailable","active":false}"#),
            Some(Obs::ConnectError { who: 2, gave_up: true, ref message }) if message == "store unavailable"
        ));
        assert!(matches!(
            node_obs(0, "not json"),
            Some(Obs::Malformed { .. })
        ));
        assert!(matches!(
            node_obs(0, r#"{"ev":"msg","c":5,"o":"x"}"#),
            Some(Obs::Malformed { .. })
        ));
    }
}
