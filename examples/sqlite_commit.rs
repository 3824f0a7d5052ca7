//! The durable-write limit for `bench/run.sh`: a bare SQLite loop on the
//! given file committing one single-row transaction at a time, with the
//! server's settings (WAL, `synchronous=FULL`), for a number of seconds.
//! Each COMMIT waits for its fsync, so commits/s is what this disk allows
//! one writer without group commit.
//!
//! ```sh
//! cargo run --release --example sqlite_commit -- --db target/bench/commit.db --seconds 10
//! ```
//!
//! Prints a human line and a `RESULT commits=… seconds=… rate=… p50_us=…
//! p99_us=…` line for scripts. The file is created (and emptied) by the run.

use clap::Parser;
use rusqlite::Connection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Durable single-row commits per second on this disk.
#[derive(Debug, Parser)]
struct Args {
    /// Database file (its -wal and -shm beside it); removed first.
    #[arg(long)]
    db: PathBuf,
    /// How long to commit for.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("sqlite_commit: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> rusqlite::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = args.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let conn = Connection::open(&args.db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, certificate TEXT NOT NULL, amount INTEGER NOT NULL, created_at INTEGER NOT NULL);",
    )?;
    let mut insert =
        conn.prepare("INSERT INTO t (certificate, amount, created_at) VALUES (?1, ?2, ?3)")?;
    let mut latencies: Vec<Duration> = Vec::new();
    let duration = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut n: i64 = 0;
    while started.elapsed() < duration {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        insert.execute((format!("certificate-{n:010}"), 10_000 - n % 100, n))?;
        conn.execute_batch("COMMIT")?;
        latencies.push(t.elapsed());
        n += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| -> u128 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_micros()
    };
    let rate = n as f64 / elapsed;
    println!(
        "sqlite_commit: {n} durable single-row commits in {elapsed:.1} s = {rate:.0} commits/s, \
         p50 {:.2} ms, p99 {:.2} ms",
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0
    );
    println!(
        "RESULT commits={n} seconds={elapsed:.3} rate={rate:.1} p50_us={} p99_us={}",
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
