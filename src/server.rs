//! Sockets: the tiny_http listener, a fixed pool of worker threads (each
//! with its own read connection), the access log and graceful shutdown.

use crate::config::ServeArgs;
use crate::db::{self, Writer};
use crate::domain::claim_code;
use crate::error::ApiError;
use crate::mail::{self, MailConfig};
use crate::web::{self, request::MAX_BODY, App, Request, Response};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long in-flight requests get to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(4);
/// While draining, a worker stops after this long without a request.
const QUIET: Duration = Duration::from_millis(750);

/// A started server: its address and the means to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    http: Arc<tiny_http::Server>,
    app: Arc<App>,
    stopping: Arc<AtomicBool>,
    workers: usize,
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
    let http = tiny_http::Server::http(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
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
        writer: Arc::new(Writer::start(conn)),
        public_url,
    });
    let http = Arc::new(http);
    let stopping = Arc::new(AtomicBool::new(false));
    let workers = match args.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get() * 4)
            .unwrap_or(4)
            .max(4),
        n => n,
    };
    let (done_tx, done) = mpsc::channel();
    for i in 0..workers {
        let reader = db::open_reader(db_path)?;
        let (http, app, stopping, done_tx) =
            (http.clone(), app.clone(), stopping.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                work(&http, &app, &reader, &stopping);
                let _ = done_tx.send(());
            })
            .map_err(|e| e.to_string())?;
    }
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
        "instagift {} listening on http://{addr} (database {}, schema v{schema}, {workers} workers)",
        env!("CARGO_PKG_VERSION"),
        db_path.display()
    ));
    Ok(Running {
        addr,
        http,
        app,
        stopping,
        workers,
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
        for _ in 0..self.workers {
            self.http.unblock();
        }
        let deadline = Instant::now() + DRAIN;
        for _ in 0..self.workers {
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
    let _ = signal_rx.recv();
    crate::log::info("shutting down");
    running.shutdown();
    Ok(())
}

fn work(http: &tiny_http::Server, app: &App, reader: &rusqlite::Connection, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        match http.recv() {
            Ok(rq) => serve_one(app, reader, rq),
            Err(e) => {
                if !stopping.load(Ordering::SeqCst) {
                    crate::log::warn(&format!("accept failed: {e}"));
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
        match http.recv_timeout(QUIET) {
            Ok(Some(rq)) => serve_one(app, reader, rq),
            _ => break,
        }
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

/// Reads the body, refusing more than `MAX_BODY` bytes with 413.
fn read_body(rq: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "Payload Too Large",
            format!("Request bodies are limited to {MAX_BODY} bytes"),
        )
    };
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            ApiError::bad_request(
                "Invalid request",
                format!("Could not read the request body: {e}"),
            )
        })?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

fn send(rq: tiny_http::Request, r: Response, close: bool) -> std::io::Result<()> {
    let mut out = tiny_http::Response::from_data(r.body).with_status_code(r.status);
    let mut add = |k: &str, v: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            out.add_header(h);
        }
    };
    add("Content-Type", &r.content_type);
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
