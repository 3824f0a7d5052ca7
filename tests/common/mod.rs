//! Test harness: starts the real `instagift` binary on 127.0.0.1:0 with a
//! fresh temporary database and talks HTTP to it.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The binary under test; `INSTAGIFT_TEST_BIN` names another build (an
/// older one, to see a test fail before its fix).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("INSTAGIFT_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_instagift").to_string())
    })
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "instagift-test-{}-{n}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A running server process.
pub struct Server {
    pub base: String,
    pub db: PathBuf,
    pub child: Child,
    pub stderr_log: PathBuf,
    agent: ureq::Agent,
    dir: Option<TempDir>,
}

/// A merchant with API credentials.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub id: String,
    pub key: String,
    pub secret: String,
}

impl Merchant {
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("X-Merchant-Key".into(), self.key.clone()),
            ("X-Merchant-Secret".into(), self.secret.clone()),
        ]
    }
}

/// A user with a token.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl User {
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("X-User-Email".into(), self.email.clone()),
            ("X-User-Token".into(), self.token.clone()),
        ]
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first resource of the primary array `kind`.
    pub fn first(&self, kind: &str) -> &Value {
        &self.body[kind][0]
    }

    /// The `details` of the first error.
    pub fn error_details(&self) -> &str {
        self.body["errors"][0]["details"].as_str().unwrap_or("")
    }

    /// The `source.pointer`s of all errors.
    pub fn pointers(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["source"]["pointer"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Server {
    /// Starts the binary on a fresh database.
    pub fn start() -> Server {
        Self::start_with(&[], &[])
    }

    /// Starts with extra arguments and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new();
        let db = dir.0.join("test.db");
        Self::start_on(dir, db, args, env)
    }

    /// Starts on an existing directory and database path.
    pub fn start_on(dir: TempDir, db: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_wrapped(&[], dir, db, args, env)
    }

    /// Starts on a fresh database through `wrapper`, a command that runs
    /// the binary given after its own arguments (e.g. `prlimit --nofile=…`,
    /// which execs it: the child is still the server).
    pub fn start_through(wrapper: &[&str], args: &[&str]) -> Server {
        let dir = TempDir::new();
        let db = dir.0.join("test.db");
        Self::start_wrapped(wrapper, dir, db, args, &[])
    }

    fn start_wrapped(
        wrapper: &[&str],
        dir: TempDir,
        db: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let stderr_log = dir.0.join("stderr.log");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr_log).unwrap()))
            .spawn()
            .expect("start instagift");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("banner").expect("read banner");
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("address in banner")
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        // A hung server fails the test instead of hanging the suite.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Server {
            base,
            db,
            child,
            stderr_log,
            agent,
            dir: Some(dir),
        }
    }

    /// Stops the server with SIGINT (a clean shutdown) and starts it again on
    /// the same database with `args`.
    pub fn restart(mut self, args: &[&str]) -> Server {
        self.interrupt();
        let dir = self.dir.take().unwrap();
        Server::start_on(dir, self.db.clone(), args, &[])
    }

    /// Stops the server with SIGINT, waits for it, and returns its log.
    pub fn stop(mut self) -> String {
        self.interrupt();
        self.log()
    }

    /// SIGINT, then waits: the server must exit cleanly.
    fn interrupt(&mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "server exited with {exit}");
    }

    /// Kills the server with SIGKILL (no shutdown at all) and starts it
    /// again on the same database with `args`.
    pub fn crash_restart(mut self, args: &[&str]) -> Server {
        let _ = self.child.kill();
        self.child.wait().unwrap();
        let dir = self.dir.take().unwrap();
        Server::start_on(dir, self.db.clone(), args, &[])
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Resp {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let bytes = match body {
            Some(v) => {
                b = b.header("Content-Type", "application/json");
                serde_json::to_vec(v).unwrap()
            }
            None => Vec::new(),
        };
        self.raw(b.body(bytes).unwrap())
    }

    /// Sends a prepared request.
    pub fn raw(&self, request: ureq::http::Request<Vec<u8>>) -> Resp {
        let mut resp = self.agent.run(request).expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn get(&self, path: &str, headers: &[(String, String)]) -> Resp {
        self.req("GET", path, headers, None)
    }

    pub fn post(&self, path: &str, headers: &[(String, String)], body: Value) -> Resp {
        self.req("POST", path, headers, Some(&body))
    }

    pub fn put(&self, path: &str, headers: &[(String, String)], body: Value) -> Resp {
        self.req("PUT", path, headers, Some(&body))
    }

    pub fn delete(&self, path: &str, headers: &[(String, String)]) -> Resp {
        self.req("DELETE", path, headers, None)
    }

    /// Runs the binary's CLI against this server's database.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()
            .expect("run cli")
    }

    /// Creates a merchant and an API key with the CLI.
    pub fn merchant(&self, name: &str) -> Merchant {
        self.merchant_in(name, "UTC")
    }

    /// Creates a merchant in a time zone, with an API key.
    pub fn merchant_in(&self, name: &str, tz: &str) -> Merchant {
        let out = self.cli(&["merchant", "create", "--name", name, "--time-zone", tz]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let out = self.cli(&["merchant", "key", "create", &id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_string()
        };
        Merchant {
            id,
            key: field("key:"),
            secret: field("secret:"),
        }
    }

    /// Signs up a user, confirms their address with the token from the
    /// confirmation email in the outbox (as its owner would), and returns it
    /// with its token.
    pub fn user(&self, email: &str) -> User {
        let u = self.unverified_user(email);
        let token = self.verification_token(email);
        let r = self.post(
            "/v2/email_verifications",
            &[],
            json!({"verification_token": token}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.first("users")["email_verified"], json!(true));
        u
    }

    /// The token of the newest confirmation email queued for `email`.
    pub fn verification_token(&self, email: &str) -> String {
        let text: String = self
            .sql()
            .query_row(
                "SELECT body_text FROM outbox WHERE kind = 'email_verification' AND to_addr = ?1
                 ORDER BY rowid DESC LIMIT 1",
                [email],
                |r| r.get(0),
            )
            .unwrap();
        let after = text.split("usable once):").nth(1).unwrap();
        after.split_whitespace().next().unwrap().to_string()
    }

    /// Signs up a user whose address is not confirmed.
    pub fn unverified_user(&self, email: &str) -> User {
        let r = self.post(
            "/v2/users",
            &[],
            json!({"user": {"email": email, "password": "password123", "password_confirmation": "password123",
                             "first_name": "Test", "last_name": "User"}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let u = r.first("users");
        User {
            id: u["id"].as_str().unwrap().to_string(),
            email: email.to_string(),
            token: u["authentication_token"].as_str().unwrap().to_string(),
        }
    }

    /// Runs `instagift check` on the database and fails the test unless the
    /// books balance.
    pub fn check_passes(&self) {
        let out = self.cli(&["check"]);
        assert!(
            out.status.success(),
            "instagift check failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Opens the database file directly (read-only checks).
    pub fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shop with one location, a product and a $100 option sold at $50.
pub struct Shop {
    pub merchant: Merchant,
    pub location_id: String,
    pub product_id: String,
    pub option_id: String,
}

/// Creates a shop through the API.
pub fn shop(s: &Server, name: &str, can_split_value: bool) -> Shop {
    shop_in(s, name, "UTC", can_split_value)
}

/// `shop`, for a merchant in time zone `tz`.
pub fn shop_in(s: &Server, name: &str, tz: &str, can_split_value: bool) -> Shop {
    let merchant = s.merchant_in(name, tz);
    let h = merchant.headers();
    let r = s.post(
        "/v2/locations",
        &h,
        json!({"location": {"name": name, "address1": "1 Main St", "city": "Boston"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let location_id = r.first("locations")["id"].as_str().unwrap().to_string();
    let r = s.post(
        "/v2/products",
        &h,
        json!({"product": {"type": "GiftCertificate", "tagline": "Dinner for two", "can_split_value": can_split_value,
                            "redemption_location_ids": [location_id]}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let product_id = r.first("products")["id"].as_str().unwrap().to_string();
    let r = s.post(
        &format!("/v2/products/{product_id}/product_options"),
        &h,
        json!({"product_option": {"face_value_cents": 10000, "price_cents": 5000}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let option_id = r.first("product_options")["id"]
        .as_str()
        .unwrap()
        .to_string();
    Shop {
        merchant,
        location_id,
        product_id,
        option_id,
    }
}

/// An answer read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// One request from the loopback address `ip` (127.0.0.x: Linux answers
/// on all of 127/8), so the server sees another client IP.
pub fn request_from(
    ip: &str,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawAnswer {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{ip}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    RawAnswer {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Issues certificates of `option_id` as the merchant, with `extra` fields
/// beside `product_option_id`; the answer as it came.
pub fn issue(s: &Server, m: &Merchant, option_id: &str, extra: Value) -> Resp {
    let mut cert = json!({"product_option_id": option_id});
    if let Value::Object(e) = extra {
        for (k, v) in e {
            cert[k] = v;
        }
    }
    s.post(
        "/v2/certificates",
        &m.headers(),
        json!({ "certificate": cert }),
    )
}

/// Issues one certificate of the shop's option to a (confirmed) user; its JSON.
pub fn issue_to(s: &Server, shop: &Shop, user: &User) -> Value {
    let r = issue(
        s,
        &shop.merchant,
        &shop.option_id,
        json!({"recipient_email": user.email}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.first("certificates").clone()
}

/// A resource's `id`.
pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// A certificate's `claim_code`.
pub fn code(v: &Value) -> String {
    v["claim_code"].as_str().unwrap().to_string()
}
