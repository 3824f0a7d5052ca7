//! The single writer: one thread owns the only read-write connection.
//! Handlers send it jobs; it takes every job waiting, runs each inside its
//! own SAVEPOINT within one `BEGIN IMMEDIATE … COMMIT` (group commit: one
//! fsync for many requests), and answers each job only after COMMIT.

use crate::error::ApiError;
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;

/// Handle to the writer thread; cheap to share between workers.
pub struct Writer {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<Connection>>>,
    stats: Arc<Stats>,
}

/// Counters that show group commit at work.
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs run.
    pub jobs: AtomicU64,
    /// Transactions committed (each one fsync).
    pub commits: AtomicU64,
    /// The most jobs in one transaction.
    pub largest_batch: AtomicU64,
}

impl Writer {
    /// Starts the writer thread, which owns `conn` until `shutdown`.
    pub fn start(conn: Connection) -> Writer {
        let (sender, receiver) = mpsc::sync_channel::<Job>(4096);
        let stats = Arc::new(Stats::default());
        let counters = stats.clone();
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || run(conn, receiver, &counters))
            .expect("spawn writer thread");
        Writer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            stats,
        }
    }

    /// The group-commit counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs `f` in the write transaction and returns its result once the
    /// transaction is durably committed. An `Err` from `f` rolls back
    /// everything `f` wrote, and nothing else.
    pub fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel::<Result<T, ApiError>>(1);
        let job: Job = Box::new(move |conn: &Connection| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(ApiError::internal("a write job panicked")));
            let ok = result.is_ok();
            let deliver: Deliver = Box::new(move |commit: Result<(), String>| {
                let answer = match commit {
                    Err(e) if ok => Err(ApiError::internal(format!("commit failed: {e}"))),
                    _ => result,
                };
                let _ = reply.send(answer);
            });
            (ok, deliver)
        });
        let sender = self
            .sender
            .lock()
            .map_err(|_| ApiError::internal("writer lock poisoned"))?
            .clone();
        match sender {
            Some(s) => s.send(job).map_err(|_| ApiError::unavailable())?,
            None => return Err(ApiError::unavailable()),
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err(ApiError::internal("writer thread stopped")))
    }

    /// Stops taking jobs, lets the writer finish what it holds, checkpoints
    /// the WAL and closes the connection.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            if let Ok(conn) = h.join() {
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            }
            let s = &self.stats;
            crate::log::info(&format!(
                "writer: {} jobs in {} transactions (largest batch {})",
                s.jobs.load(Ordering::Relaxed),
                s.commits.load(Ordering::Relaxed),
                s.largest_batch.load(Ordering::Relaxed)
            ));
        }
    }
}

fn run(conn: Connection, jobs: Receiver<Job>, stats: &Stats) -> Connection {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        run_batch(&conn, batch);
        stats.jobs.fetch_add(n, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.largest_batch.fetch_max(n, Ordering::Relaxed);
    }
    conn
}

fn run_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        // Dropping the jobs closes their reply channels: each handler answers 500.
        crate::log::error(&format!("writer: cannot begin a transaction: {e}"));
        return;
    }
    let mut delivers = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            crate::log::error(&format!("writer: savepoint failed: {e}"));
            continue;
        }
        let (ok, deliver) = job(conn);
        let end = if ok {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|_| exec(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            crate::log::error(&format!("writer: savepoint end failed: {e}"));
        }
        delivers.push(deliver);
    }
    let commit = exec(conn, "COMMIT").map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = exec(conn, "ROLLBACK");
    }
    for deliver in delivers {
        deliver(commit.clone());
    }
}

/// Runs one statement through the statement cache: these few run for every
/// job, and parsing them each time showed in profiles.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
