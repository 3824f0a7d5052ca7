//! Issue 12, the HTTP layer: no request, connection or client may take the
//! server down or hold up other clients. Raw sockets to 127.0.0.1 only;
//! every loop is bounded in count and time.
//!
//! `one_server_survives_every_attack` runs everything at once against one
//! server started with 1,024 file descriptors; the other tests each look at
//! one finding on a server of their own.

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a normal client waits at most for each answer.
const NORMAL_LIMIT: Duration = Duration::from_secs(1);
const TICKET: &str = r#"{"name":"Ada","email":"ada@example.com","message":"hello"}"#;

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes or `limit` passes: what arrived, and
/// whether the server closed.
fn read_until_closed(c: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        c.set_read_timeout(Some(left)).unwrap();
        match c.read(&mut chunk) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, false)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (got, true),
        }
    }
}

/// Sends `request` on a new connection and reads as `read_until_closed`.
fn exchange(addr: &str, request: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    let mut c = connect(addr);
    c.set_write_timeout(Some(limit)).unwrap();
    // The server may close before it has read everything.
    let _ = c.write_all(request);
    read_until_closed(&mut c, limit)
}

/// A new connection, which the server must accept within 3 s.
fn connect(addr: &str) -> TcpStream {
    try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

fn try_connect(addr: &str) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))
}

/// The statuses of the responses in `raw`, in order.
fn statuses(raw: &[u8]) -> Vec<u16> {
    let mut found = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..i]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        found.push(status);
        rest = &rest[(i + 4 + length).min(rest.len())..];
    }
    found
}

/// One request of a normal client on a new connection: its status and how
/// long it took, or why there was none within `NORMAL_LIMIT`.
fn normal(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, Duration), String> {
    let started = Instant::now();
    let target: SocketAddr = addr.parse().unwrap();
    let mut c = TcpStream::connect_timeout(&target, NORMAL_LIMIT).map_err(|e| e.to_string())?;
    c.set_write_timeout(Some(NORMAL_LIMIT)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let (raw, _) = read_until_closed(&mut c, NORMAL_LIMIT);
    let took = started.elapsed();
    match statuses(&raw).first() {
        Some(&status) => Ok((status, took)),
        None => Err(format!("no answer after {took:?}")),
    }
}

/// A normal client's GET and POST, in a loop on a thread of its own until
/// `finish`: each must be answered (200, 201) within `NORMAL_LIMIT`.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Duration, Vec<String>)>,
}

impl Watcher {
    fn start(addr: &str) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, flag) = (addr.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let (mut rounds, mut slowest, mut failures) = (0, Duration::ZERO, Vec::new());
            while !flag.load(Ordering::SeqCst) && rounds < 1000 {
                for (method, path, body, want) in [
                    ("GET", "/healthz", "", 200),
                    ("POST", "/v2/support_tickets", TICKET, 201),
                ] {
                    match normal(&addr, method, path, body) {
                        Ok((status, took)) if status == want && took <= NORMAL_LIMIT => {
                            slowest = slowest.max(took)
                        }
                        other => failures.push(format!("{method} {path}: {other:?}")),
                    }
                }
                rounds += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (rounds, slowest, failures)
        });
        Watcher { stop, thread }
    }

    /// Stops the loop and fails the test unless every request was answered
    /// in time.
    fn finish(self, what: &str) {
        self.stop.store(true, Ordering::SeqCst);
        let (rounds, slowest, failures) = self.thread.join().unwrap();
        eprintln!("{what}: {rounds} rounds of a normal GET and POST, slowest {slowest:?}");
        assert!(rounds > 0, "{what}: the normal client never ran");
        assert!(
            failures.is_empty(),
            "{what}: {} normal requests failed or took over {NORMAL_LIMIT:?}:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// The server process is still running and answers a normal GET.
fn alive_and_serving(s: &mut Server, what: &str) {
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "{what}: the server exited; log:\n{}",
        s.log()
    );
    let answer = normal(&addr(s), "GET", "/healthz", "");
    assert!(
        matches!(answer, Ok((200, _))),
        "{what}: GET /healthz after the attack: {answer:?}"
    );
    assert!(!s.log().contains("panicked"), "{what}: a panic in the log");
}

// ---------------------------------------------------------------------
// The attacks, each usable alone or together.

/// Huge declared lengths and no body: each is refused with 413, unread,
/// and the connection closes.
fn huge_declared_lengths(addr: &str) {
    for length in [
        "1099511627776",
        "18446744073709551615",
        "18446744073709551615",
        "18446744073709551615",
        "18446744073709551615",
        "18446744073709551615",
        "99999999999999999999999999",
    ] {
        let request = format!(
            "POST /v2/support_tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        );
        let (raw, closed) = exchange(addr, request.as_bytes(), Duration::from_secs(3));
        assert_eq!(
            statuses(&raw),
            vec![413],
            "Content-Length {length}: {raw:?}"
        );
        assert!(
            closed,
            "Content-Length {length}: the connection stayed open"
        );
    }
}

/// Sends `head` and then `filler` over and over (at most 64 MiB, 5 s):
/// the server must answer `want` and close long before.
fn flood_head(addr: &str, head: &[u8], filler: &[u8], want: u16) {
    let mut c = connect(addr);
    c.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = c.write_all(head);
    let block: Vec<u8> = filler.iter().copied().cycle().take(64 * 1024).collect();
    let started = Instant::now();
    let mut sent = head.len();
    while sent < 64 << 20 && started.elapsed() < Duration::from_secs(5) {
        match c.write(&block) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    let (raw, closed) = read_until_closed(&mut c, Duration::from_secs(3));
    let what = String::from_utf8_lossy(&head[..head.len().min(40)]).into_owned();
    assert_eq!(
        statuses(&raw),
        vec![want],
        "{what}…: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(closed, "{what}…: the connection stayed open");
}

/// One endless header line, endless small headers, an endless request line.
fn head_floods(addr: &str) {
    flood_head(addr, b"GET /healthz HTTP/1.1\r\nX-Long: ", b"a", 431);
    flood_head(addr, b"GET /healthz HTTP/1.1\r\n", b"X-Many: 1\r\n", 431);
    flood_head(addr, b"GET /", b"a", 414);
}

/// Requests whose framing two parsers could read two ways, each followed by
/// a hidden second request: the first is refused, the hidden one never
/// answered, and the connection closes.
fn smuggling(addr: &str) {
    let hidden = "GET /healthz?smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let n = hidden.len();
    let over = 64 * 1024 + 1;
    let big_chunk = format!(
        "{:x}\r\n{}{hidden}\r\n0\r\n\r\n",
        over + n,
        "a".repeat(over)
    );
    let cases: Vec<(String, u16)> = vec![
        (
            format!("Content-Length: 0\r\nContent-Length: {n}\r\n\r\n{hidden}"),
            400,
        ),
        (
            format!("Content-Length: {n}\r\nContent-Length: 0\r\n\r\n{hidden}"),
            400,
        ),
        (format!("Content-Length: -1\r\n\r\n{hidden}"), 400),
        (format!("Content-Length: 5, 5\r\n\r\n12345{hidden}"), 400),
        (format!("Content-Length : {n}\r\n\r\n{hidden}"), 400),
        (format!("Content-Length: 0\r\n {n}\r\n\r\n{hidden}"), 400),
        (
            format!("Transfer-Encoding: gzip\r\nContent-Length: {n}\r\n\r\n{hidden}"),
            400,
        ),
        (
            format!("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"),
            400,
        ),
        (
            format!("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"),
            400,
        ),
        (
            format!("Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n{hidden}"),
            400,
        ),
        (
            format!(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
            ),
            400,
        ),
        (
            format!("Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{hidden}"),
            400,
        ),
        (
            format!("Transfer-Encoding: chunked\r\n\r\nzz\r\n{hidden}"),
            400,
        ),
        (
            format!("Transfer-Encoding: chunked\r\n\r\n{big_chunk}"),
            413,
        ),
        (
            format!("Content-Length: {over}\r\n\r\n{}{hidden}", "a".repeat(over)),
            413,
        ),
    ];
    for (rest, want) in cases {
        let request = format!(
            "POST /v2/support_tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{rest}"
        );
        let shown = &request[..request.len().min(160)];
        let (raw, closed) = exchange(addr, request.as_bytes(), Duration::from_secs(3));
        assert_eq!(
            statuses(&raw),
            vec![want],
            "{shown:?}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        assert!(closed, "{shown:?}: the connection stayed open");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.contains("\r\nConnection: close\r\n"),
            "{shown:?}: {text}"
        );
    }
    // HTTP/1.0 has no chunked coding.
    let request = format!(
        "POST /v2/support_tickets HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
    );
    let (raw, closed) = exchange(addr, request.as_bytes(), Duration::from_secs(3));
    assert_eq!(statuses(&raw), vec![400]);
    assert!(closed);
}

/// Connections that declare a 60,000-byte body and send it a byte a second,
/// on a thread of their own until `stop`; half GETs (answered by workers),
/// half POSTs (answered by change threads).
fn slow_bodies(addr: &str, count: usize, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let mut conns: Vec<TcpStream> = (0..count)
        .map(|i| {
            let mut c = connect(addr);
            let method = if i % 2 == 0 { "GET /healthz" } else { "POST /v2/support_tickets" };
            let head = format!(
                "{method} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
            );
            c.write_all(head.as_bytes()).unwrap();
            c.set_nonblocking(true).unwrap();
            c
        })
        .collect();
    std::thread::spawn(move || {
        for _ in 0..60 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            for c in conns.iter_mut() {
                let _ = c.write(b"{");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

/// Connections that pipeline `requests` GETs of `path` and never read an
/// answer, with a small receive buffer so that the answers back up at once.
fn slow_readers(addr: &str, count: usize, path: &str, requests: usize) -> Vec<TcpStream> {
    let target: SocketAddr = addr.parse().unwrap();
    let pipeline = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(requests);
    (0..count)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket
                .connect_timeout(&target.into(), Duration::from_secs(3))
                .unwrap();
            let mut c: TcpStream = socket.into();
            c.set_nonblocking(true).unwrap();
            // As much as the server takes now; it stops reading while its
            // answers cannot be written.
            let _ = c.write(pipeline.as_bytes());
            c
        })
        .collect()
}

// ---------------------------------------------------------------------
// One finding each.

/// Finding 1: a declared length is never allocated (2^40 aborted the
/// process; 2^64-1 killed a worker each, and four left it deaf).
#[test]
fn huge_declared_lengths_are_refused_unread() {
    let mut s = Server::start_with(&["--rate-limits", "false"], &[]);
    huge_declared_lengths(&addr(&s));
    alive_and_serving(&mut s, "huge declared lengths");
}

/// Finding 2: the request line, each header line, the header count and the
/// head are bounded, and so is the time the head may take.
#[test]
fn request_heads_are_bounded_in_size_and_time() {
    let mut s = Server::start_with(
        &["--rate-limits", "false", "--client-timeout-secs", "2"],
        &[],
    );
    let addr = addr(&s);
    head_floods(&addr);
    // Just within the limits is fine.
    let headers: String = (0..60)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(100)))
        .collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    let (raw, _) = exchange(&addr, request.as_bytes(), Duration::from_secs(3));
    assert_eq!(statuses(&raw), vec![200]);
    // A head sent a byte every 200 ms never ends: 408 after the head
    // deadline (the client timeout), although each byte came in time.
    let mut c = connect(&addr);
    let started = Instant::now();
    let mut answered = None;
    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain([b'a'; 100].iter())
    {
        if c.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = c.read(&mut buf) {
            answered = Some((buf[..n].to_vec(), started.elapsed()));
            break;
        }
        c.set_nonblocking(false).unwrap();
    }
    let (raw, after) = answered.expect("the slow head was never cut off");
    assert_eq!(
        statuses(&raw),
        vec![408],
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(after < Duration::from_secs(4), "408 only after {after:?}");
    alive_and_serving(&mut s, "head floods");
}

/// Finding 3a: bodies sent a byte at a time hold no worker and no change
/// thread; they are cut off at the body deadline.
#[test]
fn slow_bodies_hold_no_worker() {
    let mut s = Server::start_with(
        &[
            "--rate-limits",
            "false",
            "--client-timeout-secs",
            "3",
            "--threads",
            "2",
            "--change-threads",
            "2",
        ],
        &[],
    );
    let addr = addr(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = slow_bodies(&addr, 16, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let watcher = Watcher::start(&addr);
    std::thread::sleep(Duration::from_secs(5));
    watcher.finish("16 slow bodies");
    stop.store(true, Ordering::SeqCst);
    trickle.join().unwrap();
    alive_and_serving(&mut s, "slow bodies");
}

/// Finding 3b: clients that pipeline without reading hold no worker; their
/// connections are closed at the write deadline.
#[test]
fn clients_that_do_not_read_hold_no_worker() {
    let mut s = Server::start_with(
        &[
            "--rate-limits",
            "false",
            "--client-timeout-secs",
            "3",
            "--threads",
            "2",
            "--change-threads",
            "2",
        ],
        &[],
    );
    let addr = addr(&s);
    // The API description is 220 kB: a few answers fill the buffers.
    let readers = slow_readers(&addr, 8, "/v2/openapi.json", 40);
    let pipeliner = slow_readers(&addr, 1, "/healthz", 200);
    std::thread::sleep(Duration::from_millis(300));
    let watcher = Watcher::start(&addr);
    std::thread::sleep(Duration::from_secs(5));
    watcher.finish("8 non-reading pipeliners");
    // Closed by the server by now (write deadline 3 s): reading drains
    // what was sent and ends.
    for mut c in readers.into_iter().chain(pipeliner) {
        c.set_nonblocking(false).unwrap();
        let (_, closed) = read_until_closed(&mut c, Duration::from_secs(5));
        assert!(closed, "a connection that does not read was never closed");
    }
    alive_and_serving(&mut s, "slow readers");
}

/// Finding 4: with 1,024 file descriptors, a flood of unfinished
/// connections gets 503 past the connection cap instead of killing the
/// accept thread (which upstream's `try_clone().unwrap()` did at EMFILE),
/// and the server serves again once they close.
#[test]
fn a_connection_flood_at_1024_fds_is_refused_not_fatal() {
    let mut s = Server::start_through(
        &["prlimit", "--nofile=1024:1024"],
        &["--rate-limits", "false", "--client-timeout-secs", "20"],
    );
    let addr = addr(&s);
    // Stops at the first connection not accepted in time.
    let mut flood: Vec<TcpStream> = (0..1100).map_while(|_| try_connect(&addr).ok()).collect();
    assert_eq!(flood.len(), 1100, "connections stopped being accepted");
    // The last connections are over the cap: 503 and closed.
    let mut refused = 0;
    for c in flood.iter_mut().rev().take(100) {
        let (raw, closed) = read_until_closed(c, Duration::from_millis(500));
        if closed && statuses(&raw) == vec![503] {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "no connection over the cap was refused with 503"
    );
    assert!(s.child.try_wait().unwrap().is_none(), "the server exited");
    drop(flood);
    std::thread::sleep(Duration::from_millis(500));
    alive_and_serving(&mut s, "connection flood");
}

/// Finding 5: ambiguous framing is a 400 and closes the connection; so does
/// any body error, and the server's `Connection: close` is really sent.
#[test]
fn ambiguous_framing_is_refused_and_closes() {
    let mut s = Server::start_with(&["--rate-limits", "false"], &[]);
    smuggling(&addr(&s));
    alive_and_serving(&mut s, "smuggling");
}

// ---------------------------------------------------------------------

/// Everything at once against one server with 1,024 file descriptors,
/// while a normal client's GET and POST keep being answered within 1 s.
#[test]
fn one_server_survives_every_attack() {
    let mut s = Server::start_through(
        &["prlimit", "--nofile=1024:1024"],
        &["--rate-limits", "false", "--client-timeout-secs", "6"],
    );
    let addr = addr(&s);
    let watcher = Watcher::start(&addr);
    let idle: Vec<TcpStream> = (0..600).map(|_| connect(&addr)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = slow_bodies(&addr, 64, stop.clone());
    let readers = slow_readers(&addr, 64, "/admin/app.js", 100);
    let attacks: Vec<JoinHandle<()>> = [huge_declared_lengths as fn(&str), head_floods, smuggling]
        .into_iter()
        .map(|attack| {
            let addr = addr.clone();
            std::thread::spawn(move || attack(&addr))
        })
        .collect();
    for a in attacks {
        a.join().unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    watcher.finish("every attack at once");
    stop.store(true, Ordering::SeqCst);
    trickle.join().unwrap();
    drop((idle, readers));
    alive_and_serving(&mut s, "every attack at once");
}
