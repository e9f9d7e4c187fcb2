//! Sends `message 0` .. `message N-1` as reliable `chat message` emits
//! through the outbox of a state file, so that a crash loses none and sends
//! none twice: started again on the same file, it resends what the outbox
//! still holds (same message ids) and goes on from the first message never
//! recorded.
//!
//! ```sh
//! cargo run -p tether-client --example outbox_sender -- http://127.0.0.1:3000 /tmp/sender.db 1000
//! ```
//!
//! Prints `start recorded=R unacked=U` (what the file held), `acked I` as
//! each message of this run is acknowledged, and `done unacked=0` at the end.

use std::collections::VecDeque;
use std::time::Duration;

use tether_client::{Client, Reliable};

/// Messages in flight at once (recorded, sent one at a time in order).
const WINDOW: usize = 16;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: outbox_sender URL STATE_FILE N [--pause-ms MS] [--ack-timeout-ms MS]";
    let url = args.next().ok_or(usage)?;
    let state = args.next().ok_or(usage)?;
    let total: u64 = args.next().ok_or(usage)?.parse()?;
    let mut pause = Duration::ZERO;
    let mut ack_timeout = Duration::from_secs(2);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pause-ms" => pause = Duration::from_millis(args.next().ok_or(usage)?.parse()?),
            "--ack-timeout-ms" => {
                ack_timeout = Duration::from_millis(args.next().ok_or(usage)?.parse()?)
            }
            _ => return Err(usage.into()),
        }
    }

    let client = Client::builder(url)
        .state_file(state)
        .ack_timeout(ack_timeout)
        .build()
        .await?;
    let manager = client.manager();
    let recorded = manager.outbox_recorded().unwrap_or(0);
    let unacked = manager.outbox_unacked().unwrap_or(0);
    println!("start recorded={recorded} unacked={unacked}");

    // Every message before `recorded` is in the server's store or in the
    // outbox (resent first, by the client): go on after them.
    let mut inflight: VecDeque<(u64, _)> = VecDeque::new();
    let report = |i: u64, r: Result<Reliable, tether_client::AckError>| -> Result<(), String> {
        let sent = r.map_err(|e| format!("message {i}: {e}"))?;
        println!("acked {i} {}", sent.id);
        Ok(())
    };
    for i in recorded..total {
        inflight.push_back((
            i,
            client.emit_reliable("chat message", (format!("message {i}"),)),
        ));
        if inflight.len() >= WINDOW {
            if let Some((i, fut)) = inflight.pop_front() {
                report(i, fut.await)?;
            }
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    while let Some((i, fut)) = inflight.pop_front() {
        report(i, fut.await)?;
    }
    // The entries resent from the outbox are acknowledged too.
    client.drained().await;
    manager.sync_state().await?;
    println!("done unacked={}", manager.outbox_unacked().unwrap_or(0));
    client.close();
    Ok(())
}
