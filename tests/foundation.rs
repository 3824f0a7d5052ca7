mod common;

// Foundation integration tests over HTTP against the real binary: users,
// tokens, passwords, support tickets, the merchant catalog, the wire format,
// idempotency and graceful shutdown (see docs/reference.md: Wire format,
// Authentication, Idempotency, and the catalog part of Endpoints).

use common::{Merchant, Resp, Server, User};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const JSON_CT: &str = "application/json; charset=utf-8";
const PASSWORD: &str = "password123";

// ---------------------------------------------------------------- helpers

/// Asserts the status and the JSON content type; returns the response.
#[track_caller]
fn expect(r: Resp, status: u16) -> Resp {
    assert_eq!(r.status, status, "unexpected status; body: {}", r.text);
    assert_eq!(
        r.header("Content-Type"),
        Some(JSON_CT),
        "content type of {}",
        r.text
    );
    assert!(!r.body.is_null(), "body is not JSON: {:?}", r.text);
    r
}

/// Asserts an error answer: status, content type, and every `errors[]`
/// entry carrying that `code` and reason phrase, a title and details.
#[track_caller]
fn expect_error(r: Resp, status: u16, reason: &str) -> Resp {
    let r = expect(r, status);
    let errors = r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors[]: {}", r.text));
    assert!(!errors.is_empty(), "empty errors[]: {}", r.text);
    for e in errors {
        assert_eq!(e["code"], json!(status.to_string()), "{}", r.text);
        assert_eq!(e["status"], json!(reason), "{}", r.text);
        // The original reference's titles, which its clients look for.
        if status == 401 {
            assert_eq!(e["title"], "Permission denied", "{}", r.text);
        }
        if status == 404 && !e["details"].as_str().unwrap_or("").starts_with("No route") {
            assert_eq!(e["title"], "Resource with that ID not found", "{}", r.text);
        }
        assert!(
            e["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{}",
            r.text
        );
        assert!(
            e["details"].as_str().is_some_and(|t| !t.is_empty()),
            "{}",
            r.text
        );
    }
    r
}

/// A 400 whose errors name exactly `pointers` (in any order), one each.
#[track_caller]
fn expect_invalid(r: Resp, pointers: &[&str]) -> Resp {
    let r = expect_error(r, 400, "Bad Request");
    let mut got = r.pointers();
    got.sort();
    let mut want: Vec<String> = pointers.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{}", r.text);
    r
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn user_headers(email: &str, token: &str) -> Vec<(String, String)> {
    h(&[("X-User-Email", email), ("X-User-Token", token)])
}

fn signup_body(email: &str, password: &str, confirmation: &str) -> Value {
    json!({"user": {"email": email, "password": password, "password_confirmation": confirmation,
                    "first_name": "Ada", "last_name": "Lovelace"}})
}

fn login(s: &Server, email: &str, password: &str) -> Resp {
    s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": email, "password": password}}),
    )
}

/// Logs in and returns the new token.
fn new_token(s: &Server, email: &str) -> String {
    let r = expect(login(s, email, PASSWORD), 201);
    r.first("users")["authentication_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn count(s: &Server, sql: &str, params: &[&dyn rusqlite::ToSql]) -> i64 {
    s.sql().query_row(sql, params, |r| r.get(0)).unwrap()
}

fn is_rfc3339_utc(v: &Value) -> bool {
    let Some(t) = v.as_str() else { return false };
    let b = t.as_bytes();
    t.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && t.bytes()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

fn is_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 22
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn id_of(r: &Resp, kind: &str) -> String {
    r.first(kind)["id"].as_str().unwrap().to_string()
}

/// host:port of the server.
fn addr(s: &Server) -> String {
    s.base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// A raw HTTP exchange over one connection (`Connection: close` is the
/// caller's to send): status, headers (lower-cased names) and body text.
fn raw_http(s: &Server, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr(s)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, String) {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).expect("read response");
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let text = String::from_utf8_lossy(buf).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("incomplete response: {text:?}"));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        assert_eq!(
            body.len(),
            len.parse::<usize>().unwrap(),
            "truncated body: {text:?}"
        );
    }
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Sends SIGINT to the server process.
fn sigint(s: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &s.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Waits up to `limit` for the server process to exit.
fn wait_exit(s: &mut Server, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "server still running {limit:?} after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls `ready` until it holds; fails after five seconds.
#[track_caller]
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn location_body(name: &str) -> Value {
    json!({"location": {"name": name, "address1": "1 Main St", "city": "Boston"}})
}

fn create_location(s: &Server, m: &Merchant, name: &str) -> String {
    id_of(
        &expect(
            s.post("/v2/locations", &m.headers(), location_body(name)),
            201,
        ),
        "locations",
    )
}

/// The reset token mailed to `email` (the latest password_reset mail).
fn reset_token_from_outbox(s: &Server, email: &str) -> String {
    let text: String = s
        .sql()
        .query_row(
            "SELECT body_text FROM outbox WHERE kind = 'password_reset' AND to_addr = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [email],
            |r| r.get(0),
        )
        .unwrap();
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("Your reset token"))
        .skip(1);
    lines
        .find(|l| !l.trim().is_empty())
        .map(|l| {
            assert!(l.starts_with(' '), "token line not indented: {text}");
            l.trim().to_string()
        })
        .unwrap_or_else(|| panic!("no reset token in {text}"))
}

// ---------------------------------------------------------------- users

#[test]
fn signup_returns_user_with_token_and_link_templates() {
    let s = Server::start();
    let r = expect(
        s.post(
            "/v2/users",
            &[],
            signup_body("ada@example.com", PASSWORD, PASSWORD),
        ),
        201,
    );
    let users = r.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    let u = &users[0];
    assert!(is_id(&u["id"]), "{}", r.text);
    let id = u["id"].as_str().unwrap();
    assert_eq!(u["href"], json!(format!("/v2/users/{id}")));
    assert_eq!(u["email"], json!("ada@example.com"));
    assert_eq!(u["name"], json!("Ada Lovelace"));
    assert_eq!(u["first_name"], json!("Ada"));
    assert_eq!(u["last_name"], json!("Lovelace"));
    assert!(is_rfc3339_utc(&u["created_at"]), "{}", r.text);
    assert!(is_rfc3339_utc(&u["updated_at"]), "{}", r.text);
    let token = u["authentication_token"].as_str().unwrap();
    assert!(token.len() >= 20, "token too short: {token}");
    assert!(
        u.get("password").is_none() && u.get("password_hash").is_none(),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["links"]["users.certificates"],
        json!("/v2/users/{users.id}/certificates")
    );
    assert_eq!(
        r.body["links"]["users.redemptions"],
        json!("/v2/users/{users.id}/redemptions")
    );
    assert_eq!(
        r.body["links"]["users.gifts"],
        json!("/v2/users/{users.id}/gifts")
    );

    // The token works, and secrets are stored only as digests / Argon2id.
    expect(
        s.get(
            &format!("/v2/users/{id}"),
            &user_headers("ada@example.com", token),
        ),
        200,
    );
    let hash: String = s
        .sql()
        .query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM user_tokens WHERE digest = ?1",
            &[&token]
        ),
        0
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM user_tokens WHERE user_id = ?1",
            &[&id]
        ),
        1
    );
}

#[test]
fn signup_refuses_duplicate_email_case_insensitively() {
    let s = Server::start();
    expect(
        s.post("/v2/users", &[], signup_body("A@B.co", PASSWORD, PASSWORD)),
        201,
    );
    let r = expect_invalid(
        s.post("/v2/users", &[], signup_body("a@b.co", PASSWORD, PASSWORD)),
        &["/user/email"],
    );
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    expect_invalid(
        s.post("/v2/users", &[], signup_body("A@B.CO", PASSWORD, PASSWORD)),
        &["/user/email"],
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM users", &[]), 1);
}

#[test]
fn signup_validation_names_each_problem() {
    let s = Server::start();
    let cases = [
        (
            signup_body("not-an-email", PASSWORD, PASSWORD),
            vec!["/user/email"],
        ),
        (
            signup_body("a b@example.com", PASSWORD, PASSWORD),
            vec!["/user/email"],
        ),
        (
            signup_body("x@example.com", "short7!", "short7!"),
            vec!["/user/password"],
        ),
        (
            signup_body("x@example.com", PASSWORD, "password124"),
            vec!["/user/password_confirmation"],
        ),
        (
            json!({"user": {"email": "x@example.com", "password": PASSWORD}}),
            vec!["/user/password_confirmation"],
        ),
        (
            json!({"user": {"password": PASSWORD, "password_confirmation": PASSWORD}}),
            vec!["/user/email"],
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "password_confirmation": PASSWORD}),
            vec!["/user"],
        ),
    ];
    for (body, pointers) in cases {
        let r = expect_invalid(s.post("/v2/users", &[], body.clone()), &pointers);
        assert_eq!(
            r.body["errors"].as_array().unwrap().len(),
            pointers.len(),
            "{body} → {}",
            r.text
        );
    }
    // Exactly 8 characters is enough.
    expect(
        s.post(
            "/v2/users",
            &[],
            signup_body("eight@example.com", "12345678", "12345678"),
        ),
        201,
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM users", &[]), 1);
}

#[test]
fn blank_emails_are_refused() {
    let s = Server::start();
    for blank in ["", "   "] {
        expect_invalid(
            s.post("/v2/users", &[], signup_body(blank, PASSWORD, PASSWORD)),
            &["/user/email"],
        );
        expect_invalid(
            s.post(
                "/v2/support_tickets",
                &[],
                json!({"name": "Ada", "email": blank, "message": "hi"}),
            ),
            &["/email"],
        );
        expect_invalid(
            s.post("/v2/passwords", &[], json!({"email": blank})),
            &["/email"],
        );
    }
    assert_eq!(count(&s, "SELECT COUNT(*) FROM users", &[]), 0);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 0);
}

#[test]
fn signup_with_three_problems_lists_all_three() {
    let s = Server::start();
    let r = expect_invalid(
        s.post("/v2/users", &[], signup_body("nope", "short", "different")),
        &[
            "/user/email",
            "/user/password",
            "/user/password_confirmation",
        ],
    );
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 3);
    // A duplicate email is listed together with the other problems.
    s.user("taken@example.com");
    expect_invalid(
        s.post(
            "/v2/users",
            &[],
            signup_body("TAKEN@example.com", "short", "different"),
        ),
        &[
            "/user/email",
            "/user/password",
            "/user/password_confirmation",
        ],
    );
}

// ---------------------------------------------------------------- tokens

#[test]
fn login_issues_a_new_token_and_sets_last_login_at() {
    let s = Server::start();
    let r = expect(
        s.post(
            "/v2/users",
            &[],
            signup_body("ada@example.com", PASSWORD, PASSWORD),
        ),
        201,
    );
    let first = r.first("users")["authentication_token"]
        .as_str()
        .unwrap()
        .to_string();
    let id = id_of(&r, "users");
    assert_eq!(r.first("users")["last_login_at"], Value::Null);

    let r = expect(login(&s, "ada@example.com", PASSWORD), 201);
    let u = r.first("users");
    assert_eq!(u["id"], json!(id));
    assert_eq!(u["email"], json!("ada@example.com"));
    assert!(is_rfc3339_utc(&u["last_login_at"]), "{}", r.text);
    let second = u["authentication_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        r.body["links"]["users.certificates"],
        json!("/v2/users/{users.id}/certificates")
    );
    assert_eq!(
        r.body["links"]["users.redemptions"],
        json!("/v2/users/{users.id}/redemptions")
    );
    assert_eq!(
        r.body["links"]["users.gifts"],
        json!("/v2/users/{users.id}/gifts")
    );

    // The email matches case-insensitively.
    let third = expect(login(&s, "ADA@Example.COM", PASSWORD), 201);
    assert_eq!(third.first("users")["id"], json!(id));

    // All tokens work; the user now shows last_login_at.
    for t in [&first, &second] {
        let r = expect(
            s.get(
                &format!("/v2/users/{id}"),
                &user_headers("ada@example.com", t),
            ),
            200,
        );
        assert!(
            is_rfc3339_utc(&r.first("users")["last_login_at"]),
            "{}",
            r.text
        );
    }
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM user_tokens WHERE user_id = ?1",
            &[&id]
        ),
        3
    );
}

#[test]
fn login_failures_are_identical_for_wrong_password_and_unknown_email() {
    let s = Server::start();
    s.user("ada@example.com");
    let wrong_password = expect_error(
        login(&s, "ada@example.com", "password124"),
        401,
        "Unauthorized",
    );
    let unknown_email = expect_error(
        login(&s, "nobody@example.com", PASSWORD),
        401,
        "Unauthorized",
    );
    assert_eq!(wrong_password.text, unknown_email.text);
    assert_eq!(wrong_password.body["errors"].as_array().unwrap().len(), 1);
    assert!(!wrong_password.text.contains("ada@example.com"));
    // Missing fields are a validation error, not a login failure.
    expect_invalid(
        s.post(
            "/v2/tokens",
            &[],
            json!({"user": {"email": "ada@example.com"}}),
        ),
        &["/user/password"],
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM user_tokens", &[]), 1);
}

// ---------------------------------------------------------------- GET /v2/users/{id}

#[test]
fn show_self_echoes_the_presented_token() {
    let s = Server::start();
    let u = s.user("ada@example.com");
    let second = new_token(&s, &u.email);
    assert_ne!(second, u.token);

    let r = expect(
        s.get(
            &format!("/v2/users/{}", u.id),
            &user_headers(&u.email, &second),
        ),
        200,
    );
    let body = r.first("users");
    assert_eq!(r.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(body["id"], json!(u.id));
    assert_eq!(body["href"], json!(format!("/v2/users/{}", u.id)));
    assert_eq!(body["email"], json!("ada@example.com"));
    assert_eq!(body["name"], json!("Test User"));
    assert_eq!(body["authentication_token"], json!(second));
    assert!(is_rfc3339_utc(&body["last_login_at"]));

    let r = expect(s.get(&format!("/v2/users/{}", u.id), &u.headers()), 200);
    assert_eq!(r.first("users")["authentication_token"], json!(u.token));

    // The email header is matched case-insensitively.
    let r = expect(
        s.get(
            &format!("/v2/users/{}", u.id),
            &user_headers("ADA@EXAMPLE.COM", &u.token),
        ),
        200,
    );
    assert_eq!(r.first("users")["email"], json!("ada@example.com"));
}

#[test]
fn show_user_access_rules() {
    let s = Server::start();
    let ada = s.user("ada@example.com");
    let bob = s.user("bob@example.com");
    let m = s.merchant("Shop");
    let path = format!("/v2/users/{}", ada.id);

    let r = expect_error(
        s.get(&format!("/v2/users/{}", bob.id), &ada.headers()),
        404,
        "Not Found",
    );
    assert_eq!(r.error_details(), "Resource with that ID not found");
    assert!(!r.text.contains("bob@example.com") && !r.text.contains(&bob.token));
    let nobody = expect_error(
        s.get("/v2/users/AAAAAAAAAAAAAAAAAAAAAA", &ada.headers()),
        404,
        "Not Found",
    );
    assert_eq!(
        r.text, nobody.text,
        "another user's id must look like a missing one"
    );

    expect_error(s.get(&path, &[]), 401, "Unauthorized");
    expect_error(
        s.get(&path, &user_headers(&ada.email, "wrong-token")),
        401,
        "Unauthorized",
    );
    expect_error(
        s.get(&path, &user_headers(&ada.email, &bob.token)),
        401,
        "Unauthorized",
    );
    expect_error(
        s.get(&path, &user_headers("nobody@example.com", &ada.token)),
        401,
        "Unauthorized",
    );
    expect_error(
        s.get(&path, &h(&[("X-User-Email", &ada.email)])),
        401,
        "Unauthorized",
    );
    expect_error(
        s.get(&path, &h(&[("X-User-Token", &ada.token)])),
        401,
        "Unauthorized",
    );

    let mut both = ada.headers();
    both.extend(m.headers());
    expect_error(s.get(&path, &both), 400, "Bad Request");
}

// ---------------------------------------------------------------- DELETE /v2/tokens

#[test]
fn logout_revokes_only_the_presented_token() {
    let s = Server::start();
    let u = s.user("ada@example.com");
    let second = new_token(&s, &u.email);
    let path = format!("/v2/users/{}", u.id);

    let r = s.delete("/v2/tokens", &u.headers());
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");

    expect_error(s.get(&path, &u.headers()), 401, "Unauthorized");
    let r = expect(s.get(&path, &user_headers(&u.email, &second)), 200);
    assert_eq!(r.first("users")["authentication_token"], json!(second));
    // A revoked token cannot log out again.
    expect_error(s.delete("/v2/tokens", &u.headers()), 401, "Unauthorized");
    expect_error(s.delete("/v2/tokens", &[]), 401, "Unauthorized");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM user_tokens WHERE user_id = ?1",
            &[&u.id]
        ),
        1
    );
}

#[test]
fn logout_all_revokes_every_token() {
    let s = Server::start();
    let u = s.user("ada@example.com");
    let other = s.user("bob@example.com");
    let second = new_token(&s, &u.email);
    let third = new_token(&s, &u.email);
    let path = format!("/v2/users/{}", u.id);

    let r = s.delete("/v2/tokens?all=true", &user_headers(&u.email, &second));
    assert_eq!(r.status, 204, "{}", r.text);
    for t in [&u.token, &second, &third] {
        expect_error(
            s.get(&path, &user_headers(&u.email, t)),
            401,
            "Unauthorized",
        );
    }
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM user_tokens WHERE user_id = ?1",
            &[&u.id]
        ),
        0
    );
    // Other users are untouched; logging in again works.
    expect(
        s.get(&format!("/v2/users/{}", other.id), &other.headers()),
        200,
    );
    let fresh = new_token(&s, &u.email);
    expect(s.get(&path, &user_headers(&u.email, &fresh)), 200);
}

// ---------------------------------------------------------------- passwords

#[test]
fn password_reset_request_answers_the_same_for_unknown_emails() {
    let s = Server::start();
    s.user("ada@example.com");
    let known = expect(
        s.post("/v2/passwords", &[], json!({"email": "ada@example.com"})),
        201,
    );
    assert_eq!(
        known.body,
        json!({"data": {"title": "Password reset sent", "email": "ada@example.com"}})
    );
    let unknown = expect(
        s.post("/v2/passwords", &[], json!({"email": "ghost@example.com"})),
        201,
    );
    assert_eq!(
        unknown.body,
        json!({"data": {"title": "Password reset sent", "email": "ghost@example.com"}})
    );

    let mails = |to: &str| {
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'password_reset' AND to_addr = ?1",
            &[&to],
        )
    };
    assert_eq!(mails("ada@example.com"), 1);
    assert_eq!(mails("ghost@example.com"), 0);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE kind != 'email_verification'",
            &[]
        ),
        1
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM password_resets", &[]), 1);
    // The mailed token is not stored in the clear.
    let token = reset_token_from_outbox(&s, "ada@example.com");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM password_resets WHERE digest = ?1",
            &[&token]
        ),
        0
    );

    expect_invalid(s.post("/v2/passwords", &[], json!({})), &["/email"]);
    expect_invalid(
        s.post("/v2/passwords", &[], json!({"email": "not-an-email"})),
        &["/email"],
    );
}

#[test]
fn password_reset_completes_and_revokes_old_tokens() {
    let s = Server::start();
    let u = s.user("ada@example.com");
    let second = new_token(&s, &u.email);
    let path = format!("/v2/users/{}", u.id);
    expect(
        s.post("/v2/passwords", &[], json!({"email": "ada@example.com"})),
        201,
    );
    let reset = reset_token_from_outbox(&s, "ada@example.com");
    assert!(reset.len() >= 20, "{reset}");

    // Validation comes before the token is spent.
    expect_invalid(
        s.put(
            "/v2/passwords",
            &[],
            json!({"reset_token": reset, "password": "newpass99", "password_confirmation": "newpass98"}),
        ),
        &["/password_confirmation"],
    );
    expect_invalid(
        s.put(
            "/v2/passwords",
            &[],
            json!({"reset_token": reset, "password": "short", "password_confirmation": "short"}),
        ),
        &["/password"],
    );
    expect_invalid(
        s.put(
            "/v2/passwords",
            &[],
            json!({"reset_token": "not-a-real-token", "password": "newpass99", "password_confirmation": "newpass99"}),
        ),
        &["/reset_token"],
    );

    let r = expect(
        s.put(
            "/v2/passwords",
            &[],
            json!({"reset_token": reset, "password": "newpass99", "password_confirmation": "newpass99"}),
        ),
        200,
    );
    let users = r.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], json!(u.id));
    assert_eq!(users[0]["email"], json!("ada@example.com"));
    let fresh = users[0]["authentication_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, u.token);
    assert_ne!(fresh, second);

    for old in [&u.token, &second] {
        expect_error(
            s.get(&path, &user_headers(&u.email, old)),
            401,
            "Unauthorized",
        );
    }
    let r = expect(s.get(&path, &user_headers(&u.email, &fresh)), 200);
    assert_eq!(r.first("users")["authentication_token"], json!(fresh));

    expect(login(&s, &u.email, "newpass99"), 201);
    expect_error(login(&s, &u.email, PASSWORD), 401, "Unauthorized");

    // Single use.
    let r = expect_invalid(
        s.put(
            "/v2/passwords",
            &[],
            json!({"reset_token": reset, "password": "another99", "password_confirmation": "another99"}),
        ),
        &["/reset_token"],
    );
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    expect(login(&s, &u.email, "newpass99"), 201);
    expect_error(login(&s, &u.email, "another99"), 401, "Unauthorized");
}

// ---------------------------------------------------------------- support tickets

#[test]
fn support_tickets_open_from_flat_and_wrapped_bodies() {
    let s = Server::start();
    let flat = expect(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"name": "Ada", "email": "ada@example.com", "message": "My code does not work"}),
        ),
        201,
    );
    let t = flat.first("support_tickets");
    assert_eq!(flat.body["support_tickets"].as_array().unwrap().len(), 1);
    assert!(is_id(&t["id"]), "{}", flat.text);
    assert_eq!(t["status"], json!("open"));
    assert_eq!(t["name"], json!("Ada"));
    assert_eq!(t["email"], json!("ada@example.com"));
    assert_eq!(t["message"], json!("My code does not work"));
    assert!(is_rfc3339_utc(&t["created_at"]));

    let wrapped = expect(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"support_ticket": {"name": "Bob", "email": "bob@example.com", "message": "Hello\nthere"}}),
        ),
        201,
    );
    let t = wrapped.first("support_tickets");
    assert_eq!(t["status"], json!("open"));
    assert_eq!(t["name"], json!("Bob"));
    assert_eq!(t["message"], json!("Hello\nthere"));
    assert_ne!(t["id"], flat.first("support_tickets")["id"]);

    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM support_tickets WHERE status = 'open'",
            &[]
        ),
        2
    );
}

#[test]
fn support_tickets_name_missing_fields() {
    let s = Server::start();
    expect_invalid(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"name": "Ada", "email": "ada@example.com"}),
        ),
        &["/message"],
    );
    expect_invalid(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"support_ticket": {"name": "Ada", "message": "hi"}}),
        ),
        &["/support_ticket/email"],
    );
    expect_invalid(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"name": "  ", "email": "ada@example.com", "message": "hi"}),
        ),
        &["/name"],
    );
    expect_invalid(
        s.post("/v2/support_tickets", &[], json!({})),
        &["/name", "/email", "/message"],
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 0);
}

// ---------------------------------------------------------------- catalog

#[test]
fn merchant_builds_a_catalog_and_the_public_reads_it() {
    let s = Server::start();
    let m = s.merchant("Tuscan Kitchen");
    let mh = m.headers();

    let r = expect(
        s.post(
            "/v2/locations",
            &mh,
            json!({"location": {"name": "Downtown", "address1": "1 Main St", "address2": "Suite 2", "city": "Boston",
                                "state": "MA", "zip": "02110", "phone": "617-555-0100", "lat": 42.35, "lng": -71.06}}),
        ),
        201,
    );
    let loc = r.first("locations").clone();
    let loc_id = loc["id"].as_str().unwrap().to_string();
    assert!(is_id(&loc["id"]));
    assert_eq!(loc["href"], json!(format!("/v2/locations/{loc_id}")));
    assert_eq!(
        loc["display"],
        json!("Downtown, 1 Main St, Suite 2, Boston, MA 02110")
    );
    assert_eq!(loc["name"], json!("Downtown"));
    assert_eq!(loc["address1"], json!("1 Main St"));
    assert_eq!(loc["address2"], json!("Suite 2"));
    assert_eq!(loc["city"], json!("Boston"));
    assert_eq!(loc["state"], json!("MA"));
    assert_eq!(loc["zip"], json!("02110"));
    assert_eq!(loc["phone"], json!("617-555-0100"));
    assert_eq!(loc["lat"], json!(42.35));
    assert_eq!(loc["lng"], json!(-71.06));
    assert_eq!(loc["links"], json!({"merchant": m.id}));
    assert_eq!(
        r.body["links"]["locations.merchant"],
        json!("/v2/merchants/{locations.merchant}")
    );

    let r = expect(
        s.post(
            "/v2/products",
            &mh,
            json!({"product": {"type": "GiftCertificate", "tagline": "Dinner for two", "headline": "Eat well",
                               "terms": ["One per table"], "can_split_value": false,
                               "redemption_location_ids": [loc_id]}}),
        ),
        201,
    );
    let product = r.first("products").clone();
    let product_id = product["id"].as_str().unwrap().to_string();
    assert_eq!(product["href"], json!(format!("/v2/products/{product_id}")));
    assert_eq!(product["type"], json!("GiftCertificate"));
    assert_eq!(product["tagline"], json!("Dinner for two"));
    assert_eq!(product["headline"], json!("Eat well"));
    assert_eq!(product["terms"], json!(["One per table"]));
    assert_eq!(product["photos"], json!([]));
    assert_eq!(product["can_split_value"], json!(false));
    assert_eq!(product["is_giveaway"], json!(false));
    assert_eq!(product["is_print_only"], json!(false));
    assert_eq!(
        product["links"],
        json!({"merchant": m.id, "redemption_locations": [loc_id], "product_options": []})
    );

    // The misspelt secret header from the original sample works too.
    let misspelt = h(&[("X-Merchant-Key", &m.key), ("X-Merhcant-Secret", &m.secret)]);
    let r = expect(
        s.post(
            &format!("/v2/products/{product_id}/product_options"),
            &misspelt,
            json!({"product_option": {"face_value_cents": 10000, "price_cents": "4000", "tagline": "$100 for $40"}}),
        ),
        201,
    );
    let option = r.first("product_options").clone();
    let option_id = option["id"].as_str().unwrap().to_string();
    assert_eq!(
        option["href"],
        json!(format!("/v2/product_options/{option_id}"))
    );
    assert_eq!(option["face_value_cents"], json!(10000));
    assert_eq!(option["price_cents"], json!(4000));
    assert_eq!(option["currency"], json!("USD"));
    assert_eq!(option["tagline"], json!("$100 for $40"));
    assert_eq!(option["count"], Value::Null);
    assert_eq!(option["limit_per_order"], Value::Null);
    assert_eq!(option["is_recommended"], json!(false));
    assert_eq!(option["links"], json!({"product": product_id}));

    // Public reads, no credentials.
    let r = expect(s.get(&format!("/v2/merchants/{}", m.id), &[]), 200);
    let merchant = r.first("merchants");
    assert_eq!(merchant["id"], json!(m.id));
    assert_eq!(merchant["href"], json!(format!("/v2/merchants/{}", m.id)));
    assert_eq!(merchant["name"], json!("Tuscan Kitchen"));
    assert_eq!(merchant["time_zone"], json!("UTC"));
    assert_eq!(merchant["url"], Value::Null);
    assert_eq!(merchant["logo"], Value::Null);
    assert_eq!(merchant["links"]["locations"], json!([loc_id]));
    assert_eq!(
        r.body["links"]["merchants.locations"],
        json!("/v2/merchants/{merchants.id}/locations")
    );
    assert!(!r.text.contains(&m.secret) && !r.text.contains(&m.key));

    let r = expect(s.get(&format!("/v2/locations/{loc_id}"), &[]), 200);
    assert_eq!(r.body["locations"], json!([loc]));

    let r = expect(s.get(&format!("/v2/products/{product_id}"), &[]), 200);
    let shown = r.first("products");
    assert_eq!(shown["links"]["redemption_locations"], json!([loc_id]));
    assert_eq!(shown["links"]["product_options"], json!([option_id]));
    assert_eq!(shown["links"]["merchant"], json!(m.id));
    assert_eq!(
        r.body["links"]["products.redemption_locations"],
        json!("/v2/products/{products.id}/locations")
    );
    assert_eq!(
        r.body["links"]["products.product_options"],
        json!("/v2/products/{products.id}/product_options")
    );

    let r = expect(
        s.get(&format!("/v2/products/{product_id}/locations"), &[]),
        200,
    );
    // A product's locations link back to it (the reference's template).
    let mut with_product = loc.clone();
    with_product["links"]["product"] = json!(product_id);
    assert_eq!(r.body["locations"], json!([with_product]));
    assert_eq!(
        r.body["links"]["locations.product"],
        json!("/v2/products/{locations.product}")
    );
    assert_eq!(r.body["meta"]["total_count"], json!(1));

    let r = expect(
        s.get(&format!("/v2/products/{product_id}/product_options"), &[]),
        200,
    );
    assert_eq!(r.body["product_options"], json!([option]));
    assert_eq!(r.body["meta"]["total_count"], json!(1));

    let r = expect(s.get(&format!("/v2/product_options/{option_id}"), &[]), 200);
    assert_eq!(r.body["product_options"], json!([option]));
    assert_eq!(
        r.body["links"]["product_options.product"],
        json!("/v2/products/{product_options.product}")
    );

    // The original's alias spellings.
    let r = expect(s.get(&format!("/v2/merchant/{}/locations", m.id), &[]), 200);
    assert_eq!(r.body["locations"], json!([loc]));
    assert_eq!(r.body["meta"]["total_count"], json!(1));
    let r = expect(
        s.get(&format!("/v2/product/{product_id}/locations"), &[]),
        200,
    );
    assert_eq!(r.body["locations"], json!([with_product]));
    let r = expect(s.get(&format!("/v2/merchant/{}", m.id), &[]), 200);
    assert_eq!(r.first("merchants")["id"], json!(m.id));

    // Unknown ids.
    for path in [
        "/v2/merchants/AAAAAAAAAAAAAAAAAAAAAA",
        "/v2/merchants/AAAAAAAAAAAAAAAAAAAAAA/locations",
        "/v2/locations/AAAAAAAAAAAAAAAAAAAAAA",
        "/v2/products/AAAAAAAAAAAAAAAAAAAAAA",
        "/v2/products/AAAAAAAAAAAAAAAAAAAAAA/locations",
        "/v2/product_options/AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = expect_error(s.get(path, &[]), 404, "Not Found");
        assert_eq!(
            r.error_details(),
            "Resource with that ID not found",
            "{path}"
        );
    }
}

#[test]
fn merchant_locations_paginate() {
    let s = Server::start();
    let m = s.merchant("Chain");
    let l1 = create_location(&s, &m, "First");
    let l2 = create_location(&s, &m, "Second");
    let l3 = create_location(&s, &m, "Third");
    let base = format!("/v2/merchants/{}/locations", m.id);
    let ids = |r: &Resp| -> Vec<String> {
        r.body["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };

    let r = expect(s.get(&format!("{base}?per_page=2"), &[]), 200);
    assert_eq!(ids(&r), vec![l3.clone(), l2.clone()], "newest first");
    assert_eq!(
        r.body["meta"],
        json!({"href": base, "page": 1, "per_page": 2, "page_count": 2, "total_count": 3,
               "links": {"first": "?page=1&per_page=2", "previous": null,
                         "next": "?page=2&per_page=2", "last": "?page=2&per_page=2"}})
    );

    let r = expect(s.get(&format!("{base}?page=2&per_page=2"), &[]), 200);
    assert_eq!(ids(&r), vec![l1.clone()]);
    assert_eq!(
        r.body["meta"],
        json!({"href": base, "page": 2, "per_page": 2, "page_count": 2, "total_count": 3,
               "links": {"first": "?page=1&per_page=2", "previous": "?page=1&per_page=2",
                         "next": null, "last": "?page=2&per_page=2"}})
    );

    let r = expect(s.get(&base, &[]), 200);
    assert_eq!(ids(&r), vec![l3.clone(), l2.clone(), l1.clone()]);
    assert_eq!(
        r.body["meta"],
        json!({"href": base, "page": 1, "per_page": 10, "page_count": 1, "total_count": 3,
               "links": {"first": "?page=1&per_page=10", "previous": null,
                         "next": null, "last": "?page=1&per_page=10"}})
    );

    // The merchant profile lists them all (oldest first).
    let r = expect(s.get(&format!("/v2/merchants/{}", m.id), &[]), 200);
    assert_eq!(
        r.first("merchants")["links"]["locations"],
        json!([l1, l2, l3])
    );

    // Bad paging parameters name themselves.
    expect_invalid(s.get(&format!("{base}?per_page=0"), &[]), &["/per_page"]);
    expect_invalid(s.get(&format!("{base}?per_page=101"), &[]), &["/per_page"]);
    expect_invalid(
        s.get(&format!("{base}?page=0&per_page=x"), &[]),
        &["/page", "/per_page"],
    );
    // per_page=100 is the maximum, and allowed.
    let r = expect(s.get(&format!("{base}?per_page=100"), &[]), 200);
    assert_eq!(r.body["meta"]["per_page"], json!(100));
}

#[test]
fn catalog_updates_change_only_given_fields() {
    let s = Server::start();
    let shop = common::shop(&s, "Tuscan Kitchen", true);
    let mh = shop.merchant.headers();
    let other_loc = create_location(&s, &shop.merchant, "Uptown");

    let before = expect(
        s.get(&format!("/v2/locations/{}", shop.location_id), &[]),
        200,
    );
    let r = expect(
        s.put(
            &format!("/v2/locations/{}", shop.location_id),
            &mh,
            json!({"location": {"phone": "555-0101", "zip": "02111"}}),
        ),
        200,
    );
    let after = r.first("locations");
    let was = before.first("locations");
    assert_eq!(after["phone"], json!("555-0101"));
    assert_eq!(after["zip"], json!("02111"));
    for field in [
        "id",
        "name",
        "address1",
        "address2",
        "city",
        "state",
        "lat",
        "lng",
        "links",
        "created_at",
    ] {
        assert_eq!(after[field], was[field], "{field} changed");
    }
    assert_eq!(
        after["display"],
        json!("Tuscan Kitchen, 1 Main St, Boston, 02111")
    );
    let r = expect(
        s.get(&format!("/v2/locations/{}", shop.location_id), &[]),
        200,
    );
    assert_eq!(r.first("locations"), after);

    let before = expect(
        s.get(&format!("/v2/products/{}", shop.product_id), &[]),
        200,
    );
    let r = expect(
        s.put(
            &format!("/v2/products/{}", shop.product_id),
            &mh,
            json!({"product": {"headline": "New headline"}}),
        ),
        200,
    );
    let after = r.first("products");
    let was = before.first("products");
    assert_eq!(after["headline"], json!("New headline"));
    for field in [
        "id",
        "type",
        "tagline",
        "can_split_value",
        "terms",
        "photos",
        "links",
        "created_at",
    ] {
        assert_eq!(after[field], was[field], "{field} changed");
    }
    // redemption_location_ids replaces the set when given.
    let r = expect(
        s.put(
            &format!("/v2/products/{}", shop.product_id),
            &mh,
            json!({"product": {"redemption_location_ids": [other_loc]}}),
        ),
        200,
    );
    assert_eq!(
        r.first("products")["links"]["redemption_locations"],
        json!([other_loc])
    );
    assert_eq!(r.first("products")["headline"], json!("New headline"));

    let before = expect(
        s.get(&format!("/v2/product_options/{}", shop.option_id), &[]),
        200,
    );
    let r = expect(
        s.put(
            &format!("/v2/product_options/{}", shop.option_id),
            &mh,
            json!({"product_option": {"price_cents": "4500"}}),
        ),
        200,
    );
    let after = r.first("product_options");
    let was = before.first("product_options");
    assert_eq!(after["price_cents"], json!(4500));
    for field in [
        "id",
        "face_value_cents",
        "currency",
        "tagline",
        "count",
        "limit_per_order",
        "is_recommended",
        "links",
    ] {
        assert_eq!(after[field], was[field], "{field} changed");
    }
    let r = expect(
        s.get(&format!("/v2/product_options/{}", shop.option_id), &[]),
        200,
    );
    assert_eq!(r.first("product_options")["price_cents"], json!(4500));
}

#[test]
fn catalog_validation_names_each_field() {
    let s = Server::start();
    let shop = common::shop(&s, "Tuscan Kitchen", true);
    let mh = shop.merchant.headers();
    let foreign = common::shop(&s, "Elsewhere", true);

    expect_invalid(
        s.post(
            "/v2/locations",
            &mh,
            json!({"location": {"name": "Nowhere"}}),
        ),
        &["/location/address1", "/location/city"],
    );
    expect_invalid(
        s.post(
            "/v2/locations",
            &mh,
            json!({"location": {"address1": " ", "city": "Boston"}}),
        ),
        &["/location/address1"],
    );
    expect_invalid(
        s.post(
            "/v2/locations",
            &mh,
            json!({"location": {"address1": "1 Main", "city": "Boston", "lat": 91}}),
        ),
        &["/location/lat"],
    );
    expect_invalid(
        s.post("/v2/locations", &mh, json!({"name": "flat"})),
        &["/location"],
    );

    expect_invalid(
        s.post("/v2/products", &mh, json!({"product": {}})),
        &["/product/type", "/product/tagline"],
    );
    expect_invalid(
        s.post(
            "/v2/products",
            &mh,
            json!({"product": {"type": "Coupon", "tagline": "x"}}),
        ),
        &["/product/type"],
    );
    expect_invalid(
        s.post(
            "/v2/products",
            &mh,
            json!({"product": {"type": "Deal", "tagline": "x", "redemption_location_ids": [foreign.location_id]}}),
        ),
        &["/product/redemption_location_ids/0"],
    );

    let options = format!("/v2/products/{}/product_options", shop.product_id);
    let bad_options: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"face_value_cents": 5000, "price_cents": 5001}),
            vec!["/product_option/price_cents"],
        ),
        (
            json!({"face_value_cents": 0, "price_cents": 0}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": "0", "price_cents": 0}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": -100, "price_cents": 0}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": 100, "price_cents": -1}),
            vec!["/product_option/price_cents"],
        ),
        (
            json!({"face_value_cents": 100.5, "price_cents": 50}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": "100.5", "price_cents": 50}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": "abc", "price_cents": 50}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": 100, "price_cents": "abc"}),
            vec!["/product_option/price_cents"],
        ),
        (
            json!({"face_value_cents": 100, "price_cents": 1.5}),
            vec!["/product_option/price_cents"],
        ),
        (
            json!({"face_value_cents": 10_000_000_001_i64, "price_cents": 1}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": true, "price_cents": 1}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"price_cents": 1}),
            vec!["/product_option/face_value_cents"],
        ),
        (
            json!({"face_value_cents": 100}),
            vec!["/product_option/price_cents"],
        ),
        (
            json!({}),
            vec![
                "/product_option/face_value_cents",
                "/product_option/price_cents",
            ],
        ),
        (
            json!({"face_value_cents": "abc", "price_cents": -5}),
            vec![
                "/product_option/face_value_cents",
                "/product_option/price_cents",
            ],
        ),
        (
            json!({"face_value_cents": 100, "price_cents": 50, "currency": "usd"}),
            vec!["/product_option/currency"],
        ),
    ];
    for (body, pointers) in bad_options {
        let r = expect_invalid(
            s.post(&options, &mh, json!({"product_option": body.clone()})),
            &pointers,
        );
        assert_eq!(
            r.body["errors"].as_array().unwrap().len(),
            pointers.len(),
            "{body}: {}",
            r.text
        );
    }
    // Digit strings and price == face and price 0 are fine.
    let r = expect(
        s.post(
            &options,
            &mh,
            json!({"product_option": {"face_value_cents": "2500", "price_cents": "2500"}}),
        ),
        201,
    );
    assert_eq!(r.first("product_options")["face_value_cents"], json!(2500));
    assert_eq!(r.first("product_options")["price_cents"], json!(2500));
    expect(
        s.post(
            &options,
            &mh,
            json!({"product_option": {"face_value_cents": 100, "price_cents": 0}}),
        ),
        201,
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM product_options WHERE product_id = ?1",
            &[&shop.product_id]
        ),
        3
    );

    // An update is validated like a create, and a refused one changes nothing.
    let path = format!("/v2/product_options/{}", shop.option_id);
    let before = expect(s.get(&path, &[]), 200);
    expect_invalid(
        s.put(
            &path,
            &mh,
            json!({"product_option": {"price_cents": 10001}}),
        ),
        &["/product_option/price_cents"],
    );
    expect_invalid(
        s.put(
            &path,
            &mh,
            json!({"product_option": {"face_value_cents": 0}}),
        ),
        &["/product_option/face_value_cents"],
    );
    expect_invalid(
        s.put(
            &format!("/v2/locations/{}", shop.location_id),
            &mh,
            json!({"location": {"city": ""}}),
        ),
        &["/location/city"],
    );
    assert_eq!(expect(s.get(&path, &[]), 200).body, before.body);
}

#[test]
fn another_merchant_cannot_touch_the_catalog() {
    let s = Server::start();
    let shop = common::shop(&s, "Tuscan Kitchen", true);
    let rival = s.merchant("Rival");
    let rh = rival.headers();
    let paths = [
        format!("/v2/locations/{}", shop.location_id),
        format!("/v2/products/{}", shop.product_id),
        format!("/v2/product_options/{}", shop.option_id),
    ];
    let before: Vec<Value> = paths
        .iter()
        .map(|p| expect(s.get(p, &[]), 200).body)
        .collect();

    let attempts = [
        (&paths[0], json!({"location": {"name": "Hijacked"}})),
        (&paths[1], json!({"product": {"tagline": "Hijacked"}})),
        (&paths[2], json!({"product_option": {"price_cents": 1}})),
    ];
    for (path, body) in attempts {
        let r = expect_error(s.put(path, &rh, body), 404, "Not Found");
        assert_eq!(r.error_details(), "Resource with that ID not found");
    }
    expect_error(
        s.post(
            &format!("/v2/products/{}/product_options", shop.product_id),
            &rh,
            json!({"product_option": {"face_value_cents": 100, "price_cents": 1}}),
        ),
        404,
        "Not Found",
    );

    let after: Vec<Value> = paths
        .iter()
        .map(|p| expect(s.get(p, &[]), 200).body)
        .collect();
    assert_eq!(before, after);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM product_options", &[]), 1);
    let r = expect(
        s.get(&format!("/v2/merchants/{}/locations", rival.id), &[]),
        200,
    );
    assert_eq!(r.body["locations"], json!([]));
    assert_eq!(r.body["meta"]["total_count"], json!(0));
    assert_eq!(r.body["meta"]["page_count"], json!(1));
}

#[test]
fn catalog_writes_need_merchant_credentials() {
    let s = Server::start();
    let shop = common::shop(&s, "Tuscan Kitchen", true);
    let user = s.user("ada@example.com");
    let loc = location_body("Sneaky");

    let r = expect_error(
        s.post("/v2/locations", &user.headers(), loc.clone()),
        403,
        "Forbidden",
    );
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    expect_error(
        s.put(
            &format!("/v2/locations/{}", shop.location_id),
            &user.headers(),
            json!({"location": {"name": "x"}}),
        ),
        403,
        "Forbidden",
    );
    expect_error(
        s.post(
            "/v2/products",
            &user.headers(),
            json!({"product": {"type": "Deal", "tagline": "x"}}),
        ),
        403,
        "Forbidden",
    );
    expect_error(
        s.post("/v2/locations", &[], loc.clone()),
        401,
        "Unauthorized",
    );
    expect_error(
        s.post(
            "/v2/locations",
            &h(&[
                ("X-Merchant-Key", &shop.merchant.key),
                ("X-Merchant-Secret", "wrong"),
            ]),
            loc.clone(),
        ),
        401,
        "Unauthorized",
    );
    expect_error(
        s.post(
            "/v2/locations",
            &h(&[("X-Merchant-Key", &shop.merchant.key)]),
            loc.clone(),
        ),
        401,
        "Unauthorized",
    );
    expect_error(
        s.post(
            "/v2/locations",
            &h(&[
                ("X-Merchant-Key", "mk_nope"),
                ("X-Merchant-Secret", &shop.merchant.secret),
            ]),
            loc.clone(),
        ),
        401,
        "Unauthorized",
    );
    expect_error(
        s.post(
            &format!("/v2/products/{}/product_options", shop.product_id),
            &[],
            json!({"product_option": {"face_value_cents": 100, "price_cents": 1}}),
        ),
        401,
        "Unauthorized",
    );
    let mut both = shop.merchant.headers();
    both.extend(user.headers());
    expect_error(s.post("/v2/locations", &both, loc), 400, "Bad Request");

    assert_eq!(count(&s, "SELECT COUNT(*) FROM locations", &[]), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM products", &[]), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM product_options", &[]), 1);

    // A revoked key stops working.
    let out = s.cli(&["merchant", "key", "revoke", &shop.merchant.key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_error(
        s.post(
            "/v2/locations",
            &shop.merchant.headers(),
            location_body("Late"),
        ),
        401,
        "Unauthorized",
    );
}

// ---------------------------------------------------------------- wire format

#[test]
fn non_json_request_bodies_get_406() {
    let s = Server::start();
    let body = serde_json::to_string(&signup_body("ada@example.com", PASSWORD, PASSWORD)).unwrap();
    let host = addr(&s);

    // No Content-Type at all (raw, so no client adds one).
    let (status, headers, text) = raw_http(
        &s,
        format!(
            "POST /v2/users HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(status, 406, "{text}");
    assert_eq!(header(&headers, "content-type"), Some(JSON_CT));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["errors"][0]["code"], json!("406"));
    assert_eq!(v["errors"][0]["status"], json!("Not Acceptable"));
    assert!(
        v["errors"][0]["details"]
            .as_str()
            .unwrap()
            .contains("isn't JSON"),
        "{text}"
    );

    let send = |content_type: &str, bytes: &[u8]| {
        let rq = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}/v2/users", s.base))
            .header("Content-Type", content_type)
            .body(bytes.to_vec())
            .unwrap();
        s.raw(rq)
    };
    let r = expect_error(send("text/plain", body.as_bytes()), 406, "Not Acceptable");
    assert!(r.error_details().contains("isn't JSON"), "{}", r.text);
    let r = expect_error(
        send("application/json", b"{\"user\": {\"email\": "),
        406,
        "Not Acceptable",
    );
    assert!(r.error_details().contains("isn't JSON"), "{}", r.text);
    expect_error(
        send("application/x-www-form-urlencoded", b"email=a%40b.co"),
        406,
        "Not Acceptable",
    );
    // No body at all reads as `{}`: the required envelope is named missing.
    let r = expect_error(send("application/json", b""), 400, "Bad Request");
    assert_eq!(r.pointers(), vec!["/user"]);
    let r = expect_error(send("text/plain", b""), 400, "Bad Request");
    assert_eq!(r.pointers(), vec!["/user"]);
    // A JSON content type with parameters is fine.
    expect(
        send("application/json; charset=utf-8", body.as_bytes()),
        201,
    );

    // PUT is held to the same rule.
    let shop = common::shop(&s, "Shop", true);
    let rq = ureq::http::Request::builder()
        .method("PUT")
        .uri(format!("{}/v2/locations/{}", s.base, shop.location_id))
        .header("Content-Type", "text/plain")
        .header("X-Merchant-Key", shop.merchant.key.as_str())
        .header("X-Merchant-Secret", shop.merchant.secret.as_str())
        .body(b"{\"location\":{\"name\":\"x\"}}".to_vec())
        .unwrap();
    expect_error(s.raw(rq), 406, "Not Acceptable");
    assert_eq!(count(&s, "SELECT COUNT(*) FROM users", &[]), 1);
}

#[test]
fn accept_header_excluding_json_gets_406() {
    let s = Server::start();
    let m = s.merchant("Shop");
    let path = format!("/v2/merchants/{}", m.id);
    let r = expect_error(
        s.get(&path, &h(&[("Accept", "text/html")])),
        406,
        "Not Acceptable",
    );
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    expect_error(
        s.get(&path, &h(&[("Accept", "application/xml")])),
        406,
        "Not Acceptable",
    );
    expect_error(
        s.post(
            "/v2/support_tickets",
            &h(&[("Accept", "text/html")]),
            json!({"name": "a", "email": "a@b.co", "message": "m"}),
        ),
        406,
        "Not Acceptable",
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 0);
    for ok in [
        "application/json",
        "*/*",
        "text/html, application/json;q=0.9",
        "application/*",
    ] {
        expect(s.get(&path, &h(&[("Accept", ok)])), 200);
    }
}

#[test]
fn oversized_body_gets_413() {
    let s = Server::start();
    let filler = "a".repeat(70_000 - 60);
    let body = json!({"name": "Ada", "email": "ada@example.com", "message": filler});
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(
        bytes.len() > 64 * 1024 && bytes.len() <= 70_000,
        "{}",
        bytes.len()
    );
    let mut bytes = bytes;
    bytes.resize(70_000, b' ');
    let rq = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/v2/support_tickets", s.base))
        .header("Content-Type", "application/json")
        .body(bytes)
        .unwrap();
    let r = expect_error(s.raw(rq), 413, "Payload Too Large");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 0);
    // The server keeps serving.
    expect(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"name": "Ada", "email": "ada@example.com", "message": "short"}),
        ),
        201,
    );
}

#[test]
fn unknown_paths_get_404_in_the_errors_format() {
    let s = Server::start();
    for path in [
        "/v2/nothing",
        "/v2/users/abc/nothing/else",
        "/",
        "/v3/users",
        "/v2",
    ] {
        let r = expect_error(s.get(path, &[]), 404, "Not Found");
        assert_eq!(r.body["errors"].as_array().unwrap().len(), 1, "{path}");
        assert_eq!(
            r.body.as_object().unwrap().len(),
            1,
            "only errors[] in {}",
            r.text
        );
    }
    expect_error(s.post("/v2/nothing", &[], json!({})), 404, "Not Found");
}

#[test]
fn wrong_method_gets_405_with_allow() {
    let s = Server::start();
    let shop = common::shop(&s, "Shop", true);
    // The sets are the contract's: /v2/users is POST (sign-up) and GET (a
    // merchant's customers); see docs/reference.md, Endpoints.
    let cases = [
        ("DELETE", "/v2/users".to_string(), vec!["GET", "POST"]),
        ("PATCH", "/v2/users".to_string(), vec!["GET", "POST"]),
        ("GET", "/v2/tokens".to_string(), vec!["POST", "DELETE"]),
        ("GET", "/v2/passwords".to_string(), vec!["POST", "PUT"]),
        ("GET", "/v2/support_tickets".to_string(), vec!["POST"]),
        (
            "DELETE",
            format!("/v2/locations/{}", shop.location_id),
            vec!["GET", "PUT"],
        ),
        (
            "POST",
            format!("/v2/products/{}", shop.product_id),
            vec!["GET", "PUT"],
        ),
        (
            "PUT",
            format!("/v2/products/{}/product_options", shop.product_id),
            vec!["GET", "POST"],
        ),
        (
            "POST",
            format!("/v2/merchants/{}", shop.merchant.id),
            vec!["GET"],
        ),
    ];
    for (method, path, allowed) in cases {
        let r = expect_error(s.req(method, &path, &[], None), 405, "Method Not Allowed");
        let allow = r
            .header("Allow")
            .unwrap_or_else(|| panic!("no Allow on {method} {path}"));
        let mut got: Vec<&str> = allow.split(',').map(str::trim).collect();
        got.sort();
        let mut want = allowed.clone();
        // HEAD is served wherever GET is.
        if want.contains(&"GET") {
            want.push("HEAD");
        }
        want.sort();
        assert_eq!(got, want, "{method} {path}: Allow: {allow}");
    }
}

#[test]
fn every_json_answer_has_the_json_content_type() {
    let s = Server::start();
    let shop = common::shop(&s, "Shop", true);
    let u = s.user("ada@example.com");
    let answers = vec![
        (s.get("/healthz", &[]), 200),
        (
            s.get(&format!("/v2/merchants/{}", shop.merchant.id), &[]),
            200,
        ),
        (
            s.get(
                &format!("/v2/merchants/{}/locations", shop.merchant.id),
                &[],
            ),
            200,
        ),
        (s.get(&format!("/v2/users/{}", u.id), &u.headers()), 200),
        (login(&s, &u.email, PASSWORD), 201),
        (s.post("/v2/passwords", &[], json!({"email": u.email})), 201),
        (s.post("/v2/users", &[], json!({"user": {}})), 400),
        (s.get(&format!("/v2/users/{}", u.id), &[]), 401),
        (
            s.post("/v2/locations", &u.headers(), location_body("x")),
            403,
        ),
        (s.get("/v2/locations/nope", &[]), 404),
        (s.get("/nope", &[]), 404),
        (s.req("PATCH", "/v2/users", &[], None), 405),
        (s.get("/healthz", &h(&[("Accept", "text/html")])), 406),
    ];
    for (r, status) in answers {
        expect(r, status);
    }
}

#[test]
fn unicode_round_trips() {
    let s = Server::start();
    let r = expect(
        s.post(
            "/v2/users",
            &[],
            json!({"user": {"email": "zoe@example.com", "password": "pässwörd✓", "password_confirmation": "pässwörd✓",
                            "first_name": "Zoë", "last_name": "Ångström 日本"}}),
        ),
        201,
    );
    let u = r.first("users");
    assert_eq!(u["first_name"], json!("Zoë"));
    assert_eq!(u["last_name"], json!("Ångström 日本"));
    assert_eq!(u["name"], json!("Zoë Ångström 日本"));
    let user = User {
        id: u["id"].as_str().unwrap().into(),
        email: "zoe@example.com".into(),
        token: u["authentication_token"].as_str().unwrap().into(),
    };
    let r = expect(
        s.get(&format!("/v2/users/{}", user.id), &user.headers()),
        200,
    );
    assert_eq!(r.first("users")["name"], json!("Zoë Ångström 日本"));
    expect(login(&s, "zoe@example.com", "pässwörd✓"), 201);

    let m = s.merchant("Shop");
    let name = "Café Ünïcödé 東京 🍣";
    let r = expect(
        s.post(
            "/v2/locations",
            &m.headers(),
            json!({"location": {"name": name, "address1": "Straße 1", "city": "Zürich"}}),
        ),
        201,
    );
    let id = id_of(&r, "locations");
    let r = expect(s.get(&format!("/v2/locations/{id}"), &[]), 200);
    let l = r.first("locations");
    assert_eq!(l["name"], json!(name));
    assert_eq!(l["address1"], json!("Straße 1"));
    assert_eq!(l["city"], json!("Zürich"));
    assert_eq!(
        l["display"],
        json!("Café Ünïcödé 東京 🍣, Straße 1, Zürich")
    );

    let r = expect(
        s.post(
            "/v2/support_tickets",
            &[],
            json!({"name": "Ñandú", "email": "n@example.com", "message": "¿Dónde está? 🎁"}),
        ),
        201,
    );
    assert_eq!(
        r.first("support_tickets")["message"],
        json!("¿Dónde está? 🎁")
    );
    assert_eq!(r.first("support_tickets")["name"], json!("Ñandú"));
}

// ---------------------------------------------------------------- idempotency

#[test]
fn idempotency_key_replays_the_first_answer_and_refuses_other_bodies() {
    let s = Server::start();
    let key = h(&[("Idempotency-Key", "ticket-1")]);
    let body = json!({"name": "Ada", "email": "ada@example.com", "message": "Help"});
    let first = expect(s.post("/v2/support_tickets", &key, body.clone()), 201);
    let again = expect(s.post("/v2/support_tickets", &key, body.clone()), 201);
    assert_eq!(first.text, again.text);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 1);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'support_ticket'",
            &[]
        ),
        1
    );

    let r = expect_error(
        s.post(
            "/v2/support_tickets",
            &key,
            json!({"name": "Ada", "email": "ada@example.com", "message": "Other"}),
        ),
        409,
        "Conflict",
    );
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 1);

    // The first answer is still the one replayed.
    let third = expect(s.post("/v2/support_tickets", &key, body.clone()), 201);
    assert_eq!(first.text, third.text);
    // Another key is another ticket; no key at all, too.
    let other = expect(
        s.post(
            "/v2/support_tickets",
            &h(&[("Idempotency-Key", "ticket-2")]),
            body.clone(),
        ),
        201,
    );
    assert_ne!(
        other.first("support_tickets")["id"],
        first.first("support_tickets")["id"]
    );
    expect(s.post("/v2/support_tickets", &[], body), 201);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM support_tickets", &[]), 3);
}

// ---------------------------------------------------------------- shutdown

#[test]
fn sigint_stops_the_server_cleanly() {
    let mut s = Server::start();
    expect(s.get("/healthz", &[]), 200);
    s.user("ada@example.com");
    sigint(&s);
    let status = wait_exit(&mut s, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", s.log());
    // What was written is durable.
    assert_eq!(count(&s, "SELECT COUNT(*) FROM users", &[]), 1);
}

/// Sends a sign-up whose body arrives in two halves with SIGINT in between;
/// the answer must be complete and the process must then exit 0.
fn in_flight_signup_survives_sigint(padding: usize) {
    let mut s = Server::start();
    // Padded with white space: every field sent must be one the endpoint reads.
    let body = serde_json::to_string(&json!({"user": {
        "email": "late@example.com", "password": PASSWORD, "password_confirmation": PASSWORD,
        "first_name": "Late", "last_name": "Comer"}}))
    .unwrap()
        + &" ".repeat(padding);
    let head = format!(
        "POST /v2/users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        addr(&s),
        body.len()
    );
    let half = body.len() / 2;
    let mut stream = TcpStream::connect(addr(&s)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..half]).unwrap();
    stream.flush().unwrap();
    // Nothing outside the server shows that it has read the head and now
    // waits for the body, so this one pause stays; the shutdown below is
    // awaited on its log line instead.
    std::thread::sleep(Duration::from_millis(300));

    sigint(&s);
    wait_for("the server to begin shutting down", || {
        s.log().contains("shutting down")
    });
    stream.write_all(&body.as_bytes()[half..]).unwrap();
    stream.flush().unwrap();

    let mut buf = Vec::new();
    let read = stream.read_to_end(&mut buf);
    assert!(
        read.is_ok() && !buf.is_empty(),
        "no response to the in-flight request ({read:?}); exit: {:?}; log:\n{}",
        s.child.try_wait(),
        s.log()
    );
    let (status, headers, text) = parse_response(&buf);
    assert_eq!(status, 201, "{text}; log:\n{}", s.log());
    assert_eq!(header(&headers, "content-type"), Some(JSON_CT));
    let v: Value = serde_json::from_str(&text).expect("complete JSON body");
    assert_eq!(v["users"][0]["email"], json!("late@example.com"));
    assert!(v["users"][0]["authentication_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));

    let exit = wait_exit(&mut s, Duration::from_secs(5));
    assert_eq!(exit.code(), Some(0), "{exit:?}; log:\n{}", s.log());
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM users WHERE email = 'late@example.com'",
            &[]
        ),
        1
    );
}

#[test]
fn sigint_lets_an_in_flight_request_finish() {
    in_flight_signup_survives_sigint(0);
}

#[test]
fn sigint_lets_an_in_flight_large_request_finish() {
    in_flight_signup_survives_sigint(4000);
}

#[test]
fn head_qr_accept_and_idempotency_on_reads() {
    let s = Server::start();
    // HEAD answers like GET, without a body.
    let r = s.req("HEAD", "/healthz", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "");
    // The QR image honours an Accept that asks for SVG.
    let code = "ABCD-EFGH-JKMNPQRM";
    let valid = (0..32)
        .map(|i| {
            format!(
                "{}{}",
                &code[..17],
                "0123456789ABCDEFGHJKMNPQRSTVWXYZ".as_bytes()[i] as char
            )
        })
        .find(|c| s.get(&format!("/v2/claim_codes/{c}/qrcode"), &[]).status == 200)
        .expect("one check character fits");
    let r = s.get(
        &format!("/v2/claim_codes/{valid}/qrcode"),
        &h(&[("Accept", "image/svg+xml")]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("Content-Type"), Some("image/svg+xml"));
    // Reads ignore Idempotency-Key, even an invalid one: a list read twice
    // under one key shows what changed in between rather than a replay.
    let m = s.merchant("Keyed");
    let list = format!("/v2/merchants/{}/locations", m.id);
    let keyed = |k: &str| {
        let mut v = m.headers();
        v.push(("Idempotency-Key".into(), k.into()));
        v
    };
    let r = expect(s.get(&list, &keyed("")), 200);
    assert_eq!(r.body["meta"]["total_count"], 0, "{}", r.text);
    let r = expect(s.get(&list, &keyed("k1")), 200);
    assert_eq!(r.body["meta"]["total_count"], 0, "{}", r.text);
    create_location(&s, &m, "Between the reads");
    let r = expect(s.get(&list, &keyed("k1")), 200);
    assert_eq!(r.body["meta"]["total_count"], 1, "{}", r.text);
    assert_eq!(r.header("Idempotent-Replayed"), None);
    // A change with the key on it is keyed; an empty key is refused.
    let r = expect_error(
        s.post("/v2/locations", &keyed(""), location_body("Empty key")),
        400,
        "Bad Request",
    );
    assert_eq!(
        r.error_details(),
        "Idempotency-Key must be 1 to 255 characters"
    );
    let r = expect(s.get(&list, &m.headers()), 200);
    assert_eq!(r.body["meta"]["total_count"], 1, "{}", r.text);
    // A 204 carries no Content-Type.
    let u = s.user("ann@example.com");
    let r = s.delete("/v2/tokens", &u.headers());
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Content-Type"), None);
}

#[test]
fn revoked_credentials_stop_working_at_once() {
    // One worker, so the second request meets the first one's cached answer.
    let s = Server::start_with(&["--threads", "1"], &[]);
    let m = s.merchant("Shop");
    let path = format!("/v2/merchants/{}/certificates", m.id);
    assert_eq!(s.get(&path, &m.headers()).status, 200);
    assert_eq!(s.get(&path, &m.headers()).status, 200);
    let out = s.cli(&["merchant", "key", "revoke", &m.key]);
    assert!(out.status.success());
    assert_eq!(s.get(&path, &m.headers()).status, 401);
    let u = s.user("ann@example.com");
    let me = format!("/v2/users/{}", u.id);
    assert_eq!(s.get(&me, &u.headers()).status, 200);
    assert_eq!(s.delete("/v2/tokens", &u.headers()).status, 204);
    assert_eq!(s.get(&me, &u.headers()).status, 401);
}

#[test]
fn idempotency_marks_replays_stores_refusals_expires_and_scopes_by_ip() {
    let s = Server::start();
    let tickets = |s: &Server| count(s, "SELECT COUNT(*) FROM support_tickets", &[]);
    let body = json!({"name": "Ada", "email": "ada@example.com", "message": "Help"});
    let key = h(&[("Idempotency-Key", "replayed-1")]);
    // Only a replay says so.
    let first = expect(s.post("/v2/support_tickets", &key, body.clone()), 201);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let again = expect(s.post("/v2/support_tickets", &key, body.clone()), 201);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(tickets(&s), 1);

    // A refusal made by the work itself is stored and replayed like a
    // success (here: more than the certificate's value).
    let shop = common::shop(&s, "Keyed", true);
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id}}),
    );
    let code = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut mk = shop.merchant.headers();
    mk.push(("Idempotency-Key".into(), "too-much".into()));
    let path = format!("/v2/claim_codes/{code}/redemptions");
    let too_much = json!({"amount_to_redeem_cents": 10001});
    let refused = expect_error(s.post(&path, &mk, too_much.clone()), 400, "Bad Request");
    assert_eq!(refused.header("Idempotent-Replayed"), None);
    let replayed = expect_error(s.post(&path, &mk, too_much), 400, "Bad Request");
    assert_eq!(replayed.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(replayed.text, refused.text);
    assert!(
        refused.error_details().starts_with("The amount exceeds"),
        "{}",
        refused.text
    );

    // After 24 hours the key is forgotten: the same request is new work.
    s.sql()
        .execute(
            "UPDATE idempotency SET created_at = created_at - 86401 WHERE key = 'replayed-1'",
            [],
        )
        .unwrap();
    let later = expect(s.post("/v2/support_tickets", &key, body.clone()), 201);
    assert_eq!(later.header("Idempotent-Replayed"), None);
    assert_ne!(later.text, first.text);
    assert_eq!(tickets(&s), 2);

    // Anonymous callers are told apart by IP: the same key and body from
    // another address is another caller's first request.
    // (Another sender: tickets have a small budget per address.)
    let raw = json!({"name": "Grace", "email": "grace@example.com", "message": "Help"}).to_string();
    let send = |ip: &str| {
        common::request_from(
            ip,
            &s.base,
            "POST",
            "/v2/support_tickets",
            &[("Idempotency-Key", "shared-key")],
            &raw,
        )
    };
    let one = send("127.0.0.1");
    let two = send("127.0.0.2");
    assert_eq!(
        (one.status, two.status),
        (201, 201),
        "{} {}",
        one.body,
        two.body
    );
    assert_eq!(two.header("Idempotent-Replayed"), None);
    assert_ne!(one.body, two.body);
    let one_again = send("127.0.0.1");
    assert_eq!(one_again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(one_again.body, one.body);
    assert_eq!(tickets(&s), 4);
}
