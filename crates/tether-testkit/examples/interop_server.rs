//! The interop contract server (tests/node/README.md), for running the Node
//! scenarios by hand: `cargo run --example interop_server -- [--msgpack] PORT`, then
//! `bash tests/node/run-all.sh PORT`.

use tether_testkit::interop;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .next_back()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let parser = if std::env::args().any(|a| a == "--msgpack") {
        tether::Parser::MsgPack
    } else {
        tether::Parser::Json
    };
    let io = tether::SocketIo::new(interop::config().parser(parser));
    interop::install(&io);
    let listener = tether::server::bind(([127, 0, 0, 1], port).into()).await?;
    eprintln!("interop server on http://127.0.0.1:{port}");
    io.serve(listener).await
}
