//! Mail delivery: a background worker takes due messages from the outbox
//! and sends them over SMTP, with exponential backoff on failure.
//!
//! Delivery is at least once: a row is marked `sent` only after the SMTP
//! server accepted the message, so a crash in between sends it again after
//! the restart. Every message carries a `Message-ID` derived from its outbox
//! id, stable across retries, so receivers can drop the duplicate.

use crate::db::Writer;
use crate::domain::time;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest wait between two attempts of one message.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

/// How mail goes out.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://[user:pass@]host[:port][?tls=required|none]` or `smtps://…`.
    pub smtp_url: String,
    /// The `From` address.
    pub from: String,
    /// Delay after the first failure; doubled after each further one.
    pub retry_base: Duration,
    /// Attempts before a message is given up as failed.
    pub max_attempts: i64,
    /// How often the worker looks for due messages.
    pub poll: Duration,
}

/// A parsed SMTP URL.
#[derive(Debug, PartialEq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    /// `wrapper` (smtps), `required` or `opportunistic` STARTTLS, or `none`.
    pub tls: &'static str,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Parses `smtp://user:pass@host:port?tls=…` and `smtps://…`.
pub fn parse_url(url: &str) -> Result<SmtpTarget, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the SMTP URL needs a scheme: smtp:// or smtps://")?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (user, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
        Some((u, p)) => (
            Some(crate::web::request::percent_decode(u)),
            Some(crate::web::request::percent_decode(p)),
        ),
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("bad SMTP port {p:?}"))?,
            ),
        ),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err("the SMTP URL has no host".into());
    }
    let tls_param = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("tls="));
    let (tls, default_port) = match (scheme, tls_param) {
        ("smtps", _) => ("wrapper", 465),
        ("smtp", None | Some("opportunistic")) => ("opportunistic", 587),
        ("smtp", Some("required")) => ("required", 587),
        ("smtp", Some("none")) => ("none", 25),
        ("smtp", Some(other)) => {
            return Err(format!(
                "unknown tls={other} (use required, opportunistic or none)"
            ))
        }
        (other, _) => {
            return Err(format!(
                "unknown SMTP scheme {other}:// (use smtp:// or smtps://)"
            ))
        }
    };
    Ok(SmtpTarget {
        host: host.to_string(),
        port: port.unwrap_or(default_port),
        tls,
        user,
        password,
    })
}

fn transport(t: &SmtpTarget) -> Result<SmtpTransport, String> {
    let params = || TlsParameters::new(t.host.clone()).map_err(|e| format!("TLS setup: {e}"));
    let tls = match t.tls {
        "wrapper" => Tls::Wrapper(params()?),
        "required" => Tls::Required(params()?),
        "opportunistic" => Tls::Opportunistic(params()?),
        _ => Tls::None,
    };
    let mut b = SmtpTransport::builder_dangerous(t.host.clone())
        .port(t.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    if let (Some(u), Some(p)) = (&t.user, &t.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(b.build())
}

/// One outbox row due for delivery.
struct Outgoing {
    id: String,
    to: String,
    subject: String,
    text: String,
    html: Option<String>,
    failure_count: i64,
}

/// Header values may not carry line breaks or other control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn build(m: &Outgoing, from: &Mailbox) -> Result<Message, String> {
    let to: Mailbox =
        m.to.parse()
            .map_err(|e| format!("bad recipient {:?}: {e}", m.to))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&m.subject))
        .message_id(Some(format!("<{}@instagift>", m.id)));
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(m.text.clone());
    let result = match &m.html {
        Some(html) => builder.multipart(
            MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
        ),
        None => builder.singlepart(text),
    };
    result.map_err(|e| format!("cannot build message: {e}"))
}

fn due(db: &Connection, now: i64) -> rusqlite::Result<Vec<Outgoing>> {
    db.prepare_cached(
        "SELECT id, to_addr, subject, body_text, body_html, failure_count FROM outbox
         WHERE status = 'queued' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, rowid LIMIT 20",
    )?
    .query_map([now], |r| {
        Ok(Outgoing {
            id: r.get(0)?,
            to: r.get(1)?,
            subject: r.get(2)?,
            text: r.get(3)?,
            html: r.get(4)?,
            failure_count: r.get(5)?,
        })
    })?
    .collect()
}

/// The delay before the next attempt after `failures` failures.
pub fn backoff(base: Duration, failures: i64) -> i64 {
    let base = base.as_secs().max(1) as i64;
    let exp = (failures - 1).clamp(0, 30) as u32;
    base.saturating_mul(1i64 << exp).min(MAX_BACKOFF_SECS)
}

/// Starts the delivery worker; it stops when `stopping` is set.
pub fn start(
    db_path: &std::path::Path,
    writer: Arc<Writer>,
    cfg: MailConfig,
    stopping: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let target = parse_url(&cfg.smtp_url)?;
    let smtp = transport(&target)?;
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| format!("bad --mail-from {:?}: {e}", cfg.from))?;
    let reader = crate::db::open_reader(db_path)?;
    crate::log::info(&format!(
        "mail: delivering through {}:{} (tls {})",
        target.host, target.port, target.tls
    ));
    std::thread::Builder::new()
        .name("mail".into())
        .spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match due(&reader, time::now()) {
                    Ok(batch) => {
                        for m in batch {
                            if stopping.load(Ordering::SeqCst) {
                                return;
                            }
                            deliver(&smtp, &from, &writer, &cfg, m);
                        }
                    }
                    Err(e) => crate::log::error(&format!("mail: cannot read the outbox: {e}")),
                }
                // Sleep in small steps so shutdown is prompt.
                let mut slept = Duration::ZERO;
                while slept < cfg.poll && !stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    slept += Duration::from_millis(50);
                }
            }
        })
        .map_err(|e| e.to_string())
}

fn deliver(smtp: &SmtpTransport, from: &Mailbox, writer: &Writer, cfg: &MailConfig, m: Outgoing) {
    let outcome = build(&m, from).and_then(|msg| {
        smtp.send(&msg).map(|_| ()).map_err(|e| {
            let permanent = e.is_permanent();
            format!("{}{e}", if permanent { "permanent: " } else { "" })
        })
    });
    let now = time::now();
    let id = m.id.clone();
    let result = match outcome {
        Ok(()) => {
            crate::log::info(&format!("mail: sent {id}"));
            writer.run(move |db| {
                db.execute(
                    "UPDATE outbox SET status = 'sent', attempts = attempts + 1, last_sent_at = ?2, last_error = NULL
                     WHERE id = ?1 AND status = 'queued'",
                    (&id, now),
                )?;
                Ok(())
            })
        }
        Err(why) => {
            let failures = m.failure_count + 1;
            let give_up = why.starts_with("permanent")
                || why.starts_with("bad recipient")
                || failures >= cfg.max_attempts;
            // Times are whole seconds: one more keeps the wait from being
            // shorter than the backoff.
            let next = now + backoff(cfg.retry_base, failures) + 1;
            crate::log::warn(&format!(
                "mail: {id} failed ({why}); {}",
                if give_up {
                    "giving up".to_string()
                } else {
                    format!("retrying in {}s", next - now)
                }
            ));
            writer.run(move |db| {
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, failure_count = failure_count + 1, last_error = ?2,
                        next_attempt_at = ?3, status = CASE WHEN ?4 THEN 'failed' ELSE status END
                     WHERE id = ?1 AND status = 'queued'",
                    (&id, &why, next, give_up),
                )?;
                Ok(())
            })
        }
    };
    if let Err(e) = result {
        crate::log::error(&format!(
            "mail: cannot record the outcome of {}: status {}",
            m.id, e.status
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smtp_urls() {
        let t = parse_url("smtps://me%40x.com:p%3Ass@mail.example.com").unwrap();
        assert_eq!(t.host, "mail.example.com");
        assert_eq!((t.port, t.tls), (465, "wrapper"));
        assert_eq!(t.user.as_deref(), Some("me@x.com"));
        assert_eq!(t.password.as_deref(), Some("p:ss"));
        let t = parse_url("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls, t.user),
            ("127.0.0.1", 2525, "none", None)
        );
        assert_eq!(parse_url("smtp://relay").unwrap().tls, "opportunistic");
        assert_eq!(parse_url("smtp://relay?tls=required").unwrap().port, 587);
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("smtp://:25").is_err());
        assert!(parse_url("smtp://x:99999").is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), 30);
        assert_eq!(backoff(base, 2), 60);
        assert_eq!(backoff(base, 3), 120);
        assert_eq!(backoff(base, 40), MAX_BACKOFF_SECS);
    }

    #[test]
    fn headers_cannot_be_injected() {
        let m = Outgoing {
            id: "abc".into(),
            to: "bob@example.com".into(),
            subject: "Hi\r\nBcc: evil@example.com".into(),
            text: "body".into(),
            html: None,
            failure_count: 0,
        };
        let msg = build(&m, &"Shop <shop@example.com>".parse().unwrap()).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            !raw.lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{raw}"
        );
        assert!(raw.contains("Message-ID: <abc@instagift>"), "{raw}");
    }
}
