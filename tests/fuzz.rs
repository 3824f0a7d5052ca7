//! Hostile input: random and malformed methods, paths, query strings,
//! headers and bodies against every route. Never a 5xx, never a dropped
//! connection, and every error in the contract's format.

mod common;

use common::{Merchant, Server, User};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

struct World {
    server: Server,
    merchant: Merchant,
    user: User,
    ids: Vec<String>,
    codes: Vec<String>,
}

fn world() -> World {
    let server = Server::start_with(&["--rate-limits", "false"], &[]);
    let shop = common::shop(&server, "Fuzz Shop", true);
    let user = server.user("fuzz@example.com");
    let r = server.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id, "quantity": 5, "recipient_email": user.email}}),
    );
    let certs = r.body["certificates"].as_array().unwrap().clone();
    let mut ids = vec![
        shop.location_id.clone(),
        shop.product_id.clone(),
        shop.option_id.clone(),
        shop.merchant.id.clone(),
        user.id.clone(),
    ];
    ids.extend(certs.iter().map(|c| c["id"].as_str().unwrap().to_string()));
    let codes = certs
        .iter()
        .map(|c| c["claim_code"].as_str().unwrap().to_string())
        .collect();
    World {
        server,
        merchant: shop.merchant,
        user,
        ids,
        codes,
    }
}

const TEMPLATES: &[&str] = &[
    "/healthz",
    "/v2/users",
    "/v2/users/{}",
    "/v2/users/{}/certificates",
    "/v2/users/{}/redemptions",
    "/v2/users/{}/gifts",
    "/v2/users/{}/sent_gifts",
    "/v2/user/{}/certificates",
    "/v2/tokens",
    "/v2/passwords",
    "/v2/support_tickets",
    "/v2/merchants/{}",
    "/v2/merchants/{}/locations",
    "/v2/merchants/{}/products",
    "/v2/merchants/{}/certificates",
    "/v2/merchants/{}/redemptions",
    "/v2/locations",
    "/v2/locations/{}",
    "/v2/products",
    "/v2/products/{}",
    "/v2/products/{}/locations",
    "/v2/products/{}/product_options",
    "/v2/product_options/{}",
    "/v2/certificates",
    "/v2/certificates/{}",
    "/v2/certficates/{}",
    "/v2/certificates/{}/certificates",
    "/v2/certificates/{}/redemptions",
    "/v2/certificates/{}/gifts",
    "/v2/certificates/{}/cancellations",
    "/v2/certificates/{}/returns",
    "/v2/claim_codes/{}",
    "/v2/claim_code/{}",
    "/v2/claim_codes/{}/redemptions",
    "/v2/claim_codes/{}/qrcode",
    "/v2/redemptions",
    "/v2/redemptions/{}",
    "/v2/redemptions/{}/reversals",
    "/v2/gifts",
    "/v2/gifts/{}",
    "/v2/{}",
    "/{}",
];

#[derive(Debug, Clone)]
enum Param {
    Known(usize),
    Code(usize),
    Raw(String),
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        (0usize..20).prop_map(Param::Known),
        (0usize..5).prop_map(Param::Code),
        "[a-zA-Z0-9_-]{0,30}".prop_map(Param::Raw),
        Just(Param::Raw("%00%ff%ZZ%".into())),
        Just(Param::Raw("..%2F..%2Fetc%2Fpasswd".into())),
        Just(Param::Raw("%F0%9F%8E%81".into())),
        Just(Param::Raw("a".repeat(3000))),
        "[0-9A-Za-z -]{14,20}".prop_map(|s| Param::Raw(s.replace(' ', "%20"))),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!("4000")),
        Just(json!("-1")),
        Just(json!("1e3")),
        Just(json!("Ann\r\nBcc: x@y.z")),
        Just(json!("2027-01-01T00:00:00Z")),
        Just(json!("2099-12-31")),
        Just(json!("a@b.co")),
        "\\PC{0,40}".prop_map(Value::String),
        Just(json!("x".repeat(20_000))),
    ]
}

fn body_value() -> impl Strategy<Value = Value> {
    let fields = prop::collection::vec(
        (
            prop_oneof![
                Just("email"),
                Just("password"),
                Just("password_confirmation"),
                Just("name"),
                Just("message"),
                Just("address1"),
                Just("city"),
                Just("type"),
                Just("tagline"),
                Just("face_value_cents"),
                Just("price_cents"),
                Just("product_option_id"),
                Just("quantity"),
                Just("recipient_email"),
                Just("expires_at"),
                Just("amount_to_redeem_cents"),
                Just("redemption_location_id"),
                Just("new_face_value_cents"),
                Just("sender_name"),
                Just("send_date"),
                Just("marked_as_printed"),
                Just("redemption_location_ids"),
                Just("photos"),
                Just("terms"),
                Just("count"),
                Just("reset_token"),
                Just("lat"),
                Just("currency"),
            ],
            prop_oneof![
                scalar(),
                prop::collection::vec(scalar(), 0..3).prop_map(Value::Array)
            ],
        ),
        0..6,
    );
    (
        prop_oneof![
            Just(None),
            Just(Some("user")),
            Just(Some("location")),
            Just(Some("product")),
            Just(Some("product_option")),
            Just(Some("certificate")),
            Just(Some("gift")),
            Just(Some("redemption")),
            Just(Some("support_ticket")),
        ],
        fields,
    )
        .prop_map(|(root, fields)| {
            let mut obj = serde_json::Map::new();
            for (k, v) in fields {
                obj.insert(k.to_string(), v);
            }
            match root {
                Some(r) => json!({ r: obj }),
                None => Value::Object(obj),
            }
        })
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    template: usize,
    param: Param,
    query: String,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    auth: u8,
    idem: Option<String>,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("DELETE"),
            Just("PATCH"),
            Just("HEAD"),
            Just("OPTIONS")
        ],
        0..TEMPLATES.len(),
        param(),
        prop_oneof![
            Just(String::new()),
            "\\?[a-z_=&%0-9]{0,40}",
            Just("?page=-1&per_page=1000".to_string()),
            Just("?status=gifted&list_type=available&product_type=Deal".to_string())
        ],
        prop_oneof![
            Just(None),
            Just(Some("application/json")),
            Just(Some("text/plain")),
            Just(Some("application/json; charset=latin1")),
            Just(Some("application/vnd.api+json"))
        ],
        prop_oneof![
            Just(None),
            Just(Some("*/*")),
            Just(Some("text/html")),
            Just(Some("application/json;q=0"))
        ],
        0u8..6,
        prop_oneof![Just(None), "[ -~]{0,300}".prop_map(Some)],
        prop_oneof![
            body_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            prop::collection::vec(any::<u8>(), 0..200),
            Just(b"{\"user\":".to_vec()),
            Just(b"[1,2,3]".to_vec()),
            Just(Vec::new()),
        ],
    )
        .prop_map(
            |(method, template, param, query, content_type, accept, auth, idem, body)| Req {
                method,
                template,
                param,
                query,
                content_type,
                accept,
                auth,
                idem,
                body,
            },
        )
}

fn send(w: &World, r: &Req) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let p = match &r.param {
        Param::Known(i) => w.ids.get(*i).cloned().unwrap_or_else(|| "unknown".into()),
        Param::Code(i) => w.codes[*i % w.codes.len()].clone(),
        Param::Raw(s) => s.clone(),
    };
    let path = TEMPLATES[r.template].replace("{}", &p);
    let mut head = format!(
        "{} {}{} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n",
        r.method, path, r.query
    );
    if let Some(ct) = r.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(a) = r.accept {
        head.push_str(&format!("Accept: {a}\r\n"));
    }
    match r.auth {
        1 => head.push_str(&format!(
            "X-User-Email: {}\r\nX-User-Token: {}\r\n",
            w.user.email, w.user.token
        )),
        2 => head.push_str(&format!(
            "X-Merchant-Key: {}\r\nX-Merchant-Secret: {}\r\n",
            w.merchant.key, w.merchant.secret
        )),
        3 => head.push_str("X-User-Email: nobody@example.com\r\nX-User-Token: nope\r\n"),
        4 => head.push_str(&format!(
            "X-User-Email: {}\r\nX-Merchant-Key: {}\r\n",
            w.user.email, w.merchant.key
        )),
        _ => {}
    }
    if let Some(k) = &r.idem {
        head.push_str(&format!("Idempotency-Key: {}\r\n", k.trim()));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", r.body.len()));
    let addr = w.server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&r.body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the server answers");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no full answer to {r:?}: {text:?}"));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (status, headers, body.as_bytes().to_vec())
}

/// Checks one answer: no 5xx, JSON in the contract's error format, and the
/// rate-limit headers.
fn check_answer(
    r: &Req,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), TestCaseError> {
    prop_assert!(
        status < 500,
        "{} for {:?}: {}",
        status,
        r,
        String::from_utf8_lossy(body)
    );
    let ct = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if r.method != "HEAD" && status != 204 && !ct.starts_with("image/svg+xml") {
        prop_assert_eq!(ct, "application/json; charset=utf-8", "{:?}", r);
        let v: Value =
            serde_json::from_slice(body).map_err(|e| TestCaseError::fail(format!("{e}: {r:?}")))?;
        if status >= 400 {
            let errors = v["errors"]
                .as_array()
                .ok_or_else(|| TestCaseError::fail(format!("no errors[]: {v}")))?;
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert_eq!(&e["code"], &json!(status.to_string()));
                prop_assert!(e["title"].is_string() && e["details"].is_string());
            }
        }
    }
    prop_assert!(
        headers.iter().any(|(k, _)| k == "ratelimit-limit"),
        "rate-limit headers on every answer"
    );
    Ok(())
}

#[test]
fn every_route_survives_hostile_input() {
    let w = world();
    let config = ProptestConfig {
        cases: 600,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&request(), |r| {
        let (status, headers, body) = send(&w, &r);
        check_answer(&r, status, &headers, &body)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The books still balance after all of it.
    w.server.check_passes();
}

// ---------------------------------------------------------------------
// The request-head parser and framing, fed raw bytes on a socket.

/// A line ending, mostly the right one.
fn eol() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r"), 1 => Just("")]
}

fn request_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET /healthz HTTP/1.1".to_vec()),
        Just(b"POST /v2/support_tickets HTTP/1.1".to_vec()),
        Just(b"POST /v2/users HTTP/1.0".to_vec()),
        (
            "[A-Z]{0,8}|[ -~]{0,8}",
            "/[ -~]{0,40}|[ -~]{0,20}",
            prop_oneof![
                Just("HTTP/1.1"),
                Just("HTTP/1.0"),
                Just("HTTP/2.0"),
                Just("HTTP/0.9"),
                Just("http/1.1"),
                Just("HTTP/1.1 "),
                Just("")
            ]
        )
            .prop_map(|(m, p, v)| format!("{m} {p} {v}").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn header_line() -> impl Strategy<Value = Vec<u8>> {
    let length = prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("5, 5".to_string()),
        Just(String::new()),
        Just(" 7 ".to_string()),
        Just("0x10".to_string()),
    ];
    prop_oneof![
        length.prop_map(|v| format!("Content-Length: {v}").into_bytes()),
        prop_oneof![
            Just("chunked"),
            Just("Chunked"),
            Just("gzip"),
            Just("chunked, chunked"),
            Just("gzip, chunked"),
            Just("identity"),
            Just("")
        ]
        .prop_map(|v| format!("Transfer-Encoding: {v}").into_bytes()),
        prop_oneof![Just("close"), Just("keep-alive"), Just("upgrade"), Just("")]
            .prop_map(|v| format!("Connection: {v}").into_bytes()),
        prop_oneof![Just("100-continue"), Just("nope")]
            .prop_map(|v| format!("Expect: {v}").into_bytes()),
        Just(b"Content-Type: application/json".to_vec()),
        Just(b" folded".to_vec()),
        Just(b"Content-Length : 3".to_vec()),
        ("[!-~]{0,12}", "[ -~]{0,30}").prop_map(|(k, v)| format!("{k}: {v}").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(br#"{"name":"A","email":"a@b.co","message":"m"}"#.to_vec()),
        Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        Just(b"ffffffffffffffff\r\nx".to_vec()),
        Just(b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A request, perhaps malformed, perhaps followed by a well-formed one.
fn raw_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(eol(), 10),
        request_line(),
        prop::collection::vec(header_line(), 0..8),
        body(),
        any::<bool>(),
    )
        .prop_map(|(eols, line, headers, body, pipelined)| {
            let mut raw = line;
            raw.extend_from_slice(eols[0].as_bytes());
            for (i, h) in headers.iter().enumerate() {
                raw.extend_from_slice(h);
                raw.extend_from_slice(eols[1 + i].as_bytes());
            }
            raw.extend_from_slice(eols[9].as_bytes());
            raw.extend_from_slice(&body);
            if pipelined {
                raw.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            }
            raw
        })
}

/// Sends `raw`, closes the sending side, and reads until the server closes
/// (at most 5 s): the statuses answered, or why the server did not close.
fn send_raw(addr: &str, raw: &[u8]) -> Result<Vec<u16>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(raw);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(format!("no end within 5 s ({e}); got {got:?}")),
    }
    let text = String::from_utf8_lossy(&got);
    Ok(text
        .split("HTTP/1.")
        .skip(1)
        .filter_map(|r| r.get(2..5).and_then(|c| c.parse().ok()))
        .collect())
}

/// Whatever bytes arrive, the server answers below 500 or closes, never
/// hangs, never crashes, and answers a normal GET right after.
#[test]
fn raw_request_heads_never_break_the_server() {
    let mut server = Server::start_with(
        &["--rate-limits", "false", "--client-timeout-secs", "2"],
        &[],
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let config = ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&raw_request(), |raw| {
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let statuses =
            send_raw(&addr, &raw).map_err(|e| TestCaseError::fail(format!("{e}: {shown:?}")))?;
        prop_assert!(
            statuses.iter().all(|&s| s < 500),
            "{statuses:?} for {shown:?}"
        );
        let after = send_raw(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .map_err(|e| TestCaseError::fail(format!("after {shown:?}: {e}")))?;
        prop_assert_eq!(after, vec![200], "after {:?}", shown);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", server.log());
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
