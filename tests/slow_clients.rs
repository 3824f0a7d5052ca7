//! Slow and idle clients must not stop normal clients being served, idle
//! connections are closed after the client timeout, and a burst of new
//! keep-alive connections is served at once.

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDLE: usize = 200;
const TRICKLE: usize = 200;

#[test]
fn idle_and_trickling_connections_do_not_starve_normal_clients() {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let s = Server::start_with(
        &["--client-timeout-secs", "3", "--rate-limits", "false"],
        &[],
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let opened = Instant::now();
    // Clients sending their request one byte a second.
    let stop = Arc::new(AtomicBool::new(false));
    let trickle: Vec<_> = (0..TRICKLE)
        .map(|_| {
            let mut conn = TcpStream::connect(&addr).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
                    if stop.load(Ordering::SeqCst) || conn.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A normal client: every answer in well under a second.
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let started = Instant::now();
        let r = s.get("/healthz", &[]);
        let took = started.elapsed();
        assert_eq!(r.status, 200, "request {i}");
        assert!(took < Duration::from_secs(1), "request {i} took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("slowest of 100 normal requests: {slowest:?}");
    // Every idle connection has a thread of its own from the start (the
    // vendored tiny_http's pool starts one for each connection of a burst,
    // see vendor/tiny_http/PATCHES.md), so each is closed by the server
    // about one timeout after it was opened. The margin is for a busy
    // machine; a connection left queued until another closes would take at
    // least a second timeout and miss it.
    let deadline = opened + TIMEOUT + Duration::from_millis(2500);
    let mut open = 0;
    for mut conn in idle {
        let left = deadline.saturating_duration_since(Instant::now());
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 64];
        match conn.read(&mut buf) {
            Ok(0) => {}
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(n) => panic!(
                "idle connection got {n} bytes: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => open += 1,
        }
    }
    let waited = opened.elapsed();
    eprintln!("{IDLE} idle connections closed after {waited:?} (timeout {TIMEOUT:?})");
    assert_eq!(
        open, 0,
        "{open} of {IDLE} idle connections still open {waited:?} after opening them, timeout is {TIMEOUT:?}"
    );
    stop.store(true, Ordering::SeqCst);
    for t in trickle {
        t.join().unwrap();
    }
    // And the server is still healthy.
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

/// A keep-alive connection read one response at a time.
struct Conn {
    stream: TcpStream,
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
}

impl Conn {
    fn send(&mut self, request: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(request)
    }

    /// Reads one whole response (head, then exactly Content-Length bytes of
    /// body) by `deadline`, and returns its status and body.
    fn response(&mut self, deadline: Instant) -> Result<(u16, Vec<u8>), String> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(deadline)?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("unexpected {line:?}"));
            }
        }
        let length = length.ok_or_else(|| format!("no Content-Length in {head:?}"))?;
        while self.buf.len() < head_end + length {
            self.fill(deadline)?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok((status, body))
    }

    /// Appends what arrives before `deadline` to `buf`. Past the deadline
    /// it still takes what has already arrived (a connection read late,
    /// after waiting for another, is not blamed for the wait).
    fn fill(&mut self, deadline: Instant) -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(format!("connection closed (got {:?})", self.text())),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(
                format!("no complete answer in time (got {:?})", self.text()),
            ),
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// Stops the server process (SIGSTOP) until dropped (SIGCONT).
struct Paused(String);

impl Paused {
    fn new(s: &Server) -> Paused {
        let pid = s.child.id().to_string();
        signal("-STOP", &pid);
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(sig: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Before the vendored tiny_http fix (vendor/tiny_http/PATCHES.md), a burst
/// of new connections was queued behind the few idle threads of tiny_http's
/// pool, and the connections those threads did not take were read only when
/// one of the first closed or timed out. The client timeout here is long, so
/// only a thread of its own for every connection answers all of them.
///
/// Whether the old pool starved a burst depended on whether its idle threads
/// woke before the next connections were accepted (it did in most bursts,
/// not all), so the burst is repeated on several fresh servers.
#[test]
fn a_burst_of_keep_alive_connections_is_answered_at_once() {
    for server in 1..=BURST_SERVERS {
        burst_on_a_fresh_server(server);
    }
}

const BURST_SERVERS: usize = 5;

fn burst_on_a_fresh_server(server: usize) {
    const CONNS: usize = 64;
    const BOUND: Duration = Duration::from_secs(2);
    let s = Server::start_with(
        &["--client-timeout-secs", "30", "--rate-limits", "false"],
        &[],
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    // Every connection is open before any request is sent, and the server is
    // stopped while they are opened (the kernel completes the handshakes and
    // queues them on the listener), so that it accepts them all in one
    // burst, as when many tills connect at once, rather than one at a time
    // at the pace this test opens them.
    let paused = Paused::new(&s);
    let mut conns: Vec<Conn> = (0..CONNS)
        .map(|_| {
            let stream = TcpStream::connect(&addr).unwrap();
            stream.set_nodelay(true).unwrap();
            Conn {
                stream,
                buf: Vec::new(),
            }
        })
        .collect();
    drop(paused);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for round in 1..=2 {
        let sent: Vec<Instant> = conns
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                c.send(request).unwrap_or_else(|e| {
                    panic!("server {server}, round {round}: send on connection {i}: {e}")
                });
                Instant::now()
            })
            .collect();
        // Read every answer, each due within BOUND of its request; report
        // all the connections left unanswered, not only the first.
        let mut failures = Vec::new();
        let mut slowest = Duration::ZERO;
        for (i, c) in conns.iter_mut().enumerate() {
            match c.response(sent[i] + BOUND) {
                Ok((200, _)) => slowest = slowest.max(sent[i].elapsed()),
                Ok((status, body)) => failures.push(format!(
                    "connection {i}: status {status}: {}",
                    String::from_utf8_lossy(&body)
                )),
                Err(e) => failures.push(format!("connection {i}: {e}")),
            }
        }
        assert!(
            failures.is_empty(),
            "server {server}, round {round}: {} of {CONNS} connections not answered 200 within {BOUND:?}:\n{}",
            failures.len(),
            failures.join("\n")
        );
        eprintln!(
            "server {server}, round {round}: all {CONNS} connections answered 200, slowest {slowest:?} after its request"
        );
    }
    assert_eq!(s.get("/healthz", &[]).status, 200);
}
