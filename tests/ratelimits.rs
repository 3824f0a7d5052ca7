//! Rate limits (see docs/reference.md, Rate limits): headers on every answer,
//! 429 with Retry-After at the budget, and the small budgets for failed logins,
//! password resets and claim-code misses, per client IP and per target.

mod common;

use common::Server;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

fn num(r: &common::Resp, name: &str) -> i64 {
    r.header(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", r.headers))
        .parse()
        .unwrap()
}

/// A request from another loopback address (127.0.0.2), so the server sees
/// a different client IP. Returns the status line's code.
fn status_from(ip: &str, base: &str, method: &str, path: &str, body: &str) -> u16 {
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{ip}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn headers_count_down_and_429_arrives_at_the_budget() {
    let s = Server::start_with(&["--rate-limit-ip", "5", "--rate-limit-merchant", "3"], &[]);
    let mut last = i64::MAX;
    for i in 0..5 {
        let r = s.get("/healthz", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(num(&r, "RateLimit-Limit"), 5);
        let remaining = num(&r, "RateLimit-Remaining");
        assert_eq!(remaining, 4 - i);
        assert!(remaining < last);
        last = remaining;
        let reset = num(&r, "RateLimit-Reset");
        assert!((0..=60).contains(&reset));
    }
    let r = s.get("/healthz", &[]);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "429");
    assert_eq!(num(&r, "RateLimit-Remaining"), 0);
    let retry = num(&r, "Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!((retry - num(&r, "RateLimit-Reset")).abs() <= 1);
    // Errors (here a 404) carry the headers too, and another client IP has
    // its own budget.
    assert_eq!(s.get("/nowhere", &[]).header("RateLimit-Limit"), Some("5"));
    assert_eq!(
        status_from("127.0.0.2", &s.base, "GET", "/healthz", ""),
        200
    );
    // A merchant's budget is its own.
    let m = s.merchant("Shop");
    for i in 0..3 {
        let r = s.get(&format!("/v2/merchants/{}/locations", m.id), &m.headers());
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
        assert_eq!(num(&r, "RateLimit-Limit"), 3);
    }
    assert_eq!(
        s.get(&format!("/v2/merchants/{}/locations", m.id), &m.headers())
            .status,
        429
    );
}

#[test]
fn a_users_budget_is_its_own() {
    let s = Server::start_with(&["--rate-limit-user", "3"], &[]);
    let ann = s.user("ann@example.com");
    let bob = s.user("bob@example.com");
    let me = |u: &common::User| s.get(&format!("/v2/users/{}", u.id), &u.headers());
    for i in 0..3 {
        let r = me(&ann);
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
        assert_eq!(num(&r, "RateLimit-Limit"), 3);
        assert_eq!(num(&r, "RateLimit-Remaining"), 2 - i);
    }
    let r = me(&ann);
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(num(&r, "Retry-After") > 0);
    // Same IP, another user: a fresh budget.
    let r = me(&bob);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(num(&r, "RateLimit-Remaining"), 2);
}

#[test]
fn rate_limits_can_be_switched_off() {
    let s = Server::start_with(
        &[
            "--rate-limit-ip",
            "2",
            "--rate-limit-user",
            "2",
            "--rate-limit-merchant",
            "2",
            "--rate-limits",
            "false",
        ],
        &[],
    );
    for _ in 0..5 {
        assert_eq!(s.get("/healthz", &[]).status, 200);
    }
    // Every budget is off, the small guessing budgets included: each loop
    // goes past the budget it would otherwise spend (10 failed logins per
    // account, 3 resets per address, 100 claim-code misses per caller).
    let ann = s.user("ann@example.com");
    for _ in 0..5 {
        let r = s.get(&format!("/v2/users/{}", ann.id), &ann.headers());
        assert_eq!(r.status, 200, "user budget: {}", r.text);
    }
    for _ in 0..12 {
        let r = s.post(
            "/v2/tokens",
            &[],
            json!({"user": {"email": ann.email, "password": "wrong password"}}),
        );
        assert_eq!(r.status, 401, "login budget: {}", r.text);
    }
    let r = s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": ann.email, "password": "password123"}}),
    );
    assert_eq!(r.status, 201, "login budget: {}", r.text);
    for _ in 0..5 {
        let r = s.post("/v2/passwords", &[], json!({"email": ann.email}));
        assert_eq!(r.status, 201, "reset budget: {}", r.text);
    }
    let shop = common::shop(&s, "Shop", true);
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id}}),
    );
    assert_eq!(r.status, 201, "merchant budget: {}", r.text);
    let real = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..105 {
        let r = s.get(
            &format!("/v2/claim_codes/{}", unknown_code(i)),
            &shop.merchant.headers(),
        );
        assert_eq!(r.status, 404, "claim-code budget, miss {i}: {}", r.text);
    }
    let r = s.get(&format!("/v2/claim_codes/{real}"), &shop.merchant.headers());
    assert_eq!(r.status, 200, "claim-code budget: {}", r.text);
}

#[test]
fn failed_logins_are_budgeted_per_account_and_per_ip() {
    let s = Server::start();
    s.user("ann@example.com");
    s.user("bob@example.com");
    let login = |email: &str, password: &str| {
        s.post(
            "/v2/tokens",
            &[],
            json!({"user": {"email": email, "password": password}}),
        )
    };
    // Ten failures on Ann's account: the eleventh attempt is refused, even
    // with the right password.
    for _ in 0..10 {
        assert_eq!(login("ann@example.com", "wrong password").status, 401);
    }
    let r = login("ann@example.com", "password123");
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(num(&r, "Retry-After") > 0);
    // Bob's account is a different target.
    assert_eq!(login("bob@example.com", "password123").status, 201);
    // Ten more failures from this IP (on other accounts) spend the IP's
    // budget of 20: now even Bob is refused from here...
    for i in 0..10 {
        assert_eq!(login(&format!("nobody{i}@example.com"), "x").status, 401);
    }
    assert_eq!(login("bob@example.com", "password123").status, 429);
    // ...but not from another IP.
    let body = r#"{"user":{"email":"bob@example.com","password":"password123"}}"#;
    assert_eq!(
        status_from("127.0.0.2", &s.base, "POST", "/v2/tokens", body),
        201
    );
}

#[test]
fn password_resets_are_budgeted_per_address_and_per_ip() {
    let s = Server::start();
    for _ in 0..3 {
        assert_eq!(
            s.post("/v2/passwords", &[], json!({"email": "ann@example.com"}))
                .status,
            201
        );
    }
    assert_eq!(
        s.post("/v2/passwords", &[], json!({"email": "ann@example.com"}))
            .status,
        429
    );
    let body = r#"{"email":"ann@example.com"}"#;
    assert_eq!(
        status_from("127.0.0.2", &s.base, "POST", "/v2/passwords", body),
        429,
        "per address"
    );
    for i in 0..7 {
        assert_eq!(
            s.post(
                "/v2/passwords",
                &[],
                json!({"email": format!("x{i}@example.com")})
            )
            .status,
            201
        );
    }
    assert_eq!(
        s.post("/v2/passwords", &[], json!({"email": "new@example.com"}))
            .status,
        429,
        "per IP"
    );
    assert_eq!(
        status_from(
            "127.0.0.2",
            &s.base,
            "POST",
            "/v2/passwords",
            r#"{"email":"new@example.com"}"#
        ),
        201
    );
}

/// A well-formed claim code (valid check character) that matches nothing.
fn unknown_code(i: u32) -> String {
    let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut payload: Vec<u8> = format!("{i:015}").into_bytes();
    for b in payload.iter_mut() {
        *b = alphabet[(*b - b'0') as usize + 10];
    }
    // Luhn mod 32 check character, as the server computes it.
    let mut sum = 0usize;
    let mut factor = 2;
    for &c in payload.iter().rev() {
        let v = alphabet.iter().position(|&a| a == c).unwrap();
        let addend = factor * v;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / 32 + addend % 32;
    }
    payload.push(alphabet[(32 - sum % 32) % 32]);
    String::from_utf8(payload).unwrap()
}

#[test]
fn claim_code_misses_are_budgeted_per_caller_and_per_ip() {
    let s = Server::start_with(&["--rate-limit-merchant", "0"], &[]);
    let shop = common::shop(&s, "Shop", true);
    let other = s.merchant("Other");
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id}}),
    );
    let real = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    // Typos are not charged: the check character catches them first.
    let typo = format!(
        "{}{}",
        if real.starts_with('A') { "B" } else { "A" },
        &real[1..]
    );
    for _ in 0..150 {
        assert_eq!(
            s.get(&format!("/v2/claim_codes/{typo}"), &shop.merchant.headers())
                .status,
            400
        );
    }
    for i in 0..100 {
        let r = s.get(
            &format!("/v2/claim_codes/{}", unknown_code(i)),
            &shop.merchant.headers(),
        );
        assert_eq!(r.status, 404, "miss {i}: {}", r.text);
    }
    // The caller's budget is spent: even its real code waits now.
    let r = s.get(&format!("/v2/claim_codes/{real}"), &shop.merchant.headers());
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(num(&r, "Retry-After") > 0);
    let r = s.post(
        &format!("/v2/claim_codes/{real}/redemptions"),
        &shop.merchant.headers(),
        json!({}),
    );
    assert_eq!(r.status, 429);
    // Another merchant from the same IP still has its own budget (100 more
    // misses fit in the IP's 200)...
    for i in 100..200 {
        assert_eq!(
            s.get(
                &format!("/v2/claim_codes/{}", unknown_code(i)),
                &other.headers()
            )
            .status,
            404
        );
    }
    // ...and then the IP's budget is spent for every caller.
    let ann = s.user("ann@example.com");
    let r = s.put(
        &format!("/v2/certificates/{real}"),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 429, "{}", r.text);
}

/// Runs `n` copies of `f` at once (released together) and returns their
/// statuses.
fn in_parallel(n: usize, f: impl Fn(usize) -> u16 + Sync) -> Vec<u16> {
    let gate = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (gate, f) = (&gate, &f);
                scope.spawn(move || {
                    gate.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[test]
fn parallel_login_guesses_cannot_overrun_the_account_budget() {
    let s = Server::start();
    s.user("ann@example.com");
    // 40 guesses at once from 40 loopback addresses (so only the account's
    // budget of 10 applies): the budget is taken before the password check,
    // so exactly 10 are checked (before: all 40 got a 401).
    let statuses = in_parallel(40, |i| {
        let body = format!(r#"{{"user":{{"email":"ann@example.com","password":"guess {i}"}}}}"#);
        status_from(
            &format!("127.0.0.{}", 2 + i),
            &s.base,
            "POST",
            "/v2/tokens",
            &body,
        )
    });
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 30, "{statuses:?}");
    // The right password waits too: the failures stay charged.
    let r = s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": "ann@example.com", "password": "password123"}}),
    );
    assert_eq!(r.status, 429, "{}", r.text);
}

#[test]
fn successful_logins_do_not_spend_the_budget() {
    let s = Server::start();
    s.user("ann@example.com");
    // Charged before the check, given back on success: 30 good logins in a
    // row leave the account's budget of 10 untouched.
    for i in 0..30 {
        let r = s.post(
            "/v2/tokens",
            &[],
            json!({"user": {"email": "ann@example.com", "password": "password123"}}),
        );
        assert_eq!(r.status, 201, "login {i}: {}", r.text);
    }
}

#[test]
fn a_refusal_by_a_small_budget_carries_that_budgets_headers() {
    let s = Server::start();
    let login = || {
        s.post(
            "/v2/tokens",
            &[],
            json!({"user": {"email": "ann@example.com", "password": "wrong"}}),
        )
    };
    for _ in 0..10 {
        let r = login();
        assert_eq!(r.status, 401);
        // Ordinary answers describe the general budget of the IP.
        assert_eq!(num(&r, "RateLimit-Limit"), 600);
    }
    let r = login();
    assert_eq!(r.status, 429, "{}", r.text);
    // Before: 600 / 589 / under 60, the IP's general budget.
    assert_eq!(
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("RateLimit-Limit"))
            .count(),
        1
    );
    assert_eq!(num(&r, "RateLimit-Limit"), 10);
    assert_eq!(num(&r, "RateLimit-Remaining"), 0);
    let reset = num(&r, "RateLimit-Reset");
    assert!((800..=900).contains(&reset), "reset {reset}");
    assert!((num(&r, "Retry-After") - reset).abs() <= 1);
    // Password reset requests: limit 3 per address, an hour.
    for _ in 0..3 {
        assert_eq!(
            s.post("/v2/passwords", &[], json!({"email": "bob@example.com"}))
                .status,
            201
        );
    }
    let r = s.post("/v2/passwords", &[], json!({"email": "bob@example.com"}));
    assert_eq!(r.status, 429);
    assert_eq!(num(&r, "RateLimit-Limit"), 3);
    assert_eq!(num(&r, "RateLimit-Remaining"), 0);
    assert!(num(&r, "RateLimit-Reset") > 3000);
}

#[test]
fn wrong_credentials_spend_the_ip_budget_and_get_429() {
    let s = Server::start_with(&["--rate-limit-ip", "20"], &[]);
    let m = s.merchant("Shop");
    let wrong = vec![
        ("X-Merchant-Key".to_string(), m.key.clone()),
        ("X-Merchant-Secret".to_string(), "guess".to_string()),
    ];
    let path = format!("/v2/merchants/{}/locations", m.id);
    for i in 0..20 {
        let r = s.get(&path, &wrong);
        assert_eq!(r.status, 401, "guess {i}: {}", r.text);
        assert_eq!(num(&r, "RateLimit-Remaining"), 19 - i);
    }
    // Before: 401 forever, with RateLimit-Remaining: 0.
    let r = s.get(&path, &wrong);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(num(&r, "RateLimit-Limit"), 20);
    assert_eq!(num(&r, "RateLimit-Remaining"), 0);
    assert!(num(&r, "Retry-After") >= 1);
    // A wrong user token is the same.
    let ann = vec![
        ("X-User-Email".to_string(), "ann@example.com".to_string()),
        ("X-User-Token".to_string(), "guess".to_string()),
    ];
    assert_eq!(s.get("/v2/users/self", &ann).status, 429);
    // The right credentials have the merchant's own budget.
    assert_eq!(s.get(&path, &m.headers()).status, 200);
    // Another IP is not affected.
    let r = common::request_from(
        "127.0.0.2",
        &s.base,
        "GET",
        &path,
        &[("X-Merchant-Key", &m.key), ("X-Merchant-Secret", "guess")],
        "",
    );
    assert_eq!(r.status, 401);
}

fn ticket(email: &str, message: &str) -> serde_json::Value {
    json!({"support_ticket": {"name": "Visit cheap-pills.example", "email": email, "message": message}})
}

#[test]
fn support_tickets_are_budgeted_per_address_and_per_ip() {
    let s = Server::start();
    // Three tickets naming one address an hour (before: 100 were accepted,
    // each mailing the stranger).
    for i in 0..3 {
        let r = s.post(
            "/v2/support_tickets",
            &[],
            ticket("victim@example.com", &format!("spam {i}")),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = s.post(
        "/v2/support_tickets",
        &[],
        ticket("Victim@Example.com", "spam"),
    );
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(num(&r, "RateLimit-Limit"), 3);
    assert_eq!(num(&r, "RateLimit-Remaining"), 0);
    assert!(num(&r, "RateLimit-Reset") > 3000);
    let body = ticket("victim@example.com", "spam").to_string();
    assert_eq!(
        common::request_from(
            "127.0.0.2",
            &s.base,
            "POST",
            "/v2/support_tickets",
            &[],
            &body
        )
        .status,
        429,
        "per address, from any IP"
    );
    // Ten tickets from one IP an hour, whatever the addresses.
    for i in 0..7 {
        let r = s.post(
            "/v2/support_tickets",
            &[],
            ticket(&format!("x{i}@example.com"), "hi"),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = s.post("/v2/support_tickets", &[], ticket("new@example.com", "hi"));
    assert_eq!(r.status, 429, "per IP: {}", r.text);
    assert_eq!(num(&r, "RateLimit-Limit"), 10);
    let body = ticket("new@example.com", "hi").to_string();
    assert_eq!(
        common::request_from(
            "127.0.0.2",
            &s.base,
            "POST",
            "/v2/support_tickets",
            &[],
            &body
        )
        .status,
        201
    );
    let queued: i64 = s
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'support_ticket' AND to_addr = 'victim@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(queued, 3);
}

#[test]
fn ticket_mail_quotes_the_text_only_to_the_senders_own_account() {
    let s = Server::start();
    let ann = s.user("ann@example.com");
    let mail_to = |addr: &str| -> Vec<String> {
        s.sql()
            .prepare("SELECT body_text FROM outbox WHERE kind = 'support_ticket' AND lower(to_addr) = ?1")
            .unwrap()
            .query_map([addr], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // Anonymous: the acknowledgement quotes neither the message nor the
    // name (before: both, to any address).
    let r = s.post(
        "/v2/support_tickets",
        &[],
        ticket("stranger@example.com", "BUY NOW at spam.example"),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let mails = mail_to("stranger@example.com");
    assert_eq!(mails.len(), 1);
    assert!(!mails[0].contains("BUY NOW"), "{}", mails[0]);
    assert!(!mails[0].contains("cheap-pills"), "{}", mails[0]);
    assert!(mails[0].starts_with("Hello,\n"), "{}", mails[0]);
    // The ticket itself keeps the text for the shop.
    assert_eq!(
        r.first("support_tickets")["message"],
        "BUY NOW at spam.example"
    );
    // Signed in, naming someone else: not quoted either.
    let r = s.post(
        "/v2/support_tickets",
        &ann.headers(),
        ticket("bob@example.com", "BUY NOW"),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(!mail_to("bob@example.com")[0].contains("BUY NOW"));
    // Signed in, naming the account's own address (any case): quoted.
    let r = s.post(
        "/v2/support_tickets",
        &ann.headers(),
        ticket("ANN@example.com", "My code\ndoes not work"),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let mails = mail_to("ann@example.com");
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("> My code\n> does not work"),
        "{}",
        mails[0]
    );
}
