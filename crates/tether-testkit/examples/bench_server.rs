//! The benchmark server (contract in the project's shared notes, section 1.2).
//!
//! `cargo run --release --example bench_server -- PORT` serves namespace `/`
//! at `/socket.io/` on 127.0.0.1:PORT:
//! - `echo`: with an ack id, acks with the same arguments; without, emits
//!   `echo` back with them;
//! - `join` ROOM: joins, then acks;
//! - `bcast` ROOM P: emits `msg` P to every socket in ROOM (encoded once), then acks.
//! - `store` ROOM P (with `--durable`): like `bcast`, but acks only once `msg`
//!   is committed to the store (`publish`): the durable ingest of the speed
//!   benchmark. Without `--durable` it acks with an error.
//!
//! `--durable` turns connection state recovery on, with the embedded SQLite
//! store in a temporary file (removed at exit): every `msg` and unacked `echo`
//! is stored before it is delivered, so the same load measures the cost of
//! guaranteed delivery.

use std::sync::Arc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use tether::store::{Durability, SqliteStore};
use tether::{Args, Config, Event, Socket, SocketIo};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let durable = args.iter().any(|a| a == "--durable");
    let port: u16 = match args.last().map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: bench_server [--durable] PORT");
            std::process::exit(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(port, durable))
}

async fn run(port: u16, durable: bool) -> std::io::Result<()> {
    // Room for the 10 000-connection load.
    let config = Config::default().max_connections(200_000);
    let db = std::env::temp_dir().join(format!("tether-bench-{}.db", std::process::id()));
    let io = if durable {
        let store = SqliteStore::open(&db, Durability::Fsync).map_err(std::io::Error::other)?;
        eprintln!("bench_server: durable, store {}", db.display());
        SocketIo::with_store(config, Arc::new(store))
    } else {
        SocketIo::new(config)
    };
    let io2 = io.clone();
    io.ns("/", move |socket: Socket| {
        let io = io2.clone();
        async move {
            socket.on("echo", |socket: Socket, mut ev: Event| async move {
                let args = ev.take_args();
                if ev.wants_ack() {
                    let _ = ev.ack(args);
                } else {
                    let _ = socket.emit("echo", args);
                }
            });
            socket.on("join", |socket: Socket, mut ev: Event| async move {
                if let Ok(room) = ev.args().get::<String>(0) {
                    socket.join(room);
                }
                let _ = ev.ack(());
            });
            let io3 = io.clone();
            socket.on("store", move |_: Socket, mut ev: Event| {
                let io = io3.clone();
                async move {
                    let Ok(room) = ev.args().get::<String>(0) else {
                        return drop(ev.ack(("room must be a string",)));
                    };
                    let payload = ev.args().values().get(1).cloned().into_iter().collect();
                    let args = Args::from_raw(payload, ev.args().attachments().to_vec());
                    // Queued now, acked from a task once committed, so that the
                    // socket's next events are taken meanwhile (group commit).
                    let stored = io.to(room).publish("msg", args);
                    let ack = ev.take_ack();
                    tokio::spawn(async move {
                        let answer = match stored.await {
                            Ok(seq) => serde_json::json!({ "seq": seq }),
                            Err(e) => serde_json::json!({ "error": e.to_string() }),
                        };
                        if let Some(ack) = ack {
                            let _ = ack.send((answer,));
                        }
                    });
                }
            });
            socket.on("bcast", move |_: Socket, mut ev: Event| {
                let io = io.clone();
                async move {
                    if let Ok(room) = ev.args().get::<String>(0) {
                        let payload = ev.args().values().get(1).cloned().into_iter().collect();
                        let args = Args::from_raw(payload, ev.args().attachments().to_vec());
                        let _ = io.to(room).emit("msg", args);
                    }
                    let _ = ev.ack(());
                }
            });
        }
    });
    // Each connection is a file descriptor: the soft default (1024) is far
    // below the 10 000 connections the contract asks for.
    if let Err(e) = tether::server::raise_fd_limit() {
        eprintln!("bench_server: cannot raise the open files limit: {e}");
    }
    let listener = tether::server::bind(([127, 0, 0, 1], port).into()).await?;
    eprintln!("bench_server on ws://{}/socket.io/", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = io.clone().serve_with_shutdown(listener, shutdown).await;
    io.shutdown().await;
    drop(io);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    served
}
