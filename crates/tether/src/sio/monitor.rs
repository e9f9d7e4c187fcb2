//! Watching sockets come, go and change rooms, for dashboards (the Socket.IO
//! Admin UI): [`crate::SocketIo::monitor`].

use std::sync::Arc;

use parking_lot::RwLock;

use super::socket::SocketChange;

type Monitor = Arc<dyn Fn(&SocketChange) + Send + Sync>;

/// The monitors of a server.
#[derive(Default)]
pub(crate) struct Monitors(RwLock<Vec<Monitor>>);

impl Monitors {
    pub(crate) fn add(&self, monitor: Monitor) {
        self.0.write().push(monitor);
    }

    /// True when somebody listens (nothing is built for nobody).
    pub(crate) fn any(&self) -> bool {
        !self.0.read().is_empty()
    }

    pub(crate) fn tell(&self, change: &SocketChange) {
        let monitors: Vec<Monitor> = self.0.read().clone();
        for monitor in monitors {
            monitor(change);
        }
    }
}
