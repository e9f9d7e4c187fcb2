//! Messages per second of one client against Tether: emits acknowledged by
//! the server (one in flight, and pipelined), events received, and reliable
//! (exactly-once, stored) emits.
//!
//! ```sh
//! cargo run --release -p tether-client --example throughput
//! ```
//!
//! Runs the servers in a child process of its own (`--serve`), so that client
//! and server do not share a runtime: a plain Tether server, and one with a
//! memory store (connection state recovery, every emit stored).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_client::{Client, Transport};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        return serve().await;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
    let line = lines.next_line().await?.ok_or("server exited")?;
    let ports: Vec<u16> = line
        .strip_prefix("listening ")
        .ok_or("unexpected server output")?
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let (plain, stored) = (ports[0], ports[1]);
    println!("transport  server  measure                          messages   seconds   msg/s");
    for transport in [Transport::WebSocket, Transport::Polling] {
        let name = transport.as_str();
        let url = format!("http://127.0.0.1:{plain}/");
        let client = Client::builder(url).transports([transport]).build().await?;
        let n = 5_000;
        let t = Instant::now();
        for i in 0..n {
            client.emit_with_ack("echo", (i,)).await?;
        }
        report(name, "plain", "emit_with_ack, 1 in flight", n, t.elapsed());
        let n = 50_000;
        let t = Instant::now();
        pipelined(&client, n, 256).await?;
        report(
            name,
            "plain",
            "emit_with_ack, 256 in flight",
            n,
            t.elapsed(),
        );
        let n = 100_000;
        let t = received(&client, n).await?;
        report(name, "plain", "events received", n, t);
        client.close();

        let url = format!("http://127.0.0.1:{stored}/");
        let client = Client::builder(url)
            .transports([transport])
            .ack_timeout(Duration::from_secs(10))
            .retries(3)
            .build()
            .await?;
        let n = 100_000;
        let t = received(&client, n).await?;
        report(name, "store", "stored events received", n, t);
        let n = 2_000;
        let t = Instant::now();
        for i in 0..n {
            client.emit_with_ack("echo", (i,)).await?;
        }
        report(
            name,
            "store",
            "emit_with_ack via retry queue",
            n,
            t.elapsed(),
        );
        let t = Instant::now();
        for i in 0..n {
            client
                .emit_reliable("chat message", (format!("m{i}"),))
                .await?;
        }
        report(
            name,
            "store",
            "emit_reliable (exactly-once)",
            n,
            t.elapsed(),
        );
        client.close();
    }
    drop(child);
    Ok(())
}

fn report(transport: &str, server: &str, what: &str, n: usize, d: Duration) {
    let secs = d.as_secs_f64();
    println!(
        "{transport:<10} {server:<7} {what:<32} {n:>8} {secs:>9.3} {:>7.0}",
        n as f64 / secs
    );
}

async fn pipelined(
    client: &Client,
    n: usize,
    window: usize,
) -> Result<(), tether_client::AckError> {
    let sem = Arc::new(tokio::sync::Semaphore::new(window));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let socket = client.socket().clone();
        tasks.spawn(async move {
            let r = socket.emit_with_ack("echo", (i,)).await;
            drop(permit);
            r
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task")?;
    }
    Ok(())
}

/// Asks the server for `n` events and times their arrival.
async fn received(client: &Client, n: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    client.on("tick", move |ev| {
        let tx = tx.clone();
        async move {
            let i: usize = ev.args().get(0).unwrap_or_default();
            let _ = tx.send(i);
        }
    });
    let t = Instant::now();
    client.emit("burst", (n,))?;
    let mut expected = 0;
    while expected < n {
        let i = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or("socket closed")?;
        assert_eq!(i, expected, "in order, once each");
        expected += 1;
    }
    Ok(t.elapsed())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    use tether::{Event, Socket, SocketIo};
    fn install(io: &SocketIo) {
        let io2 = io.clone();
        io.ns("/", move |socket: Socket| {
            let io = io2.clone();
            async move {
                socket.on("echo", |_: Socket, mut ev: Event| async move {
                    let args = ev.take_args();
                    let _ = ev.ack(args);
                });
                // Acked once sent (a client with retries waits for it).
                socket.on("burst", |socket: Socket, mut ev: Event| async move {
                    let n: u64 = ev.args().get(0).unwrap_or_default();
                    for i in 0..n {
                        if socket.emit("tick", (i,)).is_err() {
                            // Buffer full: let the transport drain.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            let _ = socket.emit("tick", (i,));
                        }
                        if i % 256 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    let _ = ev.ack(("sent",));
                });
                socket.on("chat message", move |_: Socket, mut ev: Event| {
                    let io = io.clone();
                    async move {
                        let content: String = ev.args().get(0).unwrap_or_default();
                        let key: String = ev.args().get(1).unwrap_or_default();
                        let Some(all) = io.of("/") else { return };
                        let seq = all
                            .publish_once(key, "chat message", (content,))
                            .await
                            .map(|o| o.seq())
                            .ok();
                        let _ = ev.ack((json!({ "seq": seq }),));
                    }
                });
            }
        });
    }
    let config = tether::Config::default().max_buffer(64 * 1024 * 1024);
    let plain = SocketIo::new(config.clone());
    install(&plain);
    let store: Arc<dyn tether::store::Store> = Arc::new(tether::store::MemoryStore::new());
    let stored = SocketIo::with_store(config, store);
    install(&stored);
    let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "listening {} {}",
        l1.local_addr()?.port(),
        l2.local_addr()?.port()
    );
    tokio::spawn(plain.serve(l1));
    stored.serve(l2).await?;
    Ok(())
}
