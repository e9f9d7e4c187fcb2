//! One host must not be able to exhaust `tether serve` over HTTP: idle and
//! slowloris connections are closed by the header timeout, a WebSocket close
//! handshake is bounded, a client that never reads is dropped by the write
//! timeout, the accept loop backs off when the process is out
//! of file descriptors, POST bodies are bounded in size and time, requests
//! from foreign origins are refused, and HEAD is answered like GET.
//!
//! Every server is a `tether serve` child (tests/common/mod.rs) on a port of
//! 127.0.0.1; file descriptors are counted in `/proc/PID/fd`, CPU time read
//! from `/proc/PID/stat`. Every wait is bounded by a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::*;

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";
const WS_HANDSHAKE: &str = "/socket.io/?EIO=4&transport=websocket";

// ------------------------------------------------------------------ helpers --

/// Open file descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
}

/// The fd count of `pid` once it stayed the same for 300 ms (at most 3 s):
/// the connection of a request just answered may still be closing.
fn settled_fds(pid: u32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = fd_count(pid);
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(300) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let n = fd_count(pid);
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
    last
}

/// Polls the fd count of `pid` until `done` holds or `budget` passes; the
/// last count either way.
fn wait_fds(pid: u32, budget: Duration, done: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + budget;
    loop {
        let n = fd_count(pid);
        if done(n) || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces), from field 3:
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// `getconf CLK_TCK` (100 on Linux).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A TCP connection to `addr` with read and write timeouts of `timeout`.
fn connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    stream
}

/// An HTTP response as read by [`read_response`].
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response from `stream`: its head, then `Content-Length` bytes
/// of body (none for a 101 or a HEAD request).
fn read_response(stream: &mut TcpStream, head_only: bool) -> std::io::Result<Reply> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&raw)),
            ));
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![
        0u8;
        if head_only || status == 101 {
            0
        } else {
            length
        }
    ];
    stream.read_exact(&mut body)?;
    Ok(Reply {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends `request` (a whole request head, and body if any) on a new
/// connection and reads the response.
fn request(addr: SocketAddr, request: &str) -> std::io::Result<(TcpStream, Reply)> {
    let mut stream = connect(addr, Duration::from_secs(10));
    stream.write_all(request.as_bytes())?;
    let head_only = request.starts_with("HEAD ");
    let reply = read_response(&mut stream, head_only)?;
    Ok((stream, reply))
}

/// A GET of `path` with `headers` (lines ending in `\r\n`), on a new connection.
fn get(addr: SocketAddr, path: &str, headers: &str) -> Reply {
    let text = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
    request(addr, &text)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .1
}

/// The headers of a WebSocket upgrade.
const UPGRADE: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// A polling handshake; the new session's id.
fn polling_sid(addr: SocketAddr) -> String {
    let reply = get(addr, HANDSHAKE, "Connection: close\r\n");
    assert_eq!(reply.status, 200, "{reply:?}");
    let open: serde_json::Value =
        serde_json::from_str(reply.body.strip_prefix('0').expect("an open packet"))
            .expect("open packet JSON");
    open["sid"].as_str().expect("a sid").to_owned()
}

/// A masked WebSocket text frame from a client.
fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// True once the server closed `stream` (a read gives EOF or a reset)
/// within `budget`; data read meanwhile is skipped.
fn closed_within(stream: &mut TcpStream, budget: Duration) -> bool {
    let deadline = Instant::now() + budget;
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn metrics_text(stream: &mut TcpStream, addr: SocketAddr) -> String {
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let reply = read_response(stream, false).expect("/metrics on the open connection");
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

// -------------------------------------------------------------- timeouts --

/// Idle connections (nothing sent, or idle between two keep-alive requests)
/// and a request whose headers trickle in byte by byte are closed by the
/// header timeout, and the server's fds go back to their baseline.
#[test]
fn idle_and_slowloris_connections_are_closed_by_the_header_timeout() {
    let dir = TempDir::new("idle");
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--header-read-timeout",
            "1s",
        ],
        &[],
    );
    let pid = server.child.id();
    let baseline = settled_fds(pid);

    let mut idle: Vec<TcpStream> = (0..30)
        .map(|_| connect(server.addr, Duration::from_secs(5)))
        .collect();
    let mut keep_alive = connect(server.addr, Duration::from_secs(5));
    write!(
        keep_alive,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    assert_eq!(read_response(&mut keep_alive, false).unwrap().status, 200);
    let mut slow: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect(server.addr, Duration::from_secs(5));
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let open = baseline + idle.len() + slow.len() + 1;
    let held = wait_fds(pid, Duration::from_secs(5), |n| n >= open);
    assert!(
        held >= open,
        "connections not accepted: {held} fds, want {open}"
    );

    // Trickle one header byte per slow connection every 100 ms, for at
    // most 10 s, until the server is back at its baseline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds = fd_count(pid);
    while fds > baseline && Instant::now() < deadline {
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        std::thread::sleep(Duration::from_millis(100));
        fds = fd_count(pid);
    }
    assert!(
        fds <= baseline,
        "{fds} fds 10 s after the 1 s header timeout (baseline {baseline})"
    );
    for s in idle.iter_mut().chain(slow.iter_mut()) {
        assert!(closed_within(s, Duration::from_secs(2)), "still open");
    }
    assert!(closed_within(&mut keep_alive, Duration::from_secs(2)));
}

/// A client that sends requests and never reads the responses blocks the
/// server's writes: the connection is closed once a write stayed blocked
/// for the write timeout (1 s here).
#[test]
fn a_client_that_never_reads_is_dropped_by_the_write_timeout() {
    let dir = TempDir::new("slowread");
    let server = Server::start(
        dir.path(),
        &["--port", "0", "--store", "memory", "--write-timeout", "1s"],
        &[],
    );
    let pid = server.child.id();
    let baseline = settled_fds(pid);
    // 400 pipelined requests for the 47 KB client bundle: about 19 MB of
    // responses, far more than the socket buffers hold.
    let mut stream = connect(server.addr, Duration::from_secs(5));
    let one = format!(
        "GET /socket.io/socket.io.js HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    stream.write_all(one.repeat(400).as_bytes()).unwrap();
    let held = wait_fds(pid, Duration::from_secs(5), |n| n > baseline);
    assert!(held > baseline, "the connection was not accepted");
    let fds = wait_fds(pid, Duration::from_secs(10), |n| n <= baseline);
    assert!(
        fds <= baseline,
        "{fds} fds 10 s after the writes blocked (baseline {baseline})"
    );
    drop(stream);
}

/// A long-polling GET waits for the next packet (the ping, after 25 s) far
/// longer than the header timeout: it is not cut.
#[test]
fn long_polling_get_outlives_the_header_timeout() {
    let dir = TempDir::new("longpoll");
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--header-read-timeout",
            "1s",
        ],
        &[],
    );
    let sid = polling_sid(server.addr);
    let mut poll = connect(server.addr, Duration::from_secs(5));
    write!(
        poll,
        "GET {HANDSHAKE}&sid={sid} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    assert!(
        !closed_within(&mut poll, Duration::from_secs(3)),
        "the pending poll was closed"
    );
}

/// A WebSocket the server closes, whose client never answers the close
/// frame (nor reads), is dropped within the close bound (2 s): after a
/// close packet from the client, and for a second WebSocket refused while
/// the session is upgrading.
#[test]
fn websocket_close_handshake_is_bounded() {
    let dir = TempDir::new("wsclose");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "memory"], &[]);
    let pid = server.child.id();
    let baseline = settled_fds(pid);

    // A WebSocket session whose client sends the Engine.IO close packet,
    // then neither reads nor answers the server's close frame.
    let (mut ws, reply) = request(
        server.addr,
        &format!(
            "GET {WS_HANDSHAKE} HTTP/1.1\r\nHost: {}\r\n{UPGRADE}\r\n",
            server.addr
        ),
    )
    .unwrap();
    assert_eq!(reply.status, 101, "{reply:?}");
    ws.write_all(&client_text_frame(b"1")).unwrap();

    // A polling session probing an upgrade (first WebSocket, silent), and a
    // second WebSocket for the same session, refused with a close frame.
    let sid = polling_sid(server.addr);
    let upgrade = format!(
        "GET {WS_HANDSHAKE}&sid={sid} HTTP/1.1\r\nHost: {}\r\n{UPGRADE}\r\n",
        server.addr
    );
    let (mut probe, reply) = request(server.addr, &upgrade).unwrap();
    assert_eq!(reply.status, 101, "{reply:?}");
    probe.write_all(&client_text_frame(b"2probe")).unwrap();
    let mut pong = [0u8; 8];
    probe.read_exact(&mut pong).unwrap();
    assert_eq!(&pong[2..], b"3probe", "the probe's answer");
    let (_refused, reply) = request(server.addr, &upgrade).unwrap();
    assert_eq!(reply.status, 101, "{reply:?}");

    // Left: the probing WebSocket (its upgrade timeout is 10 s).
    let want = baseline + 1;
    let fds = wait_fds(pid, Duration::from_secs(6), |n| n <= want);
    assert!(
        fds <= want,
        "{fds} fds 6 s after the closes (baseline {baseline}, want {want})"
    );
    drop(ws);
}

// ------------------------------------------------------------------ EMFILE --

/// Out of file descriptors (`ulimit -n 64`, connections piling up in the
/// backlog): the accept loop backs off instead of spinning, logs a few
/// lines, counts the failures in /metrics, keeps answering a connection
/// already open, and accepts again once descriptors are free.
#[test]
fn out_of_fds_the_accept_loop_backs_off_and_recovers() {
    let dir = TempDir::new("emfile");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" \"$@\"",
        BIN,
        "serve",
        "--port",
        "0",
        "--store",
        "memory",
    ])
    .current_dir(dir.path())
    .env_clear()
    // Keeps the flood's connections open for the whole test.
    .env("TETHER_HEADER_READ_TIMEOUT", "60s")
    .stdin(std::process::Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let mut server = Server::spawn_command(cmd, &["(ulimit -n 64)"]);
    server.wait_healthy();
    let pid = server.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 64 ")),
        "the limit did not apply:\n{limits}"
    );

    let mut kept = connect(server.addr, Duration::from_secs(5));
    write!(
        kept,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    assert_eq!(read_response(&mut kept, false).unwrap().status, 200);

    // More connections than descriptors: the rest wait in the backlog.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| connect(server.addr, Duration::from_secs(5)))
        .collect();
    let full = wait_fds(pid, Duration::from_secs(5), |n| n >= 64);
    assert!(full >= 64, "the server never ran out of fds ({full})");
    let log_before = server.stderr().len();
    let (cpu0, wall0) = (cpu_time(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, wall) = (cpu_time(pid) - cpu0, wall0.elapsed());
    assert!(
        cpu < wall / 2,
        "{cpu:?} of CPU in {wall:?} while out of fds: the accept loop spins"
    );

    write!(
        kept,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let health = read_response(&mut kept, false).expect("/healthz while out of fds");
    assert_eq!(health.status, 200, "{health:?}");
    let samples = parse_prometheus(&metrics_text(&mut kept, server.addr)).unwrap();
    let errors = metric(&samples, "tether_accept_errors_total").unwrap_or(0.0);
    assert!(errors >= 1.0, "tether_accept_errors_total = {errors}");
    let logged = server.stderr().len() - log_before;
    assert!(
        logged < 4_000,
        "{logged} bytes of log in 2 s out of fds:\n{}",
        &server.stderr()[log_before..]
    );

    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = http_get(server.addr, "/healthz");
    while !matches!(last, Ok((200, _))) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        last = http_get(server.addr, "/healthz");
    }
    assert!(
        matches!(last, Ok((200, _))),
        "no new connection accepted after the fds came back: {last:?}"
    );
}

/// `--max-connections-per-ip 5`: a sixth connection from 127.0.0.1 is closed
/// at once and counted; once one closes, a new one is served.
#[test]
fn connections_per_ip_are_limited() {
    let dir = TempDir::new("perip");
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--max-connections-per-ip",
            "5",
        ],
        &[],
    );
    let pid = server.child.id();
    let baseline = settled_fds(pid);
    let mut open: Vec<TcpStream> = (0..4)
        .map(|_| connect(server.addr, Duration::from_secs(5)))
        .collect();
    let mut kept = connect(server.addr, Duration::from_secs(5));
    write!(
        kept,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    assert_eq!(read_response(&mut kept, false).unwrap().status, 200);
    assert_eq!(
        wait_fds(pid, Duration::from_secs(5), |n| n >= baseline + 5),
        baseline + 5
    );

    let mut sixth = connect(server.addr, Duration::from_secs(5));
    assert!(
        closed_within(&mut sixth, Duration::from_secs(5)),
        "a sixth connection from one address was kept"
    );
    let samples = parse_prometheus(&metrics_text(&mut kept, server.addr)).unwrap();
    assert_eq!(
        metric(&samples, "tether_connections_refused_per_ip_total"),
        Some(1.0)
    );

    drop(open.pop());
    wait_fds(pid, Duration::from_secs(5), |n| n <= baseline + 4);
    let (status, _) = http_get(server.addr, "/healthz").expect("a fifth connection again");
    assert_eq!(status, 200);
}

// -------------------------------------------------------------------- POST --

/// A POST whose `Content-Length` is over `max_payload` gets 413 at once,
/// without sending its body.
#[test]
fn post_over_max_payload_gets_413_from_its_header() {
    let dir = TempDir::new("post413");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "memory"], &[]);
    let sid = polling_sid(server.addr);
    let (_stream, reply) = request(
        server.addr,
        &format!(
            "POST {HANDSHAKE}&sid={sid} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 2000000\r\n\r\n",
            server.addr
        ),
    )
    .expect("an answer without sending the body");
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.body.contains("\"code\":3"), "{reply:?}");
}

/// A chunked POST that never ends is answered 408 once the body read
/// timeout (1 s here) passes.
#[test]
fn endless_chunked_post_times_out() {
    let dir = TempDir::new("postslow");
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--body-read-timeout",
            "1s",
        ],
        &[],
    );
    let sid = polling_sid(server.addr);
    let mut stream = connect(server.addr, Duration::from_secs(8));
    write!(
        stream,
        "POST {HANDSHAKE}&sid={sid} HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n40\r\n",
        server.addr
    )
    .unwrap();
    let reply = read_response(&mut stream, false).expect("an answer within 8 s");
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.body.contains("Body read timeout"), "{reply:?}");
}

// ----------------------------------------------------------------- origins --

/// With the default CORS (no other origin), a page of a foreign origin can
/// neither open a polling session nor upgrade to WebSocket (403, code 4);
/// no `Origin` and the server's own origin are allowed, over both.
#[test]
fn foreign_origins_are_refused_own_and_none_allowed() {
    let dir = TempDir::new("origin");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "memory"], &[]);
    let addr = server.addr;
    let own = format!("Origin: http://{addr}\r\n");
    let evil = "Origin: http://evil.example\r\n";
    let ws = |origin: &str| {
        request(
            addr,
            &format!("GET {WS_HANDSHAKE} HTTP/1.1\r\nHost: {addr}\r\n{UPGRADE}{origin}\r\n"),
        )
        .unwrap()
        .1
    };

    let refused = get(addr, HANDSHAKE, evil);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("\"code\":4"), "{refused:?}");
    let refused = ws(evil);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("\"code\":4"), "{refused:?}");
    // A polling request of an existing session, too.
    let sid = polling_sid(addr);
    let refused = get(addr, &format!("{HANDSHAKE}&sid={sid}"), evil);
    assert_eq!(refused.status, 403, "{refused:?}");

    assert_eq!(get(addr, HANDSHAKE, "").status, 200);
    assert_eq!(get(addr, HANDSHAKE, &own).status, 200);
    assert_eq!(ws("").status, 101);
    assert_eq!(ws(&own).status, 101);
}

/// `--cors-origins http://app.example`: that origin is allowed (with the
/// CORS header), others still refused.
#[test]
fn configured_origin_is_allowed() {
    let dir = TempDir::new("origin-cors");
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--cors-origins",
            "http://app.example",
        ],
        &[],
    );
    let addr = server.addr;
    let allowed = get(addr, HANDSHAKE, "Origin: http://app.example\r\n");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert!(
        allowed
            .head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: http://app.example"),
        "{allowed:?}"
    );
    let upgraded = request(
        addr,
        &format!(
            "GET {WS_HANDSHAKE} HTTP/1.1\r\nHost: {addr}\r\n{UPGRADE}Origin: http://app.example\r\n\r\n"
        ),
    )
    .unwrap()
    .1;
    assert_eq!(upgraded.status, 101, "{upgraded:?}");
    assert_eq!(
        get(addr, HANDSHAKE, "Origin: http://evil.example\r\n").status,
        403
    );
}

// -------------------------------------------------------------------- HEAD --

/// `HEAD /` and `HEAD /healthz` answer 200 like their GET, without a body.
#[test]
fn head_is_answered_like_get() {
    let dir = TempDir::new("head");
    let server = Server::start(dir.path(), &["--port", "0", "--store", "memory"], &[]);
    for path in ["/", "/healthz"] {
        let (mut stream, reply) = request(
            server.addr,
            &format!(
                "HEAD {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            ),
        )
        .unwrap();
        assert_eq!(reply.status, 200, "HEAD {path}: {reply:?}");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "HEAD {path} sent a body: {rest:?}");
    }
}
