//! [`RemoteSocket`]: a socket of any node, as `fetch_sockets` returns it.

use std::sync::Arc;

use tether_proto::socketio::IntoArgs;

use super::local::LocalSocket;
use super::request::To;
use super::transport::Channel;
use super::wire::{HandshakeSummary, Op, Selection, SocketInfo, WireArgs};
use super::{Cluster, ClusterError};
use crate::error::EmitError;

/// A socket of this node or of another node of the cluster, as returned by
/// [`crate::BroadcastOperator::fetch_sockets`]: a snapshot of its id, rooms,
/// data and handshake, and methods that act on it wherever it is.
///
/// ```no_run
/// # async fn demo(io: tether::SocketIo) -> Result<(), tether::cluster::ClusterError> {
/// for socket in io.to("lobby").fetch_sockets().await? {
///     println!("{} on node {} in {:?}", socket.id(), socket.node_id(), socket.rooms());
///     socket.join("game").await?;
///     socket.emit("moved", ("game",)).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteSocket {
    nsp: String,
    info: SocketInfo,
    node: String,
    via: Via,
}

#[derive(Debug, Clone)]
enum Via {
    Local(Arc<dyn LocalSocket>),
    Remote(Cluster),
}

impl RemoteSocket {
    /// A socket of this node (`node`: this node's id in its cluster).
    pub(crate) fn local(socket: Arc<dyn LocalSocket>, node: Option<&str>) -> Self {
        RemoteSocket {
            nsp: socket.nsp().to_owned(),
            info: socket.info(),
            node: node.unwrap_or_default().to_owned(),
            via: Via::Local(socket),
        }
    }

    /// The socket id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The namespace.
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The rooms it was in when fetched (its own id room included), sorted.
    pub fn rooms(&self) -> &[String] {
        &self.info.rooms
    }

    /// Its app data when fetched (`socket.set_data`), if set and of type `T`.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.info.data.clone()?).ok()
    }

    /// What it sent when connecting.
    pub fn handshake(&self) -> &HandshakeSummary {
        &self.info.handshake
    }

    /// The id of the node it is connected to (empty without a cluster).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// True for a socket of this node.
    pub fn is_local(&self) -> bool {
        matches!(self.via, Via::Local(_))
    }

    /// The socket of this node, when it is one (see
    /// [`RemoteSocket::as_local`]).
    pub(crate) fn local_socket(&self) -> Option<&dyn LocalSocket> {
        match &self.via {
            Via::Local(socket) => Some(&**socket),
            Via::Remote(_) => None,
        }
    }

    /// Sends it an event: stored first when the namespace has a store (and
    /// then delivered by its node with an offset), else sent by its node.
    /// Does not wait for the delivery.
    pub async fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), ClusterError> {
        let args = args.into_args().map_err(EmitError::from)?;
        match &self.via {
            Via::Local(socket) => Ok(socket.emit(event, args)?),
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                match cluster.inner.local.store_emit(&sel, event, args.clone()) {
                    Some(stored) => Ok(stored?),
                    None => {
                        let op = Op::Emit {
                            event: event.to_owned(),
                            args: WireArgs::new(&args),
                            volatile: false,
                            stored: false,
                        };
                        cluster.send_nowait(Channel::Node(self.node.clone()), &sel, op);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Makes it join `room`; resolves once its node did.
    pub async fn join(&self, room: impl Into<String>) -> Result<(), ClusterError> {
        let room = room.into();
        match &self.via {
            Via::Local(socket) => {
                socket.join(room);
                Ok(())
            }
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                let op = Op::Join { rooms: vec![room] };
                cluster
                    .count_request(To::Node(self.node.clone()), &sel, op)
                    .await
                    .map(drop)
            }
        }
    }

    /// Makes it leave `room`; resolves once its node did.
    pub async fn leave(&self, room: &str) -> Result<(), ClusterError> {
        match &self.via {
            Via::Local(socket) => {
                socket.leave(room);
                Ok(())
            }
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                let op = Op::Leave {
                    rooms: vec![room.to_owned()],
                };
                cluster
                    .count_request(To::Node(self.node.clone()), &sel, op)
                    .await
                    .map(drop)
            }
        }
    }

    /// Disconnects it from the namespace (`close`: closes its whole
    /// connection instead, and the client reconnects by itself); resolves
    /// once its node did.
    pub async fn disconnect(&self, close: bool) -> Result<(), ClusterError> {
        match &self.via {
            Via::Local(socket) => {
                socket.disconnect(close);
                Ok(())
            }
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                cluster
                    .count_request(To::Node(self.node.clone()), &sel, Op::Disconnect { close })
                    .await
                    .map(drop)
            }
        }
    }
}

impl Cluster {
    /// The selected sockets of the other nodes.
    pub(crate) async fn fetch(&self, sel: &Selection) -> Result<Vec<RemoteSocket>, ClusterError> {
        let mut found: Vec<(String, SocketInfo)> = Vec::new();
        let timeout = self.inner.options.request_timeout;
        self.request(To::All, sel, Op::Fetch, timeout, |from, reply| {
            if let super::wire::Reply::Sockets { sockets } = reply {
                found.extend(sockets.into_iter().map(|s| (from.to_owned(), s)));
            }
            true
        })
        .await?;
        Ok(found
            .into_iter()
            .map(|(node, info)| RemoteSocket {
                nsp: sel.nsp.clone(),
                info,
                node,
                via: Via::Remote(self.clone()),
            })
            .collect())
    }
}
