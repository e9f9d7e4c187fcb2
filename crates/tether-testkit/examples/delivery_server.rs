//! The delivery contract server (tests/node/README.md, "Delivery contract"):
//! connection state recovery and guaranteed delivery on a SQLite file (or in
//! memory), for the Node delivery scenarios and for fault tests that kill it.
//!
//! `cargo run --example delivery_server -- [--store PATH|memory] [--slow-ms N]
//! [--window-ms N] [--no-skip-middlewares] PORT`

use tether_testkit::delivery;

use std::sync::Arc;
use std::time::Duration;

use tether::store::{Durability, MemoryStore, SqliteStore, Store};

fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = match args.pop().map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => usage("PORT must be the last argument"),
    };
    let mut opts = delivery::Options::default();
    let mut store_at = "memory".to_owned();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--store" => store_at = it.next().unwrap_or_else(|| usage("--store needs a value")),
            "--slow-ms" => opts.slow = Duration::from_millis(number(it.next())),
            "--window-ms" => opts.window = Some(Duration::from_millis(number(it.next()))),
            "--no-skip-middlewares" => opts.no_skip_middlewares = true,
            other => usage(&format!("unknown flag {other}")),
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let store: Arc<dyn Store> = if store_at == "memory" {
                Arc::new(MemoryStore::new())
            } else {
                match SqliteStore::open(&store_at, Durability::Fsync) {
                    Ok(store) => {
                        // Sessions of a killed run: disconnected as of now.
                        if let Err(e) = store.disconnect_sessions().await {
                            usage(&format!("cannot update {store_at}: {e}"));
                        }
                        Arc::new(store)
                    }
                    Err(e) => usage(&format!("cannot open {store_at}: {e}")),
                }
            };
            let io = tether::SocketIo::with_store(delivery::config(&opts), store);
            delivery::install(&io, opts);
            let listener = tether::server::bind(([127, 0, 0, 1], port).into()).await?;
            println!("listening {}", listener.local_addr()?.port());
            io.serve(listener).await
        })
}

fn number(v: Option<String>) -> u64 {
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| usage("a number is expected"))
}

fn usage(why: &str) -> ! {
    eprintln!("delivery_server: {why}");
    eprintln!("usage: delivery_server [--store PATH|memory] [--slow-ms N] [--window-ms N] [--no-skip-middlewares] PORT");
    std::process::exit(2);
}
