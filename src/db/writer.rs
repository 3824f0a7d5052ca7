//! The single writer: one thread owns the only read-write connection.
//! Handlers send it jobs; it takes every job waiting, runs each inside its
//! own SAVEPOINT within one `BEGIN IMMEDIATE … COMMIT` (group commit: one
//! fsync for many requests), and answers each job only after COMMIT.
//! A second thread checkpoints the WAL from its own connection.

// `SAVEPOINT`, `RELEASE` and `COMMIT` run for every job: through the
// statement cache, since parsing them each time showed in profiles.
use super::run_cached as exec;
use crate::error::ApiError;
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;
/// How often the checkpointer copies committed pages into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);
/// WAL pages after which the writer checkpoints by itself. A checkpoint
/// beside a busy writer rarely finds the WAL fully copied between two of
/// its transactions, which is when the WAL file starts over; this bounds
/// the file (about 16 MB) under sustained writes. Idle moments reset it.
const WRITER_CHECKPOINT_PAGES: i64 = 4_000;
/// The writer's page cache: the pages redemptions touch stay in memory
/// (the default 2 MB made it re-read pages from the OS).
const WRITER_CACHE_KIB: i64 = 8192;

type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;

/// Handle to the writer thread; cheap to share between workers.
pub struct Writer {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<Connection>>>,
    /// Dropping the sender stops the checkpointer.
    checkpointer: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
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
    /// Starts the writer thread, which owns `conn` until `shutdown`, and
    /// the checkpointer with its own connection `checkpoints`.
    pub fn start(conn: Connection, checkpoints: Connection) -> Result<Writer, String> {
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .and_then(|_| conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB))
            .map_err(|e| e.to_string())?;
        let (sender, receiver) = mpsc::sync_channel::<Job>(4096);
        let stats = Arc::new(Stats::default());
        let counters = stats.clone();
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || run(conn, receiver, &counters))
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        let (stop, stopped) = mpsc::sync_channel::<()>(0);
        let counters = stats.clone();
        let checkpointer = std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || checkpoint(&checkpoints, &stopped, &counters))
            .map_err(|e| format!("cannot start the checkpointer thread: {e}"))?;
        Ok(Writer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some((stop, checkpointer))),
            stats,
        })
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

    /// Runs `f` in a coming write transaction without waiting for it, and
    /// only if the queue has room: for bookkeeping that may be skipped
    /// (recording when a token was last used). Errors are logged.
    pub fn submit<F>(&self, f: F)
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        let job: Job = Box::new(move |conn: &Connection| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)));
            let ok = matches!(result, Ok(Ok(())));
            if let Ok(Err(e)) = result {
                crate::log::warn(&format!("writer: background job failed: {e}"));
            }
            let deliver: Deliver = Box::new(|_| {});
            (ok, deliver)
        });
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        if let Some(s) = sender {
            let _ = s.try_send(job);
        }
    }

    /// A round trip through the writer: a job with no work, answered once
    /// its transaction (`BEGIN IMMEDIATE … COMMIT`, which writes nothing)
    /// is committed. Err when the writer cannot take the write lock or
    /// commit, has stopped, or does not answer within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<(), String> {
        let (reply, answer) = mpsc::sync_channel::<Result<(), String>>(1);
        let job: Job = Box::new(move |_: &Connection| {
            let deliver: Deliver = Box::new(move |commit: Result<(), String>| {
                let _ = reply.send(commit);
            });
            (true, deliver)
        });
        let sender = self
            .sender
            .lock()
            .map_err(|_| "writer lock poisoned".to_string())?
            .clone()
            .ok_or("the writer has stopped")?;
        sender.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => "the writer's queue is full".to_string(),
            mpsc::TrySendError::Disconnected(_) => "the writer has stopped".to_string(),
        })?;
        match answer.recv_timeout(timeout) {
            Ok(commit) => commit.map_err(|e| format!("the writer cannot commit: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "the writer did not answer within {} ms",
                timeout.as_millis()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err("the writer cannot begin a transaction".to_string())
            }
        }
    }

    /// Stops taking jobs, lets the writer finish what it holds, checkpoints
    /// the WAL and closes the connection.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some((stop, thread)) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            drop(stop);
            let _ = thread.join();
        }
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

/// Every `CHECKPOINT_EVERY` with new commits: a PASSIVE checkpoint, which
/// copies what no reader still needs and never waits for locks.
fn checkpoint(conn: &Connection, stop: &Receiver<()>, stats: &Stats) {
    let mut seen = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let commits = stats.commits.load(Ordering::Relaxed);
        if commits == seen {
            continue;
        }
        seen = commits;
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            crate::log::warn(&format!("checkpoint failed: {e}"));
        }
    }
}

fn run(conn: Connection, jobs: Receiver<Job>, stats: &Stats) -> Connection {
    super::housekeeping::purge(&conn);
    let mut purged = Instant::now();
    loop {
        let first = match jobs.recv_timeout(super::housekeeping::PURGE_EVERY) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                super::housekeeping::purge(&conn);
                purged = Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
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
        if purged.elapsed() >= super::housekeeping::PURGE_EVERY {
            super::housekeeping::purge(&conn);
            purged = Instant::now();
        }
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
