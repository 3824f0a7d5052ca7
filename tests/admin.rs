//! The admin page over HTTP (see docs/reference.md, Admin API): the operator
//! password and login (right, wrong, throttled), the session cookie's flags,
//! the CSRF header, 401 without a session, and every screen's calls with exact
//! figures: catalog, issue, point of sale, certificate detail, lists, CSV,
//! backup.

mod common;

use common::{bin, id, Resp, Server, TempDir};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

type Headers = Vec<(String, String)>;

const PASSWORD: &str = "correct operator password";

/// Runs `instagift admin set-password` against `db`, typing `input` on stdin.
fn set_password(db: &Path, input: &str) -> Output {
    let mut child = Command::new(bin())
        .arg("--db")
        .arg(db)
        .args(["admin", "set-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run set-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A server on a fresh database whose operator password is `PASSWORD`.
fn server_with(args: &[&str]) -> Server {
    let dir = TempDir::new();
    let db = dir.0.join("test.db");
    let out = set_password(&db, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Server::start_on(dir, db, args, &[])
}

fn server() -> Server {
    server_with(&[])
}

fn csrf() -> (String, String) {
    ("X-Requested-With".into(), "admin-test".into())
}

fn login_as(s: &Server, password: &str) -> Resp {
    s.post(
        "/admin/api/session",
        &[csrf()],
        json!({ "password": password }),
    )
}

/// The `name=value` part of the response's `Set-Cookie`.
fn cookie_of(r: &Resp) -> String {
    let set = r.header("set-cookie").expect("Set-Cookie");
    set.split(';').next().unwrap().trim().to_string()
}

/// A logged-in operator.
struct Admin<'a> {
    s: &'a Server,
    cookie: String,
}

impl<'a> Admin<'a> {
    fn login(s: &'a Server) -> Admin<'a> {
        let r = login_as(s, PASSWORD);
        assert_eq!(r.status, 201, "{}", r.text);
        Admin {
            s,
            cookie: cookie_of(&r),
        }
    }

    fn headers(&self) -> Headers {
        vec![("Cookie".into(), self.cookie.clone()), csrf()]
    }

    fn get(&self, path: &str) -> Resp {
        self.s.get(&format!("/admin/api{path}"), &self.headers())
    }

    fn post(&self, path: &str, body: Value) -> Resp {
        self.s
            .post(&format!("/admin/api{path}"), &self.headers(), body)
    }

    fn put(&self, path: &str, body: Value) -> Resp {
        self.s
            .put(&format!("/admin/api{path}"), &self.headers(), body)
    }

    fn delete(&self, path: &str) -> Resp {
        self.s.delete(&format!("/admin/api{path}"), &self.headers())
    }

    /// Asserts the status and returns the answer.
    fn ok(&self, r: Resp, status: u16) -> Resp {
        assert_eq!(r.status, status, "{}", r.text);
        r
    }
}

/// The `total_count` of a 200 list answer.
fn total(r: Resp) -> i64 {
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["meta"]["total_count"].as_i64().unwrap()
}

/// A shop made through the admin API: a merchant in New York with one
/// location, a splittable product, and a $100 option sold for $80.
struct Shop {
    merchant_id: String,
    location_id: String,
    product_id: String,
    option_id: String,
}

fn shop(a: &Admin, name: &str) -> Shop {
    shop_in(a, name, "America/New_York")
}

/// Like `shop`, for a merchant in time zone `tz`.
fn shop_in(a: &Admin, name: &str, tz: &str) -> Shop {
    let r = a.ok(
        a.post(
            "/merchants",
            json!({"merchant": {"name": name, "time_zone": tz}}),
        ),
        201,
    );
    let merchant_id = id(r.first("merchants"));
    let r = a.ok(
        a.post(
            &format!("/merchants/{merchant_id}/locations"),
            json!({"location": {"name": "Downtown", "address1": "1 Main St", "city": "Boston"}}),
        ),
        201,
    );
    let location_id = id(r.first("locations"));
    let r = a.ok(
        a.post(
            &format!("/merchants/{merchant_id}/products"),
            json!({"product": {"type": "GiftCertificate", "tagline": "Dinner for two",
                               "redemption_location_ids": [location_id]}}),
        ),
        201,
    );
    let product_id = id(r.first("products"));
    let r = a.ok(
        a.post(
            &format!("/products/{product_id}/product_options"),
            json!({"product_option": {"face_value_cents": 10000, "price_cents": 8000}}),
        ),
        201,
    );
    Shop {
        merchant_id,
        location_id,
        product_id,
        option_id: id(r.first("product_options")),
    }
}

fn issue(a: &Admin, option_id: &str, extra: Value) -> Vec<Value> {
    let mut cert = json!({ "product_option_id": option_id });
    for (k, v) in extra.as_object().unwrap() {
        cert[k] = v.clone();
    }
    let r = a.ok(a.post("/certificates", json!({ "certificate": cert })), 201);
    r.body["certificates"].as_array().unwrap().clone()
}

/// The dashboard row of a merchant.
fn summary(a: &Admin, merchant_id: &str) -> Value {
    let r = a.ok(a.get("/dashboard"), 200);
    r.body["merchant_summaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["merchant_id"] == merchant_id)
        .cloned()
        .expect("merchant on the dashboard")
}

#[test]
fn login_right_wrong_and_cookie_flags() {
    let s = server();
    let r = s.get("/admin/api/session", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.first("sessions")["authenticated"], false);

    let r = login_as(&s, "not the password");
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "401");
    assert_eq!(r.error_details(), "Wrong password");
    assert!(r.header("set-cookie").is_none());

    let r = login_as(&s, "");
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/password"]);

    // Logging in is a change too: it needs the header (login CSRF).
    let r = s.post("/admin/api/session", &[], json!({ "password": PASSWORD }));
    assert_eq!(r.status, 403, "{}", r.text);

    let r = login_as(&s, PASSWORD);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("sessions")["authenticated"], true);
    let set = r.header("set-cookie").unwrap().to_string();
    let flags: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(flags[0].starts_with("instagift_admin="), "{set}");
    assert!(flags[0].len() > "instagift_admin=".len() + 40, "{set}");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
    ] {
        assert!(flags.contains(&flag), "{flag} missing: {set}");
    }
    assert!(!flags.contains(&"Secure"), "plain http: no Secure: {set}");
    let cookie = cookie_of(&r);
    // The token is stored only as a digest.
    let stored: String = s
        .sql()
        .query_row("SELECT digest FROM admin_sessions", [], |r| r.get(0))
        .unwrap();
    assert!(!cookie.contains(&stored));
    assert_eq!(stored.len(), 64);

    let with_cookie = vec![("Cookie".to_string(), format!("other=1; {cookie}"))];
    let r = s.get("/admin/api/session", &with_cookie);
    assert_eq!(r.first("sessions")["authenticated"], true);
    assert_eq!(s.get("/admin/api/dashboard", &with_cookie).status, 200);

    // Log out: the cookie is cleared and the session is gone.
    let mut h = with_cookie.clone();
    h.push(csrf());
    let r = s.delete("/admin/api/session", &h);
    assert_eq!(r.status, 204);
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with("instagift_admin=;"), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");
    assert_eq!(s.get("/admin/api/dashboard", &with_cookie).status, 401);
    let r = s.get("/admin/api/session", &with_cookie);
    assert_eq!(r.first("sessions")["authenticated"], false);
}

#[test]
fn cookie_is_secure_behind_https() {
    let s = server_with(&["--public-url", "https://gifts.example.com"]);
    let r = login_as(&s, PASSWORD);
    assert_eq!(r.status, 201);
    let set = r.header("set-cookie").unwrap();
    assert!(set.split(';').any(|f| f.trim() == "Secure"), "{set}");
}

#[test]
fn failed_logins_are_throttled_per_ip() {
    let s = server();
    for _ in 0..5 {
        assert_eq!(login_as(&s, "guess").status, 401);
    }
    // Blocked now: even the right password waits.
    let r = login_as(&s, PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "429");
    let wait: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    assert_eq!(login_as(&s, "guess").status, 429);
    // The block grows with each failure after it: the 6th failure in a row
    // (once the wait is over) blocks for 60 s.
    let (failures, blocked): (i64, i64) = s
        .sql()
        .query_row(
            "SELECT failures, blocked_until - last_failure_at FROM admin_login_failures
             WHERE ip = '127.0.0.1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((failures, blocked), (5, 30));
    s.sql()
        .execute(
            "UPDATE admin_login_failures SET blocked_until = 0, last_failure_at = last_failure_at - 40",
            [],
        )
        .unwrap();
    assert_eq!(login_as(&s, "guess").status, 401);
    let r = login_as(&s, PASSWORD);
    assert_eq!(r.status, 429);
    let wait: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((31..=60).contains(&wait), "Retry-After {wait}");

    // Setting the password from the server's own shell lifts the block.
    let out = set_password(&s.db, "a brand new password\n");
    assert!(out.status.success());
    assert_eq!(login_as(&s, PASSWORD).status, 401);
    assert_eq!(login_as(&s, "a brand new password").status, 201);
}

fn login_from(s: &Server, ip: &str, password: &str) -> common::RawAnswer {
    common::request_from(
        ip,
        &s.base,
        "POST",
        "/admin/api/session",
        &[("X-Requested-With", "admin-test")],
        &json!({ "password": password }).to_string(),
    )
}

#[test]
fn parallel_guesses_cannot_overrun_the_ip_budget() {
    let s = server();
    // 40 wrong passwords at once from one IP: each is counted before its
    // Argon2 check, so exactly the 5 free failures are checked (before: 35
    // of 40 were checked, all passing the block check before any failure
    // was recorded).
    let gate = std::sync::Barrier::new(40);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (gate, s) = (&gate, &s);
                scope.spawn(move || {
                    gate.wait();
                    login_from(s, "127.0.0.1", &format!("guess {i}")).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let n = |code| statuses.iter().filter(|&&c| c == code).count();
    assert_eq!((n(401), n(429)), (5, 35), "{statuses:?}");
}

#[test]
fn failed_logins_from_all_ips_share_a_budget() {
    let s = server();
    // Four failures from each of five addresses: no address is blocked
    // (five in a row block one), but twenty failures from anywhere block
    // every address (before: a sixth address got five more guesses, and so
    // on without end).
    for host in 2..7 {
        for _ in 0..4 {
            let r = login_from(&s, &format!("127.0.0.{host}"), "guess");
            assert_eq!(r.status, 401, "127.0.0.{host}: {}", r.body);
        }
    }
    let r = login_from(&s, "127.0.0.7", "guess");
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: i64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    // The headers describe the budget that refused.
    assert_eq!(r.header("RateLimit-Limit"), Some("20"), "{}", r.head);
    assert_eq!(r.header("RateLimit-Remaining"), Some("0"));
    assert_eq!(r.header("RateLimit-Reset"), Some(wait.to_string().as_str()));
    // The right password waits too, from any address.
    assert_eq!(login_as(&s, PASSWORD).status, 429);
    // The operator's shell lifts the block.
    assert!(set_password(&s.db, &format!("{PASSWORD}\n"))
        .status
        .success());
    assert_eq!(login_as(&s, PASSWORD).status, 201);
}

#[test]
fn a_right_password_is_not_counted_against_all_ips() {
    let s = server();
    // Nineteen failures from anywhere, then logins with the right password:
    // each is counted before the check and taken back after it, so the
    // shared budget still has its twentieth failure.
    for host in 2..21 {
        assert_eq!(
            login_from(&s, &format!("127.0.0.{host}"), "guess").status,
            401
        );
    }
    for _ in 0..3 {
        assert_eq!(login_as(&s, PASSWORD).status, 201);
    }
    assert_eq!(login_from(&s, "127.0.0.30", "guess").status, 401);
    assert_eq!(login_from(&s, "127.0.0.31", "guess").status, 429);
}

#[test]
fn set_password_from_stdin_logs_everyone_out() {
    let s = server();
    let a = Admin::login(&s);
    assert_eq!(a.get("/dashboard").status, 200);

    let out = set_password(&s.db, "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
    let out = set_password(&s.db, "");
    assert!(!out.status.success());

    // Trailing spaces belong to the password; only the line end is removed.
    let out = set_password(&s.db, "new password with space \r\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("password set"));
    assert_eq!(a.get("/dashboard").status, 401, "old sessions end");
    assert_eq!(login_as(&s, PASSWORD).status, 401);
    assert_eq!(login_as(&s, "new password with space").status, 401);
    assert_eq!(login_as(&s, "new password with space ").status, 201);
}

#[test]
fn first_start_prints_a_generated_password_once() {
    let dir = TempDir::new();
    let db = dir.0.join("first.db");
    let start = || {
        Command::new(bin())
            .arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Reads stdout lines until none comes for a moment.
    let lines_of = |child: &mut std::process::Child| {
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut lines = vec![rx.recv_timeout(Duration::from_secs(20)).unwrap()];
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(700)) {
            lines.push(line);
        }
        lines
    };
    let mut child = start();
    let lines = lines_of(&mut child);
    assert!(
        lines[0].starts_with("instagift listening on http://"),
        "{lines:?}"
    );
    let admin_line = lines
        .iter()
        .find(|l| l.starts_with("admin page:"))
        .expect("password printed");
    let generated = admin_line
        .split_whitespace()
        .skip_while(|w| *w != "password")
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(generated.len(), 23, "{admin_line}");
    let _ = child.kill();
    let _ = child.wait();

    let mut child = start();
    let lines = lines_of(&mut child);
    assert!(
        !lines.iter().any(|l| l.contains("password")),
        "printed only on the first start: {lines:?}"
    );
    let _ = child.kill();
    let _ = child.wait();

    // The printed password is the operator's.
    let s = Server::start_on(dir, db, &[], &[]);
    assert_eq!(login_as(&s, &generated).status, 201);
}

#[test]
fn without_a_session_every_call_is_401() {
    let s = server();
    let bogus = vec![
        ("Cookie".to_string(), "instagift_admin=forged".to_string()),
        csrf(),
    ];
    for path in [
        "/dashboard",
        "/merchants",
        "/certificates",
        "/claim_codes/AAAA-AAAA-AAAAAAAA",
        "/redemptions",
        "/users",
        "/gifts",
        "/support_tickets",
        "/outbox",
        "/exports/certificates.csv",
        "/exports/redemptions.csv",
        "/backup",
    ] {
        for headers in [vec![csrf()], bogus.clone()] {
            let r = s.get(&format!("/admin/api{path}"), &headers);
            assert_eq!(r.status, 401, "{path}: {}", r.text);
            assert_eq!(r.body["errors"][0]["code"], "401");
        }
    }
    let r = s.post(
        "/admin/api/merchants",
        &[csrf()],
        json!({"merchant": {"name": "X"}}),
    );
    assert_eq!(r.status, 401);
    let count: i64 = s
        .sql()
        .query_row("SELECT COUNT(*) FROM merchants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn changes_need_the_x_requested_with_header() {
    let s = server();
    let a = Admin::login(&s);
    let only_cookie = vec![("Cookie".to_string(), a.cookie.clone())];
    let body = json!({"merchant": {"name": "Forged"}});
    let r = s.post("/admin/api/merchants", &only_cookie, body.clone());
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "403");
    let mut blank = only_cookie.clone();
    blank.push(("X-Requested-With".into(), " ".into()));
    assert_eq!(s.post("/admin/api/merchants", &blank, body).status, 403);
    assert_eq!(
        s.delete("/admin/api/session", &only_cookie).status,
        403,
        "logout needs it too"
    );
    // Reads do not need it.
    let r = s.get("/admin/api/merchants", &only_cookie);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total_count"], 0);
}

#[test]
fn page_and_assets_are_served_with_security_headers() {
    let s = server();
    for path in ["/admin", "/admin/", "/admin/index.html"] {
        let r = s.get(path, &[("Accept".into(), "text/html".into())]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let csp = r.header("content-security-policy").unwrap();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "img-src 'self' data:",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{part} missing: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        // No inline script and no inline handlers: the CSP would block them.
        assert!(r
            .text
            .contains(r#"<script src="/admin/app.js" defer></script>"#));
        assert_eq!(r.text.matches("<script").count(), 1);
        assert!(!r.text.contains(" onclick="));
    }
    let r = s.get("/admin/app.js", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        !r.text.contains("innerHTML"),
        "the page builds DOM from text"
    );
    assert!(!r.text.contains("eval("));
    let r = s.get("/admin/app.css", &[]);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(r.text.contains("@media print"));
    assert_eq!(s.get("/admin/favicon.svg", &[]).status, 200);

    for missing in [
        "/admin/nope.js",
        "/admin/..%2FCargo.toml",
        "/admin/a/b",
        "/admin/api/nope",
    ] {
        let r = s.get(missing, &[]);
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.body["errors"][0]["code"], "404");
    }
    let r = s.post("/admin", &[csrf()], json!({}));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let a = Admin::login(&s);
    let r = a.put("/dashboard", json!({}));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn merchants_keys_and_catalog() {
    let s = server();
    let a = Admin::login(&s);

    let r = a.post(
        "/merchants",
        json!({"merchant": {"time_zone": "Mars/Base"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/merchant/name", "/merchant/time_zone"]);
    let shop = shop(&a, "Tuscan Kitchen");
    a.ok(
        a.post("/merchants", json!({"merchant": {"name": "Bistro Blue"}})),
        201,
    );

    // Lists: by name, filtered, paginated.
    let r = a.ok(a.get("/merchants"), 200);
    let names: Vec<&str> = r.body["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Bistro Blue", "Tuscan Kitchen"]);
    let r = a.ok(a.get("/merchants?q=tusc&per_page=1"), 200);
    assert_eq!(r.body["meta"]["total_count"], 1);
    assert_eq!(
        r.body["meta"]["links"]["first"],
        "?page=1&per_page=1&q=tusc"
    );
    assert_eq!(a.get("/merchants?per_page=0").status, 400);

    // Edit: the fields given replace, the rest stay.
    let r = a.ok(
        a.put(
            &format!("/merchants/{}", shop.merchant_id),
            json!({"merchant": {"url": "https://tuscan.example"}}),
        ),
        200,
    );
    let m = r.first("merchants");
    assert_eq!(m["url"], "https://tuscan.example");
    assert_eq!(m["name"], "Tuscan Kitchen");
    assert_eq!(m["time_zone"], "America/New_York");
    assert_eq!(m["links"]["locations"], json!([shop.location_id]));
    assert_eq!(a.get("/merchants/nope").status, 404);

    // API keys: the secret once, working against the merchant API; revoke.
    let r = a.ok(
        a.post(&format!("/merchants/{}/keys", shop.merchant_id), json!({})),
        201,
    );
    let k = r.first("merchant_keys").clone();
    let key = k["key"].as_str().unwrap().to_string();
    let secret = k["secret"].as_str().unwrap().to_string();
    let merchant = vec![
        ("X-Merchant-Key".to_string(), key.clone()),
        ("X-Merchant-Secret".to_string(), secret.clone()),
    ];
    assert_eq!(s.get("/v2/certificates", &merchant).status, 200);
    let r = a.ok(a.get(&format!("/merchants/{}/keys", shop.merchant_id)), 200);
    assert_eq!(r.body["merchant_keys"].as_array().unwrap().len(), 1);
    assert_eq!(r.first("merchant_keys")["key"], key.as_str());
    assert!(!r.text.contains(&secret), "the secret is shown once only");
    assert!(r.first("merchant_keys")["revoked_at"].is_null());
    // Another merchant's path cannot revoke it.
    let other = a.ok(a.get("/merchants?q=bistro"), 200);
    let other_id = id(other.first("merchants"));
    assert_eq!(
        a.delete(&format!("/merchants/{other_id}/keys/{key}"))
            .status,
        404
    );
    assert_eq!(s.get("/v2/certificates", &merchant).status, 200);
    let r = a.ok(
        a.delete(&format!("/merchants/{}/keys/{key}", shop.merchant_id)),
        200,
    );
    assert!(r.first("merchant_keys")["revoked_at"].is_string());
    assert_eq!(s.get("/v2/certificates", &merchant).status, 401);

    // Locations: required fields, edit.
    let r = a.post(
        &format!("/merchants/{}/locations", shop.merchant_id),
        json!({"location": {"name": "No address"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/location/address1", "/location/city"]);
    let r = a.ok(
        a.put(
            &format!("/locations/{}", shop.location_id),
            json!({"location": {"phone": "617-555-0100"}}),
        ),
        200,
    );
    assert_eq!(r.first("locations")["phone"], "617-555-0100");
    assert_eq!(r.first("locations")["city"], "Boston");
    let r = a.ok(
        a.get(&format!("/merchants/{}/locations", shop.merchant_id)),
        200,
    );
    assert_eq!(r.body["meta"]["total_count"], 1);

    // Products (with their options embedded) and options.
    let r = a.ok(
        a.put(
            &format!("/products/{}", shop.product_id),
            json!({"product": {"headline": "Our best table", "can_split_value": false}}),
        ),
        200,
    );
    let p = r.first("products");
    assert_eq!(p["headline"], "Our best table");
    assert_eq!(p["can_split_value"], false);
    assert_eq!(
        p["links"]["redemption_locations"],
        json!([shop.location_id])
    );
    let r = a.post(
        &format!("/products/{}/product_options", shop.product_id),
        json!({"product_option": {"face_value_cents": 1000, "price_cents": 2000}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/product_option/price_cents"]);
    let r = a.ok(
        a.put(
            &format!("/product_options/{}", shop.option_id),
            json!({"product_option": {"count": 5, "tagline": "For two"}}),
        ),
        200,
    );
    let o = r.first("product_options");
    assert_eq!(o["count"], 5);
    assert_eq!(o["face_value_cents"], 10000);
    assert_eq!(o["price_cents"], 8000);
    let r = a.ok(
        a.get(&format!("/merchants/{}/products", shop.merchant_id)),
        200,
    );
    let options = &r.first("products")["product_options"];
    assert_eq!(options.as_array().unwrap().len(), 1);
    assert_eq!(options[0]["tagline"], "For two");
    assert_eq!(a.put("/products/nope", json!({"product": {}})).status, 404);
    assert_eq!(
        a.put("/locations/nope", json!({"location": {}})).status,
        404
    );
}

#[test]
fn issue_and_redeem_at_the_point_of_sale_with_exact_figures() {
    let s = server();
    let a = Admin::login(&s);
    let shop = shop(&a, "Tuscan Kitchen");
    let before = summary(&a, &shop.merchant_id);
    assert_eq!(before["open_face_value_cents"], 0);
    assert_eq!(before["currency"], "USD");

    let issued = issue(&a, &shop.option_id, json!({}));
    assert_eq!(issued.len(), 1);
    let cert = &issued[0];
    assert_eq!(cert["status"], "pending");
    assert_eq!(cert["face_value_cents"], 10000);
    assert_eq!(cert["price_cents"], 8000);
    let code = cert["claim_code"].as_str().unwrap().to_string();

    let row = summary(&a, &shop.merchant_id);
    assert_eq!(row["open_count"], 1);
    assert_eq!(row["open_face_value_cents"], 10000);
    assert_eq!(row["open_paid_value_cents"], 8000);
    assert_eq!(row["today"]["issued_cents"], 10000);
    assert_eq!(row["today"]["issued_count"], 1);
    assert_eq!(row["this_month"]["issued_cents"], 10000);
    assert_eq!(row["today"]["redeemed_cents"], 0);

    // Look the code up as typed at a till: lower case, no dashes.
    let typed = code.replace('-', "").to_lowercase();
    let r = a.ok(a.get(&format!("/claim_codes/{typed}")), 200);
    let found = r.first("certificates");
    assert_eq!(found["id"], cert["id"]);
    assert_eq!(found["face_value_cents"], 10000);
    assert_eq!(
        found["merchant"]["locations"][0]["id"],
        shop.location_id.as_str()
    );
    assert!(found["owner_email"].is_null());
    assert_eq!(a.get("/claim_codes/ABCD-EFGH-JKMNPQRS").status, 400);
    let mut wrong = code.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    assert_eq!(a.get(&format!("/claim_codes/{wrong}")).status, 400);

    // Redeem $40 of it: the $60 balance is a new certificate.
    let r = a.post(
        &format!("/claim_codes/{typed}/redemptions"),
        json!({"amount_to_redeem_cents": 10001}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = a.ok(
        a.post(
            &format!("/claim_codes/{typed}/redemptions"),
            json!({"amount_to_redeem_cents": 4000, "redemption_location_id": shop.location_id}),
        ),
        201,
    );
    let red = r.first("redemptions");
    assert_eq!(red["amount_cents"], 4000);
    assert_eq!(red["amount_paid_cents"], 3200);
    assert_eq!(red["source"], "admin");
    assert_eq!(red["links"]["location"], shop.location_id.as_str());
    let balance = &r.body["linked"]["certificates"][0];
    assert_eq!(balance["face_value_cents"], 6000);
    assert_eq!(balance["price_cents"], 4800);
    assert_eq!(balance["status"], "pending");
    assert_eq!(red["links"]["balance_certificate"], balance["id"]);
    assert_ne!(balance["claim_code"], code.as_str());

    // The dashboard's outstanding liability drops by exactly 4000.
    let row = summary(&a, &shop.merchant_id);
    assert_eq!(row["open_face_value_cents"], 6000);
    assert_eq!(row["open_paid_value_cents"], 4800);
    assert_eq!(row["open_count"], 1);
    assert_eq!(row["today"]["redeemed_cents"], 4000);
    assert_eq!(row["today"]["redeemed_count"], 1);
    assert_eq!(row["this_month"]["redeemed_cents"], 4000);
    let r = a.ok(a.get("/dashboard"), 200);
    assert_eq!(r.body["meta"]["totals"][0]["open_face_value_cents"], 6000);
    assert_eq!(r.body["meta"]["totals"][0]["currency"], "USD");

    // The redeemed code is spent; the balance's code redeems the rest.
    let r = a.post(
        &format!("/claim_codes/{code}/redemptions"),
        json!({"amount_to_redeem_cents": 100}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_details(), "This item has previously been redeemed");
    let balance_code = balance["claim_code"].as_str().unwrap();
    let r = a.ok(
        a.post(
            &format!("/claim_codes/{balance_code}/redemptions"),
            json!({}),
        ),
        201,
    );
    assert_eq!(r.first("redemptions")["amount_cents"], 6000);
    assert_eq!(r.first("redemptions")["amount_paid_cents"], 4800);
    assert!(r.body["linked"].is_null());
    assert_eq!(summary(&a, &shop.merchant_id)["open_face_value_cents"], 0);
    s.check_passes();
}

#[test]
fn issue_many_to_an_email_with_an_expiry_date() {
    let s = server();
    let a = Admin::login(&s);
    let shop = shop(&a, "Tuscan Kitchen");
    let issued = issue(
        &a,
        &shop.option_id,
        json!({"quantity": 3, "recipient_email": "bob@example.com", "price_cents": 5000,
               "expires_on": "2099-12-31"}),
    );
    assert_eq!(issued.len(), 3);
    for c in &issued {
        assert_eq!(c["status"], "gifted");
        assert_eq!(c["price_cents"], 5000);
        // The end of 31 December in New York.
        assert_eq!(c["expires_at"], "2100-01-01T05:00:00Z");
    }
    let r = a.ok(a.get("/outbox?kind=gift"), 200);
    assert_eq!(r.body["meta"]["total_count"], 3);
    assert_eq!(r.first("outbox_messages")["to"], "bob@example.com");
    let r = a.ok(a.get("/gifts"), 200);
    assert_eq!(r.body["meta"]["total_count"], 3);
    assert_eq!(r.first("gifts")["recipient_email"], "bob@example.com");

    // Refusals, each naming its field.
    let r = a.post(
        "/certificates",
        json!({"certificate": {"product_option_id": "nope"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/certificate/product_option_id"]);
    let r = a.post(
        "/certificates",
        json!({"certificate": {"product_option_id": shop.option_id, "expires_on": "2001-01-01",
                               "quantity": 101, "recipient_email": "not an email"}}),
    );
    assert_eq!(r.status, 400);
    let mut pointers = r.pointers();
    pointers.sort();
    assert_eq!(
        pointers,
        vec![
            "/certificate/expires_on",
            "/certificate/quantity",
            "/certificate/recipient_email"
        ]
    );
    let r = a.post(
        "/certificates",
        json!({"certificate": {"product_option_id": shop.option_id, "price_cents": 10001}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/certificate/price_cents"]);
    assert_eq!(
        summary(&a, &shop.merchant_id)["open_face_value_cents"],
        30000
    );
    s.check_passes();
}

#[test]
fn certificate_detail_with_ledger_cancel_return_reverse() {
    let s = server();
    let a = Admin::login(&s);
    let shop = shop(&a, "Tuscan Kitchen");
    let ann = s.user("ann@example.com");
    let issued = issue(
        &a,
        &shop.option_id,
        json!({"quantity": 3, "recipient_email": ann.email}),
    );
    let (first, second, third) = (id(&issued[0]), id(&issued[1]), id(&issued[2]));
    assert_eq!(issued[0]["status"], "assigned");

    let code = issued[0]["claim_code"].as_str().unwrap();
    let r = a.ok(
        a.post(
            &format!("/claim_codes/{code}/redemptions"),
            json!({"amount_to_redeem_cents": "2550"}),
        ),
        201,
    );
    let redemption_id = id(r.first("redemptions"));
    let balance_id = id(&r.body["linked"]["certificates"][0]);

    let r = a.ok(a.get(&format!("/certificates/{first}")), 200);
    let c = r.first("certificates");
    assert_eq!(c["status"], "redeemed");
    assert_eq!(c["face_value_cents"], 2550);
    assert_eq!(c["owner_email"], "ann@example.com");
    assert_eq!(c["merchant"]["name"], "Tuscan Kitchen");
    let ledger: Vec<(String, i64, i64)> = r.body["linked"]["ledger_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["face_delta_cents"].as_i64().unwrap(),
                e["paid_delta_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ledger,
        vec![
            ("issue".to_string(), 10000, 8000),
            ("split".to_string(), -7450, -5960),
            ("redeem".to_string(), -2550, -2040),
        ]
    );
    assert_eq!(
        r.body["linked"]["redemptions"][0]["id"],
        redemption_id.as_str()
    );
    assert_eq!(
        r.body["linked"]["certificates"][0]["id"],
        balance_id.as_str()
    );
    assert_eq!(
        r.body["linked"]["certificates"][0]["face_value_cents"],
        7450
    );
    assert_eq!(r.body["linked"]["users"][0]["email"], "ann@example.com");
    assert_eq!(a.get("/certificates/nope").status, 404);

    // A field the page's cancel does not read is refused, not dropped.
    let r = a.post(
        &format!("/certificates/{second}/cancellations"),
        json!({"reason": "typo"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/reason"]);
    // Cancel one, return another; neither twice.
    let r = a.ok(
        a.post(&format!("/certificates/{second}/cancellations"), json!({})),
        201,
    );
    assert_eq!(r.first("certificates")["status"], "cancelled");
    let r = a.post(&format!("/certificates/{second}/returns"), json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_details(), "This item has been cancelled");
    let r = a.ok(
        a.post(&format!("/certificates/{third}/returns"), json!({})),
        201,
    );
    assert_eq!(r.first("certificates")["status"], "returned");

    // Reverse the redemption: $25.50 comes back as a new certificate of Ann's.
    let r = a.ok(
        a.post(
            &format!("/redemptions/{redemption_id}/reversals"),
            json!({}),
        ),
        201,
    );
    assert!(r.first("redemptions")["reversed_at"].is_string());
    let back = &r.body["linked"]["certificates"][0];
    assert_eq!(back["face_value_cents"], 2550);
    assert_eq!(back["price_cents"], 2040);
    assert_eq!(back["status"], "assigned");
    assert_eq!(back["links"]["user"], ann.id.as_str());
    let r = a.post(
        &format!("/redemptions/{redemption_id}/reversals"),
        json!({}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_details(),
        "This redemption has already been reversed"
    );

    // Outstanding: the $74.50 balance and the $25.50 reversal.
    let row = summary(&a, &shop.merchant_id);
    assert_eq!(row["open_face_value_cents"], 10000);
    assert_eq!(row["today"]["reversed_cents"], 2550);
    assert_eq!(row["today"]["issued_cents"], 30000);

    // The certificate list filters.
    let r = a.ok(a.get("/certificates?status=cancelled"), 200);
    assert_eq!(r.body["meta"]["total_count"], 1);
    assert_eq!(r.first("certificates")["id"], second.as_str());
    let r = a.ok(a.get("/certificates?q=ann%40example.com&per_page=2"), 200);
    assert_eq!(r.body["meta"]["total_count"], 5);
    assert_eq!(r.body["meta"]["page_count"], 3);
    assert_eq!(
        r.body["meta"]["links"]["next"],
        "?page=2&per_page=2&q=ann%40example.com"
    );
    let r = a.ok(a.get(&format!("/certificates?q={code}")), 200);
    assert_eq!(r.body["meta"]["total_count"], 1);
    assert_eq!(r.first("certificates")["id"], first.as_str());
    let r = a.ok(
        a.get(&format!("/certificates?user_id={}&status=assigned", ann.id)),
        200,
    );
    assert_eq!(r.body["meta"]["total_count"], 2);
    let r = a.ok(a.get("/certificates?q=nobody%40example.com"), 200);
    assert_eq!(r.body["meta"]["total_count"], 0);
    assert_eq!(a.get("/certificates?status=lost").status, 400);
    let r = a.ok(
        a.get(&format!("/redemptions?merchant_id={}", shop.merchant_id)),
        200,
    );
    assert_eq!(r.body["meta"]["total_count"], 1);
    assert_eq!(total(a.get("/redemptions?merchant_id=other")), 0);
    s.check_passes();
}

#[test]
fn users_tickets_and_the_outbox() {
    let s = server();
    let a = Admin::login(&s);
    let ann = s.user("ann@example.com");
    s.user("bob@example.com");
    // Signed in, to her own address: the notice quotes her message.
    let r = s.post(
        "/v2/support_tickets",
        &ann.headers(),
        json!({"name": "Ann", "email": "ann@example.com", "message": "Can I use it at lunch?"}),
    );
    assert_eq!(r.status, 201);
    let ticket_id = id(r.first("support_tickets"));

    let r = a.ok(a.get("/users?q=ANN"), 200);
    assert_eq!(r.body["meta"]["total_count"], 1);
    let u = r.first("users");
    assert_eq!(u["email"], "ann@example.com");
    assert_eq!(u["certificates_count"], 0);
    assert!(u.get("authentication_token").is_none());
    assert_eq!(total(a.get("/users")), 2);
    assert_eq!(total(a.get("/users?q=%25")), 0, "LIKE is escaped");

    // Tickets: open ones, close, reopen.
    let r = a.ok(a.get("/support_tickets?status=open"), 200);
    assert_eq!(
        r.first("support_tickets")["message"],
        "Can I use it at lunch?"
    );
    let r = a.put(
        &format!("/support_tickets/{ticket_id}"),
        json!({"support_ticket": {"status": "done"}}),
    );
    assert_eq!(r.status, 400);
    let r = a.ok(
        a.put(
            &format!("/support_tickets/{ticket_id}"),
            json!({"support_ticket": {"status": "closed"}}),
        ),
        200,
    );
    assert_eq!(r.first("support_tickets")["status"], "closed");
    assert_eq!(total(a.get("/support_tickets?status=open")), 0);
    assert_eq!(total(a.get("/support_tickets?status=closed")), 1);
    assert_eq!(
        a.put("/support_tickets/nope", json!({"status": "closed"}))
            .status,
        404
    );

    // The outbox: the ticket notice waits; resend brings it forward.
    let r = a.ok(a.get("/outbox?status=queued"), 200);
    // The two sign-ups' confirmations wait too (no mail server here).
    assert_eq!(r.body["meta"]["total_count"], 3);
    let mail = r.body["outbox_messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "support_ticket")
        .unwrap()
        .clone();
    assert_eq!(mail["kind"], "support_ticket");
    assert_eq!(mail["to"], "ann@example.com");
    assert!(mail["body_text"].as_str().unwrap().contains("lunch"));
    let mail_id = id(&mail);
    s.sql()
        .execute(
            "UPDATE outbox SET status = 'failed', next_attempt_at = 0 WHERE id = ?1",
            [&mail_id],
        )
        .unwrap();
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before = unix_now();
    let r = a.ok(a.post(&format!("/outbox/{mail_id}/resend"), json!({})), 200);
    let after = unix_now();
    let resent = r.first("outbox_messages");
    assert_eq!(resent["status"], "queued");
    // Brought forward to now: not left at 0, not null, not in the future.
    let next: Option<i64> = s
        .sql()
        .query_row(
            "SELECT next_attempt_at FROM outbox WHERE id = ?1",
            [&mail_id],
            |r| r.get(0),
        )
        .unwrap();
    let next = next.expect("next_attempt_at set");
    assert!(
        (before..=after).contains(&next),
        "{next} not in {before}..={after}"
    );
    assert!(
        resent["next_attempt_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{resent}"
    );
    s.sql()
        .execute(
            "UPDATE outbox SET status = 'cancelled' WHERE id = ?1",
            [&mail_id],
        )
        .unwrap();
    let r = a.post(&format!("/outbox/{mail_id}/resend"), json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(a.post("/outbox/nope/resend", json!({})).status, 404);
    assert_eq!(a.get("/outbox?status=lost").status, 400);
}

#[test]
fn csv_exports_are_quoted_and_defused() {
    let s = server();
    let a = Admin::login(&s);
    let shop = shop(&a, "=HYPERLINK(\"http://evil\",\"Click\")");
    let issued = issue(&a, &shop.option_id, json!({"quantity": 2}));
    let code = issued[0]["claim_code"].as_str().unwrap();
    a.ok(
        a.post(
            &format!("/claim_codes/{code}/redemptions"),
            json!({"amount_to_redeem_cents": 4000}),
        ),
        201,
    );

    let r = a.get("/exports/certificates.csv");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment; filename=\"certificates-"));
    let lines: Vec<&str> = r.text.split("\r\n").collect();
    assert!(lines[0].starts_with("id,claim_code,status,merchant_id,merchant,"));
    assert_eq!(lines.len(), 1 + 3 + 1, "header, 3 certificates, final CRLF");
    assert_eq!(*lines.last().unwrap(), "");
    let merchant_cell = "\"'=HYPERLINK(\"\"http://evil\"\",\"\"Click\"\")\"";
    let redeemed = lines
        .iter()
        .find(|l| l.contains(",redeemed,"))
        .expect("redeemed row");
    assert!(redeemed.contains(merchant_cell), "{redeemed}");
    assert!(redeemed.contains(",40.00,4000,32.00,3200,"), "{redeemed}");
    assert!(redeemed.contains(code), "{redeemed}");
    let balance = lines
        .iter()
        .filter(|l| l.contains(",pending,"))
        .find(|l| l.contains(",60.00,6000,"));
    assert!(balance.is_some(), "{}", r.text);
    // No cell starts a formula.
    for line in &lines[1..] {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell} in {line}");
        }
    }
    let r = a.get("/exports/certificates.csv?status=pending");
    assert_eq!(r.text.matches("\r\n").count(), 1 + 2);

    let r = a.get(&format!(
        "/exports/redemptions.csv?merchant_id={}",
        shop.merchant_id
    ));
    assert_eq!(r.status, 200);
    let lines: Vec<&str> = r.text.split("\r\n").collect();
    assert!(lines[0].starts_with("id,created_at,merchant_id,merchant,certificate_id,claim_code,"));
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains(merchant_cell), "{}", lines[1]);
    assert!(
        lines[1].contains(",USD,40.00,4000,32.00,3200,admin,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("\"Downtown, 1 Main St, Boston\""),
        "{}",
        lines[1]
    );
    let r = a.get("/exports/redemptions.csv?merchant_id=other");
    assert_eq!(r.text.matches("\r\n").count(), 1);
}

#[test]
fn backup_is_a_consistent_sqlite_file() {
    let s = server();
    let a = Admin::login(&s);
    let shop = shop(&a, "Tuscan Kitchen");
    issue(&a, &shop.option_id, json!({"quantity": 2}));

    let r = a.get("/backup");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.sqlite3"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment; filename=\"instagift-"));
    // `Resp.text` is lossy UTF-8: fetch the bytes again raw.
    let request = ureq::http::Request::builder()
        .uri(format!("{}/admin/api/backup", s.base))
        .header("Cookie", &a.cookie)
        .body(Vec::new())
        .unwrap();
    let mut resp = ureq::run(request).unwrap();
    let bytes = resp.body_mut().read_to_vec().unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let dir = TempDir::new();
    let copy = dir.0.join("backup.db");
    std::fs::write(&copy, &bytes).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, instagift::db::SCHEMA_VERSION);
    // The copy passes the books check as a database of its own.
    let out = Command::new(bin())
        .arg("--db")
        .arg(&copy)
        .arg("check")
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// The dashboard's "today" is the merchant's own day: it starts at
/// midnight in the merchant's zone. Zones 14 hours ahead of and 12 hours
/// behind UTC disagree with UTC (and each other) about the date at any
/// hour, so reckoning in UTC would misplace the rows on either side.
#[test]
fn the_dashboards_today_starts_at_the_merchants_midnight() {
    let s = server();
    let a = Admin::login(&s);
    for tz in ["Etc/GMT-14", "Etc/GMT+12"] {
        let shop = shop_in(&a, tz, tz);
        let cert = issue(&a, &shop.option_id, json!({}))[0].clone();
        let zone = jiff::tz::TimeZone::get(tz).unwrap();
        let today = jiff::Timestamp::now().to_zoned(zone.clone()).date();
        let midnight = today.to_zoned(zone).unwrap().timestamp().as_second();
        // Two more issue rows: a second before the merchant's midnight
        // (yesterday) and at it (today). The ledger takes inserts.
        for (at, cents) in [(midnight - 1, 1000), (midnight, 7)] {
            s.sql()
                .execute(
                    "INSERT INTO ledger (certificate_id, merchant_id, kind, face_delta, paid_delta, created_at)
                     VALUES (?1, ?2, 'issue', ?3, 0, ?4)",
                    (id(&cert), &shop.merchant_id, cents, at),
                )
                .unwrap();
        }
        let row = summary(&a, &shop.merchant_id);
        assert_eq!(row["date"], json!(today.to_string()), "{tz}: {row}");
        assert_eq!(row["today"]["issued_count"], 2, "{tz}: {row}");
        assert_eq!(row["today"]["issued_cents"], 10000 + 7, "{tz}: {row}");
    }
}
