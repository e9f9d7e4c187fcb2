//! `https`/`wss` URLs: a TLS-terminating proxy (tokio-rustls, a self-signed
//! certificate made by rcgen) in front of an in-process Tether server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{init_tracing, wait_for, within};
use tether::{Event, Socket, SocketIo};
use tether_client::{Client, Error, Lifecycle, Reconnection, Transport};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

struct Proxy {
    port: u16,
    /// TLS handshakes completed.
    handshakes: Arc<AtomicUsize>,
    /// The certificate (DER) clients must trust.
    cert: Vec<u8>,
}

/// A Tether server: `ask` (n) asks the client `question` (n), which the
/// client acks with n * 2, and acks with the client's answer.
async fn tether_server() -> (SocketIo, u16) {
    let io = SocketIo::new(tether::Config::default());
    io.ns("/", |socket: Socket| async move {
        socket.on("ask", |socket: Socket, mut ev: Event| async move {
            let n: u64 = ev.args().get(0).unwrap_or_default();
            let answer = socket
                .emit_with_ack_timeout("question", (n,), Duration::from_secs(10))
                .await
                .ok()
                .and_then(|a| a.get::<u64>(0).ok());
            let _ = ev.ack((n, answer));
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));
    (io, port)
}

/// Terminates TLS on a loopback port and forwards to `upstream`.
async fn tls_proxy(upstream: u16) -> Proxy {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a self-signed certificate");
    let cert = key.cert.der().to_vec();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.clone())], private)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    Proxy {
        port,
        handshakes,
        cert,
    }
}

async fn exchange_over_tls(scheme: &str, transports: Vec<Transport>) -> (Proxy, Client) {
    init_tracing();
    let (_io, upstream) = tether_server().await;
    let proxy = tls_proxy(upstream).await;
    let upgrade = transports.len() == 2;
    let client = Client::builder(format!("{scheme}://127.0.0.1:{}/", proxy.port))
        .transports(transports)
        .connect(false)
        .tls_root_certificate(proxy.cert.clone())
        .on("question", |mut ev| async move {
            let n: u64 = ev.args().get(0).unwrap_or_default();
            let _ = ev.ack((n * 2,));
        })
        .build();
    let client = client.await.unwrap();
    let mut life = client.manager().lifecycle();
    within("connects over TLS", client.connect()).await.unwrap();
    if upgrade {
        wait_for(&mut life, "upgrade to wss", |e| *e == Lifecycle::Upgrade).await;
    }
    const N: u64 = 25;
    for n in 0..N {
        let reply = within("ask", client.emit_with_ack("ask", (n,)))
            .await
            .unwrap();
        let (echoed, answer): (u64, Option<u64>) = reply.parse().unwrap();
        assert_eq!((echoed, answer), (n, Some(n * 2)), "acks both ways");
    }
    (proxy, client)
}

#[tokio::test]
async fn https_polling_upgraded_to_websocket() {
    let (proxy, client) =
        exchange_over_tls("https", vec![Transport::Polling, Transport::WebSocket]).await;
    assert_eq!(client.manager().transport(), Some(Transport::WebSocket));
    // At least the polling connection and the WebSocket, all through TLS.
    assert!(proxy.handshakes.load(Ordering::SeqCst) >= 2);
    client.close();
}

#[tokio::test]
async fn https_polling_only() {
    let (proxy, client) = exchange_over_tls("https", vec![Transport::Polling]).await;
    assert_eq!(client.manager().transport(), Some(Transport::Polling));
    assert!(proxy.handshakes.load(Ordering::SeqCst) >= 1);
    client.close();
}

#[tokio::test]
async fn wss_websocket_only() {
    let (proxy, client) = exchange_over_tls("wss", vec![Transport::WebSocket]).await;
    assert_eq!(client.manager().transport(), Some(Transport::WebSocket));
    assert_eq!(
        proxy.handshakes.load(Ordering::SeqCst),
        1,
        "one TLS connection"
    );
    client.close();
}

#[tokio::test]
async fn an_unknown_certificate_is_refused() {
    init_tracing();
    let (_io, upstream) = tether_server().await;
    let proxy = tls_proxy(upstream).await;
    for (scheme, transport) in [("https", Transport::Polling), ("wss", Transport::WebSocket)] {
        let result = Client::builder(format!("{scheme}://127.0.0.1:{}/", proxy.port))
            .transports([transport])
            .reconnection(Reconnection::disabled())
            .build();
        match within("refused", result).await {
            Err(Error::Open(e)) => {
                let text = e.to_string();
                assert!(text.contains("certificate"), "{scheme}: {text}");
            }
            other => panic!("{scheme}: expected a TLS failure, got {other:?}"),
        }
    }
    assert_eq!(proxy.handshakes.load(Ordering::SeqCst), 0);
}
