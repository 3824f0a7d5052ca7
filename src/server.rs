//! Sockets: the tiny_http listener, two fixed pools of threads (each with
//! its own read connection), the access log and graceful shutdown.
//!
//! Workers (about the number of cores: more only adds thread switches)
//! answer reads and hand every change to the change threads, which wait for
//! the writer's commit. A change waiting for its fsync therefore never holds
//! up a read, and up to `--change-threads` changes share one commit.

use crate::args::ServeArgs;
use crate::db::{self, Writer};
use crate::domain::claim_code;
use crate::error::ApiError;
use crate::mail::{self, MailConfig};
use crate::web::ratelimit::{Budgets, Limiter};
use crate::web::{self, request::MAX_BODY, App, Request, Response};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long in-flight requests get to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(4);
/// Most connections open at once, whatever the file-descriptor limit.
const MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept free for the rest of the process: SQLite takes
/// three per connection (database, WAL, shared memory), plus this margin
/// for the listener, logs, mail and backups.
const FD_MARGIN: usize = 64;
/// How often an idle worker looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// While draining, a worker stops after this long without a request.
const QUIET: Duration = Duration::from_millis(500);

/// A started server: its address and the means to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    app: Arc<App>,
    stopping: Arc<AtomicBool>,
    /// Set when the listener or a worker died; the process should exit and
    /// be restarted.
    failed: Arc<AtomicBool>,
    /// Threads that report on `done` when they end.
    threads: usize,
    done: mpsc::Receiver<()>,
    /// The operator password generated on this first start, to print once.
    pub admin_password: Option<String>,
    mail: Option<std::thread::JoinHandle<()>>,
}

/// Opens the database, binds the listener and starts the workers.
pub fn start(db_path: &Path, args: &ServeArgs) -> Result<Running, String> {
    let conn = db::open_writer(db_path)?;
    let schema = db::schema_version(&conn);
    let admin_password = crate::admin::ensure_operator(&conn)?;
    let timeout = Duration::from_secs(args.client_timeout_secs.max(1));
    let workers = match args.threads {
        0 => default_workers(),
        n => n,
    };
    let change_threads = args.change_threads.max(1);
    // Readers of the workers and change threads, the writer, the checkpointer
    // and the mail worker.
    let db_connections = workers + change_threads + 3;
    let http = listen(&args.listen, limits(timeout, db_connections))?;
    let addr = http
        .server_addr()
        .to_ip()
        .ok_or("listener has no IP address")?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let app = Arc::new(App {
        writer: Arc::new(Writer::start(conn, db::open_checkpointer(db_path)?)?),
        public_url,
        limiter: Limiter::new(Budgets {
            enabled: args.rate_limits,
            ..Budgets::defaults(
                args.rate_limit_merchant,
                args.rate_limit_user,
                args.rate_limit_ip,
            )
        }),
    });
    let http = Arc::new(http);
    let stopping = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicBool::new(false));
    let (done_tx, done) = mpsc::channel();
    let (changes_tx, changes) = mpsc::sync_channel::<tiny_http::Request>(change_threads);
    let changes = Arc::new(Mutex::new(changes));
    for i in 0..change_threads {
        let reader = db::open_reader(db_path)?;
        // Changes read little (credentials, a replayed answer): a small
        // page cache each keeps many of these threads cheap.
        reader
            .pragma_update(None, "cache_size", -256)
            .map_err(|e| e.to_string())?;
        let (app, changes, done_tx) = (app.clone(), changes.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("change-{i}"))
            .spawn(move || {
                answer_changes(&app, &reader, &changes);
                let _ = done_tx.send(());
            })
            .map_err(|e| e.to_string())?;
    }
    for i in 0..workers {
        let reader = db::open_reader(db_path)?;
        let (http, app, stopping, failed, done_tx, changes_tx) = (
            http.clone(),
            app.clone(),
            stopping.clone(),
            failed.clone(),
            done_tx.clone(),
            changes_tx.clone(),
        );
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                let pool = Pool {
                    http: &http,
                    app: &app,
                    reader: &reader,
                    changes: changes_tx,
                };
                // A worker that dies leaves fewer to answer, unseen: exit
                // instead, for the supervisor to restart the server.
                let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool.work(&stopping, &failed)
                }));
                if worked.is_err() {
                    crate::log::error("a worker died");
                    failed.store(true, Ordering::SeqCst);
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| e.to_string())?;
    }
    // Only the workers hold senders now: when the last worker ends, the
    // change threads finish what is queued and end too.
    drop(changes_tx);
    let mail = match &args.smtp_url {
        Some(url) => {
            let cfg = MailConfig {
                smtp_url: url.clone(),
                from: args.mail_from.clone(),
                retry_base: Duration::from_secs(args.mail_retry_secs),
                max_attempts: args.mail_max_attempts.max(1),
                poll: Duration::from_millis(args.mail_poll_ms.max(10)),
            };
            Some(mail::start(
                db_path,
                app.writer.clone(),
                cfg,
                stopping.clone(),
            )?)
        }
        None => {
            crate::log::info("mail: no --smtp-url; messages wait in the outbox");
            None
        }
    };
    crate::log::info(&format!(
        "instagift {} listening on http://{addr} (database {}, schema v{schema}, {workers} workers, {change_threads} change threads)",
        env!("CARGO_PKG_VERSION"),
        db_path.display()
    ));
    Ok(Running {
        addr,
        app,
        stopping,
        failed,
        threads: workers + change_threads,
        done,
        mail,
        admin_password,
    })
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), lets the
    /// writer commit what it holds, and checkpoints the database.
    pub fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + DRAIN;
        for _ in 0..self.threads {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                crate::log::warn("shutdown: some requests did not finish in time");
                break;
            }
        }
        if let Some(mail) = self.mail {
            // The worker stops between messages. A send still in progress
            // after the wait is abandoned: its row stays queued and is sent
            // again after the restart (at least once).
            let until = Instant::now() + Duration::from_secs(2);
            while !mail.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.app.writer.shutdown();
        crate::log::info("stopped");
    }
}

/// Workers when `--threads` is 0: two per core, at least two. More only
/// adds thread switches to every read (changes wait on their own threads).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(2)
        .max(2)
}

/// What one client may send or hold (see README, "Hostile clients"): the
/// client timeout bounds an idle connection, each request head, each body
/// and each answer's write; the connection cap leaves file descriptors for
/// the databases.
fn limits(timeout: Duration, db_connections: usize) -> tiny_http::Limits {
    let reserved = 3 * db_connections + FD_MARGIN;
    let max_connections = match open_files_limit() {
        Some(n) => n.saturating_sub(reserved).clamp(16, MAX_CONNECTIONS),
        None => 1024usize.saturating_sub(reserved).max(16),
    };
    tiny_http::Limits {
        max_body: MAX_BODY,
        idle: timeout,
        head_deadline: timeout,
        body_deadline: timeout,
        write_deadline: timeout,
        max_connections,
        ..tiny_http::Limits::default()
    }
}

/// The process's soft limit on open files (RLIMIT_NOFILE), from /proc.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

/// Binds the listener. Accepted connections inherit TCP_NODELAY, so answers
/// go out at once, not after Nagle's wait for the client's delayed ACK; the
/// connection threads set their own timeouts from `limits`.
/// Connections the kernel may hold before we accept them.
const LISTEN_BACKLOG: i32 = 1024;

fn listen(addr: &str, limits: tiny_http::Limits) -> Result<tiny_http::Server, String> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let socket = socket2::SockRef::from(&listener);
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    // A deeper accept queue than std's 128: under a burst of connections
    // (a flood, or many tills at once) a new client's SYN waits in the
    // queue instead of being dropped and retried a second later. Listening
    // again on a listening socket only changes its backlog (capped by the
    // kernel's somaxconn).
    socket
        .listen(LISTEN_BACKLOG)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tiny_http::Server::with_limits(listener, limits)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(db_path: PathBuf, args: ServeArgs) -> Result<(), String> {
    let (signal_tx, signal_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = signal_tx.send(());
    })
    .map_err(|e| format!("cannot install signal handler: {e}"))?;
    let running = start(&db_path, &args)?;
    println!("instagift listening on http://{}", running.addr);
    if running.addr.ip().is_loopback() {
        println!(
            "(only this machine can connect; use --listen 0.0.0.0:{} to open it to the LAN)",
            running.addr.port()
        );
    }
    if let Some(password) = &running.admin_password {
        println!(
            "admin page: http://{}/admin/ with the operator password {password} \
             (shown only now; change it with `instagift admin set-password`)",
            running.addr
        );
    }
    loop {
        match signal_rx.recv_timeout(Duration::from_millis(250)) {
            Err(mpsc::RecvTimeoutError::Timeout) if !running.failed.load(Ordering::SeqCst) => {
                continue
            }
            _ => break,
        }
    }
    let failed = running.failed.load(Ordering::SeqCst);
    crate::log::info("shutting down");
    running.shutdown();
    if failed {
        return Err(
            "the listener or a worker failed; exiting so a supervisor can restart the server"
                .into(),
        );
    }
    Ok(())
}

/// What a worker thread holds.
struct Pool<'a> {
    http: &'a tiny_http::Server,
    app: &'a App,
    reader: &'a rusqlite::Connection,
    changes: mpsc::SyncSender<tiny_http::Request>,
}

impl Pool<'_> {
    /// Takes requests until the stop flag: answers reads itself and hands
    /// changes to the change threads, so a change waiting for its commit
    /// never holds up reads, and as many changes as there are change threads
    /// can be folded into one commit.
    fn work(&self, stopping: &AtomicBool, failed: &AtomicBool) {
        // Poll rather than block, so a worker sees the stop flag within
        // `POLL` without needing tiny_http's unblock (whose wake-ups a draining
        // worker could swallow, leaving another blocked).
        while !stopping.load(Ordering::SeqCst) {
            match self.http.recv_timeout(POLL) {
                Ok(Some(rq)) => self.take(rq),
                Ok(None) => {}
                Err(e) => {
                    if !stopping.load(Ordering::SeqCst) {
                        // tiny_http's accept loop has ended: nothing more will
                        // arrive. Fail loudly rather than linger deaf.
                        crate::log::error(&format!("listener failed: {e}"));
                        failed.store(true, Ordering::SeqCst);
                    }
                    break;
                }
            }
        }
        // Draining: tiny_http queues a request only once its head (and a small
        // body) has arrived, so a request in flight at the signal may still be
        // on its way. Answer what arrives until the queue stays quiet.
        let deadline = Instant::now() + DRAIN - Duration::from_millis(500);
        while Instant::now() < deadline {
            match self.http.recv_timeout(QUIET) {
                Ok(Some(rq)) => self.take(rq),
                _ => break,
            }
        }
    }

    fn take(&self, rq: tiny_http::Request) {
        if web::request::is_read(rq.method().as_str()) {
            return serve_caught(self.app, self.reader, rq);
        }
        // Blocks while every change thread is busy and the queue is full.
        if let Err(mpsc::SendError(rq)) = self.changes.send(rq) {
            serve_caught(self.app, self.reader, rq);
        }
    }
}

/// A change thread: answers the changes the workers hand on, until they
/// have all ended and the queue is empty.
fn answer_changes(
    app: &App,
    reader: &rusqlite::Connection,
    changes: &Mutex<mpsc::Receiver<tiny_http::Request>>,
) {
    loop {
        let next = match changes.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            Ok(rq) => serve_caught(app, reader, rq),
            Err(_) => return,
        }
    }
}

/// Serves one request; a panic in it costs that request (answered with an
/// empty 500 as it unwinds), not the thread.
fn serve_caught(app: &App, reader: &rusqlite::Connection, rq: tiny_http::Request) {
    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_one(app, reader, rq)));
    if caught.is_err() {
        crate::log::error("a request handler panicked; answered 500");
    }
}

fn serve_one(app: &App, reader: &rusqlite::Connection, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let method = rq.method().as_str().to_string();
    let url = rq.url().to_string();
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_string(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let remote_ip = rq
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (response, close) = match read_body(&mut rq) {
        Ok(body) => {
            let req = Request::new(&method, &url, headers, body, remote_ip);
            (web::handle(app, reader, &req), false)
        }
        Err(e) => (Response::from(e), true),
    };
    let status = response.status;
    let path = loggable_path(&url);
    if let Err(e) = send(rq, response, close) {
        crate::log::debug(&format!("client went away: {e}"));
    }
    crate::log::info(&format!(
        "{method} {path} {status} {}ms",
        started.elapsed().as_millis()
    ));
}

/// The body, which tiny_http has already read in full on the connection's
/// own thread (at most `MAX_BODY` bytes, under the client timeout), or why
/// it could not; the connection closes after answering a body error.
fn read_body(rq: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let unreadable = |why: &str| ApiError::bad_request("Invalid request", why);
    match rq.body_error() {
        Some(tiny_http::BodyError::TooLarge) => Err(ApiError::new(
            413,
            "Payload Too Large",
            format!("Request bodies are limited to {MAX_BODY} bytes"),
        )),
        Some(tiny_http::BodyError::TooSlow) => {
            Err(unreadable("The request body arrived too slowly"))
        }
        Some(tiny_http::BodyError::Malformed) => {
            Err(unreadable("The chunked request body is malformed"))
        }
        None => {
            let mut body = Vec::new();
            rq.as_reader()
                .read_to_end(&mut body)
                .map_err(|e| unreadable(&format!("Could not read the request body: {e}")))?;
            Ok(body)
        }
    }
}

fn send(rq: tiny_http::Request, r: Response, close: bool) -> std::io::Result<()> {
    let mut out = tiny_http::Response::from_data(r.body).with_status_code(r.status);
    let mut add = |k: &str, v: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            out.add_header(h);
        }
    };
    if !r.content_type.is_empty() {
        add("Content-Type", &r.content_type);
    }
    for (k, v) in &r.headers {
        add(k, v);
    }
    if close {
        add("Connection", "close");
    }
    rq.respond(out)
}

/// The path for the access log: no query string, claim codes redacted.
fn loggable_path(url: &str) -> String {
    let path = url.split('?').next().unwrap_or("");
    path.split('/')
        .map(
            |seg| match claim_code::normalize(&crate::web::request::percent_decode(seg)) {
                Some(code) => claim_code::redacted(&code),
                None => seg.chars().take(64).collect(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_hides_claim_codes_and_queries() {
        let code = claim_code::display(&claim_code::generate());
        let logged = loggable_path(&format!("/v2/claim_codes/{code}/redemptions?token=secret"));
        assert!(!logged.contains(&code[5..]));
        assert!(!logged.contains("secret"));
        assert!(logged.starts_with("/v2/claim_codes/"));
    }
}
