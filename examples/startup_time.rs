//! Start-up time for `bench/run.sh`: starts the server binary on a fresh,
//! empty database and polls `GET /healthz` in a tight loop until it answers
//! 200; the time from spawning the process to that answer is one sample.
//! Several runs, median reported. A second figure restarts on the database
//! the first start created (schema and operator account already there;
//! the first server was killed, so the restart recovers its WAL).
//!
//! ```sh
//! cargo run --release --example startup_time -- --bin target/release/instagift --dir /tmp/st --runs 9
//! ```
//!
//! Prints each sample and a `RESULT empty_median_us=… restart_median_us=…`
//! line for scripts.

use clap::Parser;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time from process start to the first successful response.
#[derive(Debug, Parser)]
struct Args {
    /// The server binary.
    #[arg(long)]
    bin: PathBuf,
    /// Scratch directory for the databases (created).
    #[arg(long)]
    dir: PathBuf,
    /// Runs of each kind.
    #[arg(long, default_value_t = 9)]
    runs: usize,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("startup_time: {e}");
        std::process::exit(1);
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// One GET /healthz; true on a 200.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nodelay(true);
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// Spawns the server on `db` and returns the time until /healthz answers.
fn sample(bin: &Path, db: &Path) -> Result<Duration, String> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let mut child: Child = Command::new(bin)
        .arg("--db")
        .arg(db)
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--rate-limits",
            "false",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let result = loop {
        if healthy(addr) {
            break Ok(started.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("the server exited early: {status}"));
        }
        if started.elapsed() > Duration::from_secs(20) {
            break Err("no answer within 20 s".to_string());
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    // SIGKILL: a graceful stop of an idle server takes seconds (its drain
    // waits), which would make the runs slow. The restart sample therefore
    // starts on a file left by a killed server (WAL recovery included).
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn run(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.dir).map_err(|e| e.to_string())?;
    let runs = args.runs.max(1);
    let db = args.dir.join("startup.db");
    let mut empty = Vec::new();
    let mut restart = Vec::new();
    for _ in 0..runs {
        remove_db(&db);
        empty.push(sample(&args.bin, &db)?);
        restart.push(sample(&args.bin, &db)?);
    }
    remove_db(&db);
    let list = |xs: &[Duration]| xs.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" ");
    println!("startup_time: empty database, ms: {}", list(&empty));
    println!(
        "startup_time: restart after kill -9, ms: {}",
        list(&restart)
    );
    let (e, r) = (median(empty), median(restart));
    println!(
        "startup_time: median {} ms on an empty database, {} ms on a restart after kill -9",
        ms(e),
        ms(r)
    );
    println!(
        "RESULT empty_median_us={} restart_median_us={}",
        e.as_micros(),
        r.as_micros()
    );
    Ok(())
}
