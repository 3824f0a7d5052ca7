//! Mail over real SMTP: a Python aiosmtpd server on 127.0.0.1
//! (`tests/smtp_sink.py`; `.ci/run` installs aiosmtpd) receives what the
//! outbox worker sends.

mod common;

use common::{Server, TempDir};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Python that has aiosmtpd: the system's, or else a virtual environment
/// under the target directory that this installs it into (once).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let has = |py: &std::path::Path| {
                Command::new(py)
                    .args(["-c", "import aiosmtpd"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let system = PathBuf::from("python3");
            if has(&system) {
                return system;
            }
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smtp-venv");
            let py = venv.join("bin/python3");
            if !has(&py) {
                let ok = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(&py)
                        .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
                        .status()
                        .is_ok_and(|s| s.success());
                assert!(ok, "could not install aiosmtpd into {}", venv.display());
            }
            py
        })
        .clone()
}

/// The SMTP server, killed on drop.
struct Sink {
    child: Child,
    dir: PathBuf,
    _tmp: TempDir,
}

impl Sink {
    fn start(port: u16, extra: &[&str]) -> Sink {
        let tmp = TempDir::new();
        let dir = tmp.0.join("mail");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "SMTP sink did not start (is aiosmtpd installed?)"
        );
        Sink {
            child,
            dir,
            _tmp: tmp,
        }
    }

    /// Received messages, oldest first, without the address confirmations
    /// every sign-up sends (`confirmations` has those).
    fn messages(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|m| !m.contains("Subject: Confirm your email address"))
            .collect()
    }

    /// The address confirmations received, oldest first.
    fn confirmations(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|m| m.contains("Subject: Confirm your email address"))
            .collect()
    }

    /// Received messages, oldest first, with quoted-printable undone.
    fn all(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| decode_qp(&std::fs::read_to_string(p).unwrap()))
            .collect()
    }

    /// Times of the RCPT attempts, in seconds.
    /// The times of the delivery attempts to `to`.
    fn attempts_to(&self, to: &str) -> Vec<f64> {
        std::fs::read_to_string(self.dir.join("attempts.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(to))
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undoes quoted-printable soft breaks and escapes (enough for ASCII text).
fn decode_qp(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::new();
    let mut chars = joined.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '=' {
            let hex: String = chars.clone().take(2).collect();
            if hex.len() == 2
                && hex
                    .chars()
                    .all(|h| h.is_ascii_hexdigit() && !h.is_ascii_lowercase())
            {
                out.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                chars.next();
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn smtp_args(port: u16) -> Vec<String> {
    vec![
        "--smtp-url".into(),
        format!("smtp://127.0.0.1:{port}"),
        "--mail-from".into(),
        "Instagift Shop <shop@example.com>".into(),
        "--mail-poll-ms".into(),
        "100".into(),
        "--mail-retry-secs".into(),
        "1".into(),
        "--public-url".into(),
        "https://gifts.example.com".into(),
    ]
}

fn start(port: u16) -> Server {
    let args = smtp_args(port);
    Server::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or(msg);
    head.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// A certificate of `shop` for `owner`, gifted to bob@example.com.
fn gift(s: &Server, shop: &common::Shop, owner: &common::User, extra: Value) -> (Value, Value) {
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": owner.email}}),
    );
    let cert = r.first("certificates").clone();
    let mut g = json!({"sender_name": "Ann", "recipient_name": "Bob", "recipient_email": "bob@example.com",
                       "message": "Dinner is on me <b>tonight</b> & always"});
    for (k, v) in extra.as_object().unwrap() {
        g[k] = v.clone();
    }
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", cert["id"].as_str().unwrap()),
        &owner.headers(),
        json!({"gift": g}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    (cert, r.first("gifts").clone())
}

fn outbox(s: &Server, gift_id: &str) -> (String, i64, i64, i64, Option<String>) {
    s.sql()
        .query_row(
            "SELECT status, attempts, failure_count, next_attempt_at, last_error FROM outbox WHERE gift_id = ?1",
            [gift_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
}

#[test]
fn gift_reset_and_issue_emails_arrive() {
    let port = free_port();
    let sink = Sink::start(port, &[]);
    let s = start(port);
    let shop = common::shop(&s, "Tuscan Kitchen", true);
    let ann = s.user("ann@example.com");
    // Sign-up's confirmation went to Ann with the token she confirmed with.
    let confirm = wait_until("the confirmation email", 10, || {
        sink.confirmations().into_iter().next()
    });
    assert_eq!(header(&confirm, "To"), vec!["ann@example.com"]);
    assert!(confirm.contains("/v2/email_verifications"), "{confirm}");
    let (cert, g) = gift(&s, &shop, &ann, json!({}));
    let msg = wait_until("the gift email", 10, || sink.messages().into_iter().next());
    assert_eq!(header(&msg, "To"), vec!["bob@example.com"]);
    assert_eq!(
        header(&msg, "From"),
        vec!["\"Instagift Shop\" <shop@example.com>"]
    );
    assert_eq!(
        header(&msg, "Subject"),
        vec!["Ann sent you a $100 gift from Tuscan Kitchen"]
    );
    assert!(msg.contains(cert["claim_code"].as_str().unwrap()), "{msg}");
    assert!(
        msg.contains("Dinner is on me &lt;b&gt;tonight&lt;/b&gt; &amp; always"),
        "HTML part escaped: {msg}"
    );
    assert!(
        msg.contains("Dinner is on me <b>tonight</b> & always"),
        "text part verbatim: {msg}"
    );
    assert!(msg.contains("https://gifts.example.com"), "{msg}");
    let mid = header(&msg, "Message-ID");
    assert_eq!(mid.len(), 1);
    // The gift shows the real delivery figures.
    let gid = g["id"].as_str().unwrap();
    let shown = wait_until("the gift marked sent", 5, || {
        let r = s.get(&format!("/v2/gifts/{gid}"), &ann.headers());
        let g = r.first("gifts").clone();
        (g["attempts"] == 1).then_some(g)
    });
    assert_eq!(shown["failure_count"], 0);
    assert!(shown["last_sent_at"].is_string());
    assert_eq!(outbox(&s, gid).0, "sent");

    // A password reset.
    assert_eq!(
        s.post("/v2/passwords", &[], json!({"email": "ann@example.com"}))
            .status,
        201
    );
    let reset = wait_until("the reset email", 10, || sink.messages().get(1).cloned());
    assert_eq!(header(&reset, "To"), vec!["ann@example.com"]);
    assert_eq!(header(&reset, "Subject"), vec!["Reset your password"]);
    assert!(reset.contains("Your reset token"));

    // A certificate issued to an unregistered address.
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": "carol@example.com"}}),
    );
    let code = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = wait_until("the issued email", 10, || sink.messages().get(2).cloned());
    assert_eq!(header(&issued, "To"), vec!["carol@example.com"]);
    assert_eq!(
        header(&issued, "Subject"),
        vec!["Tuscan Kitchen sent you a $100 gift from Tuscan Kitchen"]
    );
    assert!(issued.contains(&code));
    // Nothing was sent twice: the worker sends due mail oldest first, so
    // once a later marker email has arrived, a repeat of any of the three
    // would have arrived before it.
    marker_arrives(&s, &sink, 3, "ann@example.com");
}

/// Queues one more email (a password reset for `email`, which must have
/// an account) and waits for it: it must be message number `sent + 1`,
/// with nothing in between.
fn marker_arrives(s: &Server, sink: &Sink, sent: usize, email: &str) {
    let r = s.post("/v2/passwords", &[], json!({"email": email}));
    assert_eq!(r.status, 201, "{}", r.text);
    let all = wait_until("the marker email", 10, || {
        Some(sink.messages()).filter(|all| all.len() > sent)
    });
    assert_eq!(
        header(&all[sent], "Subject"),
        vec!["Reset your password"],
        "{all:#?}"
    );
    assert_eq!(header(&all[sent], "To"), vec![email]);
    assert_eq!(all.len(), sent + 1, "{all:#?}");
}

#[test]
fn refusals_are_retried_with_growing_delays() {
    let port = free_port();
    let sink = Sink::start(port, &["--refuse", "3", "--refuse-to", "bob@example.com"]);
    let s = start(port);
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let (_, g) = gift(&s, &shop, &ann, json!({}));
    let gid = g["id"].as_str().unwrap().to_string();
    wait_until("delivery after three refusals", 20, || {
        sink.messages().into_iter().next()
    });
    let times = sink.attempts_to("bob@example.com");
    assert_eq!(times.len(), 4, "{times:?}");
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Backoff of 1 s doubled after each failure: about 1, 2 and 4 seconds.
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(*gap >= want - 0.05 && *gap < want + 1.5, "gaps {gaps:?}");
    }
    let shown = wait_until("figures", 5, || {
        let r = s.get(&format!("/v2/gifts/{gid}"), &ann.headers());
        let g = r.first("gifts").clone();
        (g["attempts"] == 4).then_some(g)
    });
    assert_eq!(shown["failure_count"], 3);
    let (status, _, failures, _, _) = outbox(&s, &gid);
    assert_eq!((status.as_str(), failures), ("sent", 3));
}

#[test]
fn a_server_that_is_down_counts_failures_then_delivers() {
    let port = free_port();
    let s = start(port);
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let (_, g) = gift(&s, &shop, &ann, json!({}));
    let gid = g["id"].as_str().unwrap().to_string();
    let (status, attempts, failures, next, error) = wait_until("two failures", 10, || {
        Some(outbox(&s, &gid)).filter(|o| o.2 >= 2)
    });
    assert_eq!(status, "queued");
    assert_eq!(attempts, failures);
    assert!(next > common_now(), "next attempt is in the future");
    assert!(
        error.unwrap_or_default().to_lowercase().contains("connect"),
        "last_error names the failure"
    );
    let r = s.get(&format!("/v2/gifts/{gid}"), &ann.headers());
    assert_eq!(r.first("gifts")["failure_count"], json!(failures));
    // The server comes up: the message goes out at its next attempt.
    let sink = Sink::start(port, &[]);
    wait_until("delivery once the server is up", 20, || {
        sink.messages().into_iter().next()
    });
    let (status, attempts, failures_after, _, _) = wait_until("sent", 5, || {
        Some(outbox(&s, &gid)).filter(|o| o.0 == "sent")
    });
    assert_eq!(status, "sent");
    assert_eq!(attempts, failures_after + 1);
}

#[test]
fn permanent_rejection_is_marked_failed_with_the_answer() {
    let port = free_port();
    let _sink = Sink::start(port, &["--reject"]);
    let s = start(port);
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let (_, g) = gift(&s, &shop, &ann, json!({}));
    let gid = g["id"].as_str().unwrap().to_string();
    let (status, attempts, failures, _, error) = wait_until("failed", 10, || {
        Some(outbox(&s, &gid)).filter(|o| o.0 == "failed")
    });
    assert_eq!((status.as_str(), attempts, failures), ("failed", 1, 1));
    assert!(
        error.unwrap().contains("550"),
        "the server's answer is kept"
    );
}

#[test]
fn mail_is_given_up_after_the_maximum_attempts() {
    let port = free_port();
    let sink = Sink::start(port, &["--refuse", "100", "--refuse-to", "bob@example.com"]);
    let mut args = smtp_args(port);
    args.extend(["--mail-max-attempts".to_string(), "2".to_string()]);
    let s = Server::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let (_, g) = gift(&s, &shop, &ann, json!({}));
    let gid = g["id"].as_str().unwrap().to_string();
    let (status, attempts, failures, _, error) = wait_until("giving up", 10, || {
        Some(outbox(&s, &gid)).filter(|o| o.0 == "failed")
    });
    assert_eq!((status.as_str(), attempts, failures), ("failed", 2, 2));
    assert!(error.unwrap().contains("451"), "the last answer is kept");
    // Given up means no third try: a later email to someone else goes
    // out, and bob's address saw exactly two attempts.
    marker_arrives(&s, &sink, 0, "ann@example.com");
    assert_eq!(sink.attempts_to("bob@example.com").len(), 2);
}

#[test]
fn mail_queued_before_a_restart_is_delivered_after_it() {
    let port = free_port();
    let s = Server::start();
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let (cert, g) = gift(&s, &shop, &ann, json!({}));
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(outbox(&s, &gid).0, "queued");
    let sink = Sink::start(port, &[]);
    let args = smtp_args(port);
    let s = s.restart(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let msg = wait_until("delivery after the restart", 10, || {
        sink.messages().into_iter().next()
    });
    assert!(msg.contains(cert["claim_code"].as_str().unwrap()));
    wait_until("sent", 5, || {
        Some(outbox(&s, &gid)).filter(|o| o.0 == "sent")
    });
    marker_arrives(&s, &sink, 1, "ann@example.com");
}

#[test]
fn a_future_send_date_is_not_sent_early() {
    let port = free_port();
    let sink = Sink::start(port, &[]);
    let s = start(port);
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let tomorrow = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    let (_, g) = gift(&s, &shop, &ann, json!({"send_date": tomorrow.to_string()}));
    let gid = g["id"].as_str().unwrap().to_string();
    // The worker sends due mail oldest first: once a later email has
    // arrived, the dated one would have gone before it if it were due.
    marker_arrives(&s, &sink, 0, "ann@example.com");
    let (status, attempts, _, next, _) = outbox(&s, &gid);
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    let due = tomorrow
        .at(3, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    assert_eq!(
        next, due,
        "due at 03:00 of the send date in the merchant's zone"
    );
    // A gift sent now goes out while the dated one keeps waiting.
    gift(&s, &shop, &ann, json!({}));
    wait_until("the undated gift", 10, || sink.messages().get(1).cloned());
    assert_eq!(outbox(&s, &gid).0, "queued");
}

#[test]
fn names_cannot_inject_headers() {
    let port = free_port();
    let sink = Sink::start(port, &[]);
    let s = start(port);
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": ann.email}}),
    );
    let id = r.first("certificates")["id"].as_str().unwrap().to_string();
    for field in ["sender_name", "recipient_name"] {
        let mut g = json!({"sender_name": "Ann", "recipient_name": "Bob", "recipient_email": "bob@example.com"});
        g[field] = json!("Ann\r\nBcc: evil@example.com");
        let r = s.post(
            &format!("/v2/certificates/{id}/gifts"),
            &ann.headers(),
            json!({"gift": g}),
        );
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert_eq!(r.pointers(), vec![format!("/gift/{field}")]);
    }
    // Defence in depth: a merchant name with CR/LF (written straight into
    // the database) reaches the subject without adding a header.
    s.sql()
        .execute(
            "UPDATE merchants SET name = ?1 WHERE id = ?2",
            ("Shop\r\nBcc: evil@example.com", &shop.merchant.id),
        )
        .unwrap();
    s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": "dan@example.com"}}),
    );
    let msg = wait_until("the issued email", 10, || {
        sink.messages().into_iter().next()
    });
    assert!(header(&msg, "Bcc").is_empty(), "{msg}");
    assert_eq!(header(&msg, "Subject").len(), 1);
}

fn common_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
