//! Slow and idle clients must not stop normal clients being served, and
//! idle connections are closed after the client timeout.

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDLE: usize = 200;
const TRICKLE: usize = 200;

#[test]
fn idle_and_trickling_connections_do_not_starve_normal_clients() {
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
    // The idle connections are closed by the server within the timeout.
    let mut closed = 0;
    for mut conn in idle {
        conn.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(0) | Err(_) = conn.read(&mut buf) {
            closed += 1;
        }
    }
    let waited = opened.elapsed();
    assert_eq!(closed, IDLE, "every idle connection closed");
    // tiny_http hands a burst of new connections to too few threads, so a
    // few idle ones are only read (and timed out) after an earlier one is
    // closed: allow for a few rounds of the 3 s timeout.
    assert!(
        waited < Duration::from_secs(13),
        "closed after {waited:?}, timeout is 3 s"
    );
    stop.store(true, Ordering::SeqCst);
    for t in trickle {
        t.join().unwrap();
    }
    // And the server is still healthy.
    assert_eq!(s.get("/healthz", &[]).status, 200);
}
