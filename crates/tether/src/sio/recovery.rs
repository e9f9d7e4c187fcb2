//! Connection state recovery at CONNECT: restore a stored session, or start a
//! new one at the right position, and tell the client plainly which it got.

use std::sync::Arc;

use serde_json::Value;

use super::namespace::{DeliveryCtx, Namespace};
use super::socket::SocketInit;
use crate::error::ConnectError;
use crate::store::{now_ms, Seq};
use tether_proto::tether::{Offset, RecoveryReport, Refusal};

fn unavailable(e: impl std::fmt::Display) -> ConnectError {
    tracing::warn!(error = %e, "store unavailable at connect");
    ConnectError::temporary("store unavailable")
}

/// How a socket starts on namespace `ns`, given the CONNECT auth: restored
/// (`pid` + `offset` sent by the official client), or new. The report, when
/// present, says what was asked, what is available and why it was refused.
pub(crate) async fn start(
    delivery: &DeliveryCtx,
    ns: &Arc<Namespace>,
    auth: &Value,
) -> Result<(SocketInit, Option<RecoveryReport>), ConnectError> {
    let store = &delivery.store;
    let (last, first) = store.bounds().await.map_err(unavailable)?;
    let pid = string_field(auth, "pid")?;
    let offset = string_field(auth, "offset")?;
    let mut report = None;
    if let Some(pid) = pid {
        match restore(delivery, ns, pid, offset, last).await? {
            Ok(init) => {
                metrics::counter!(crate::metrics::RECOVERIES, "result" => "recovered").increment(1);
                return Ok((init, None));
            }
            Err((refusal, trimmed)) => {
                metrics::counter!(crate::metrics::RECOVERIES, "result" => refusal.as_str())
                    .increment(1);
                let available_from = trimmed.unwrap_or(first.saturating_sub(1));
                report = Some(RecoveryReport::refused(
                    refusal,
                    offset.map(str::to_owned),
                    Some(Offset::new(store.epoch(), available_from).to_string()),
                    Some(Offset::new(store.epoch(), last).to_string()),
                ));
            }
        }
    }
    // A new session. A client that says where it stands in the namespace's
    // stream (the tutorial's `auth.serverOffset`) catches up from there.
    // A position from another life of the store (another epoch, or beyond
    // the last position: the store was reset) starts from 0, so that the
    // client gets everything of this life.
    let fields = ns.catch_up_field.read().clone();
    let from = match fields {
        None => last,
        Some(fields) => match auth.get(&fields.offset).and_then(value_as_seq) {
            None => last,
            Some(n) => {
                let other_epoch = fields
                    .epoch
                    .and_then(|f| auth.get(&f).and_then(Value::as_str).map(str::to_owned))
                    .is_some_and(|e| e != store.epoch());
                if other_epoch || n > last {
                    metrics::counter!(crate::metrics::CATCH_UP_RESTARTS).increment(1);
                    tracing::debug!(
                        offset = n,
                        last,
                        other_epoch,
                        "catch-up from another life of the store: from 0"
                    );
                    0
                } else {
                    n
                }
            }
        },
    };
    let init = SocketInit {
        pid: Some(crate::id::random_id()),
        cursor: Some(from),
        start_seq: last,
        ..SocketInit::default()
    };
    Ok((init, report))
}

/// A field of the CONNECT auth that must be a string when present (the
/// official client's `pid` and `offset`): anything else is a bad request, not
/// "absent".
fn string_field<'a>(auth: &'a Value, name: &str) -> Result<Option<&'a str>, ConnectError> {
    match auth.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ConnectError::new(format!(
            "bad request: `{name}` must be a string"
        ))),
    }
}

fn value_as_seq(v: &Value) -> Option<Seq> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

async fn restore(
    delivery: &DeliveryCtx,
    ns: &Namespace,
    pid: &str,
    offset: Option<&str>,
    last: Seq,
) -> Result<Result<SocketInit, (Refusal, Option<Seq>)>, ConnectError> {
    let store = &delivery.store;
    let Some(record) = store.load_session(pid).await.map_err(unavailable)? else {
        return Ok(Err((Refusal::UnknownSession, None)));
    };
    if record.nsp != ns.name() {
        return Ok(Err((Refusal::UnknownSession, None)));
    }
    // A record still marked connected belongs to a socket of a server that
    // died (or that is being taken over): recoverable.
    let window = delivery.recovery.max_disconnection;
    let idle_ms = now_ms().saturating_sub(record.updated_ms);
    if !record.connected
        && window.is_some_and(|w| u128::try_from(idle_ms).unwrap_or(0) > w.as_millis())
    {
        return Ok(Err((Refusal::Expired, None)));
    }
    let from = match offset {
        // A session saved by a node that had not seen the store reset yet.
        None if record.start_seq > last => return Ok(Err((Refusal::StoreReset, None))),
        None => record.start_seq,
        Some(offset) => match Offset::parse(offset) {
            None => return Ok(Err((Refusal::UnknownOffset, None))),
            Some(Offset { epoch, .. }) if epoch != store.epoch() => {
                return Ok(Err((Refusal::StoreReset, None)))
            }
            Some(Offset { seq, .. }) if seq > last => {
                return Ok(Err((Refusal::UnknownOffset, None)))
            }
            Some(Offset { seq, .. }) => seq,
        },
    };
    // What the client missed was trimmed from one of its streams (its rooms,
    // and the whole-namespace stream): no silent partial replay.
    let mut streams = record.rooms.clone();
    streams.push(String::new());
    let trimmed = store
        .trimmed(&record.nsp, &streams)
        .await
        .map_err(unavailable)?;
    if from < trimmed {
        return Ok(Err((Refusal::Expired, Some(trimmed))));
    }
    // Still connected here: the session is taken over only if its socket's
    // transport is dead (no pong within a short bound; the check closes it).
    // A live owner keeps it: whoever else holds the private id gets a new
    // session, and the owner, untouched, is not pushed offline.
    if let Some(owner) = ns.live_socket(pid) {
        if owner.answers_ping().await {
            return Ok(Err((Refusal::InUse, None)));
        }
    }
    Ok(Ok(SocketInit {
        id: Some(record.sid),
        pid: Some(record.pid),
        recovered: true,
        cursor: Some(from),
        start_seq: record.start_seq,
        data: record.data,
        rooms: record.rooms,
        user: record.user,
    }))
}
