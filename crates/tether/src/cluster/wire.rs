//! What travels between the nodes: requests, replies, socket snapshots. JSON,
//! the same whatever the transport.

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tether_proto::socketio::Args;

/// The sockets an operation acts on: those of a namespace in any of `rooms`
/// (every socket when empty) and in none of `except`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Selection {
    pub(crate) nsp: String,
    pub(crate) rooms: Vec<String>,
    pub(crate) except: Vec<String>,
}

impl Selection {
    /// The one socket `id` of namespace `nsp` (its own room).
    pub(crate) fn socket(nsp: &str, id: &str) -> Self {
        Selection {
            nsp: nsp.to_owned(),
            rooms: vec![id.to_owned()],
            except: Vec::new(),
        }
    }
}

/// Event arguments on the wire: the JSON values, and binary attachments in
/// base64. (Raw values are why the message enums are externally tagged:
/// serde buffers internally tagged content, which a `RawValue` refuses.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireArgs {
    values: Vec<Box<RawValue>>,
    attachments: Vec<String>,
}

impl WireArgs {
    pub(crate) fn new(args: &Args) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        WireArgs {
            values: args.values().to_vec(),
            attachments: args.attachments().iter().map(|b| b64.encode(b)).collect(),
        }
    }

    /// The arguments; `None` when an attachment is not valid base64.
    pub(crate) fn into_args(self) -> Option<Args> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let attachments = self
            .attachments
            .iter()
            .map(|a| b64.decode(a).ok().map(Bytes::from))
            .collect::<Option<Vec<_>>>()?;
        Some(Args::from_raw(self.values, attachments))
    }
}

/// What a request asks the nodes to do with the selected sockets.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    Fetch,
    Join {
        rooms: Vec<String>,
    },
    Leave {
        rooms: Vec<String>,
    },
    Disconnect {
        close: bool,
    },
    /// Not answered.
    Emit {
        event: String,
        args: WireArgs,
        volatile: bool,
        /// Store it (a durable namespace), rather than send it directly.
        stored: bool,
    },
    EmitWithAck {
        event: String,
        args: WireArgs,
        ack_timeout_ms: u64,
    },
}

/// A node's answer to a request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Sockets { sockets: Vec<SocketInfo> },
    Done { count: usize },
    AckCount { count: usize },
    Ack { result: WireAck },
}

/// One socket's acknowledgement.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireAck {
    Ok(WireArgs),
    Timeout,
    Disconnected,
}

/// Every message between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Message {
    Request {
        id: u64,
        from: String,
        timeout_ms: u64,
        sel: Selection,
        op: Op,
    },
    Reply {
        id: u64,
        from: String,
        reply: Reply,
    },
}

/// A snapshot of a socket, as every node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SocketInfo {
    pub(crate) id: String,
    pub(crate) rooms: Vec<String>,
    pub(crate) data: Option<serde_json::Value>,
    pub(crate) handshake: HandshakeSummary,
}

/// What a socket sent when it connected, as every node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeSummary {
    /// The CONNECT packet's auth payload.
    pub auth: serde_json::Value,
    /// URI of the Engine.IO handshake request.
    pub uri: String,
    /// Headers of the handshake request (those that are valid UTF-8).
    pub headers: Vec<(String, String)>,
    /// The peer address, when known.
    pub address: Option<String>,
    /// When the socket connected, in milliseconds since the Unix epoch.
    pub issued_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut args = Args::new();
        args.push(&"hi").expect("a string serialises");
        args.push_binary(vec![1u8, 2, 3]);
        let message = Message::Request {
            id: 7,
            from: "n1".into(),
            timeout_ms: 100,
            sel: Selection {
                nsp: "/".into(),
                rooms: vec!["r".into()],
                except: vec![],
            },
            op: Op::EmitWithAck {
                event: "ask".into(),
                args: WireArgs::new(&args),
                ack_timeout_ms: 50,
            },
        };
        let bytes = serde_json::to_vec(&message).expect("encodes");
        let back: Message = serde_json::from_slice(&bytes).expect("decodes");
        let Message::Request {
            id,
            op: Op::EmitWithAck { args, .. },
            ..
        } = back
        else {
            panic!("a request with acks");
        };
        assert_eq!(id, 7);
        let args = args.into_args().expect("valid base64");
        assert_eq!(args.get::<String>(0).expect("a string"), "hi");
        assert_eq!(args.attachments(), &[Bytes::from_static(&[1, 2, 3])]);
    }

    #[test]
    fn bad_input_is_refused_not_panicking() {
        assert!(serde_json::from_slice::<Message>(br#"{"reply":{"id":1}}"#).is_err());
        let bad = WireArgs {
            values: vec![],
            attachments: vec!["not base64!".into()],
        };
        assert!(bad.into_args().is_none());
    }
}
