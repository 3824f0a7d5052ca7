//! Authorization and idempotency over HTTP.
//!
//! The matrix test sets up two shops (A and B) and two users (the owner U
//! and a stranger V), gives U certificates of A in every interesting state,
//! then sends every certificate, gift, redemption, user and merchant
//! endpoint as V, as B and without credentials. Each call must answer
//! exactly 404 (someone else's resource, indistinguishable from one that
//! does not exist), 403 (the endpoint is for the other kind of account) or
//! 401, and the database must be byte-for-byte unchanged afterwards.
//!
//! The idempotency tests check `Idempotency-Key` (see docs/reference.md,
//! Idempotency): a repeat replays the first answer without doing the work
//! again, a different body is a 409, keys are scoped per principal, over-long
//! keys are refused, and eight concurrent repeats redeem once.

mod common;

use common::{code, id, shop, Merchant, Resp, Server, Shop, User};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Barrier;

type Headers = Vec<(String, String)>;

fn issue_body(option_id: &str, recipient: Option<&str>) -> Value {
    match recipient {
        Some(email) => {
            json!({"certificate": {"product_option_id": option_id, "recipient_email": email}})
        }
        None => json!({"certificate": {"product_option_id": option_id}}),
    }
}

/// Issues one certificate of `shop` (to `recipient` when given).
fn issue(s: &Server, shop: &Shop, recipient: Option<&str>) -> Value {
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        issue_body(&shop.option_id, recipient),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.first("certificates").clone()
}

fn gift_body(to: &str) -> Value {
    json!({"gift": {"sender_name": "Sender", "recipient_email": to, "message": "Enjoy"}})
}

/// The owner sends `cert` as a gift; returns the gift.
fn give(s: &Server, owner: &User, cert: &Value, to: &str) -> Value {
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(cert)),
        &owner.headers(),
        gift_body(to),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.first("gifts").clone()
}

/// The merchant redeems part of a certificate by claim code; returns the
/// redemption and the balance certificate.
fn redeem_part(s: &Server, m: &Merchant, cert: &Value, cents: i64) -> (Value, Value) {
    let r = s.post(
        &format!("/v2/claim_codes/{}/redemptions", code(cert)),
        &m.headers(),
        json!({ "amount_to_redeem_cents": cents }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let balance = r.body["linked"]["certificates"][0].clone();
    assert!(balance.is_object(), "no balance certificate: {}", r.text);
    (r.first("redemptions").clone(), balance)
}

/// Headers plus an `Idempotency-Key`.
fn keyed(h: &[(String, String)], key: &str) -> Headers {
    let mut h = h.to_vec();
    h.push(("Idempotency-Key".into(), key.into()));
    h
}

/// Every row of the money, mail, catalog, credential, ticket and
/// idempotency tables, as text, sorted: the whole state a forbidden call
/// could have touched.
fn snapshot(s: &Server) -> BTreeMap<&'static str, Vec<String>> {
    use rusqlite::types::ValueRef;
    let db = s.sql();
    let mut out = BTreeMap::new();
    for (table, columns) in [
        ("certificates", "*"),
        ("gifts", "*"),
        ("redemptions", "*"),
        ("ledger", "*"),
        ("outbox", "*"),
        ("merchants", "*"),
        ("locations", "*"),
        ("products", "*"),
        ("product_locations", "*"),
        ("product_options", "*"),
        ("users", "*"),
        ("idempotency", "*"),
        // A token's last use moves with every call made with it, refused
        // or not (idle expiry, src/web/auth.rs); the rest must not.
        ("user_tokens", "digest, user_id, created_at"),
        ("merchant_keys", "*"),
        ("support_tickets", "*"),
        ("password_resets", "*"),
    ] {
        let mut stmt = db
            .prepare(&format!("SELECT {columns} FROM {table}"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt
            .query_map([], |r| {
                let mut cells = Vec::with_capacity(n);
                for i in 0..n {
                    cells.push(match r.get_ref(i)? {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Real(v) => v.to_string(),
                        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                        ValueRef::Blob(b) => format!("blob:{:?}", String::from_utf8_lossy(b)),
                    });
                }
                Ok(cells.join(" | "))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

fn count(s: &Server, sql: &str, param: &str) -> i64 {
    s.sql().query_row(sql, [param], |r| r.get(0)).unwrap()
}

/// A well-formed claim code (valid check character) that no certificate
/// has: the Luhn mod 32 of `src/domain/claim_code.rs`, recomputed here.
fn ghost_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let payload = b"GH0ST0ZZZZ0GH0S";
    let mut sum = 0usize;
    let mut factor = 2;
    for &c in payload.iter().rev() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap();
        let mut addend = factor * v;
        factor = if factor == 2 { 1 } else { 2 };
        addend = addend / 32 + addend % 32;
        sum += addend;
    }
    let mut code = payload.to_vec();
    code.push(ALPHABET[(32 - sum % 32) % 32]);
    let code = String::from_utf8(code).unwrap();
    format!("{}-{}-{}", &code[..4], &code[4..8], &code[8..])
}

/// A well-formed id (22 URL-safe base64 characters) nothing has.
const GHOST_ID: &str = "Gh0stGh0stGh0stGh0st0A";

/// One forbidden call, and the same call aimed at something that does not
/// exist: the two answers must be identical, so the status reveals nothing.
struct Call {
    who: &'static str,
    headers: Headers,
    method: &'static str,
    path: String,
    ghost_path: String,
    body: Option<Value>,
    ghost_body: Option<Value>,
    want: u16,
}

#[derive(Default)]
struct Calls(Vec<Call>);

impl Calls {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        who: &'static str,
        headers: &Headers,
        method: &'static str,
        path: String,
        ghost_path: String,
        body: Option<Value>,
        want: u16,
    ) {
        self.0.push(Call {
            who,
            headers: headers.clone(),
            method,
            path,
            ghost_path,
            ghost_body: body.clone(),
            body,
            want,
        });
    }
}

#[test]
fn strangers_and_other_merchants_cannot_see_or_touch_anything() {
    // About 1,000 calls, many with wrong credentials, which spend the
    // client IP's budget (600 a minute by default): not what this tests.
    let s = Server::start_with(&["--rate-limit-ip", "0"], &[]);
    let a = shop(&s, "Shop A", true);
    let b = shop(&s, "Shop B", true);
    let u = s.user("owner@example.com");
    let v = s.user("stranger@example.com");
    let (ah, bh, uh, vh) = (
        a.merchant.headers(),
        b.merchant.headers(),
        u.headers(),
        v.headers(),
    );

    // U's certificates of A in every state: assigned, gifted (with a gift
    // from U), redeemed (with a redemption and a balance certificate), and
    // a pending one of A's that nobody holds yet.
    let c_assigned = issue(&s, &a, Some(&u.email));
    let c_gifted = issue(&s, &a, Some(&u.email));
    let gift = give(&s, &u, &c_gifted, "friend@example.com");
    let c_redeemed = issue(&s, &a, Some(&u.email));
    let (redemption, c_balance) = redeem_part(&s, &a.merchant, &c_redeemed, 4000);
    assert_eq!(c_balance["links"]["user"], json!(u.id));
    let c_pending = issue(&s, &a, None);
    assert_eq!(c_pending["status"], "pending");
    let c_redeemed = s
        .get(&format!("/v2/certificates/{}", id(&c_redeemed)), &uh)
        .first("certificates")
        .clone();
    assert_eq!(c_redeemed["status"], "redeemed");
    let u_certs = [&c_assigned, &c_gifted, &c_redeemed, &c_balance];
    let all_certs = [&c_assigned, &c_gifted, &c_redeemed, &c_balance, &c_pending];

    // V and B have their own business, so their lists are not trivially
    // empty: a B certificate of V's partly redeemed, one V gave away, and a
    // pending one of B's.
    let v_cert = issue(&s, &b, Some(&v.email));
    let (v_redemption, v_balance) = redeem_part(&s, &b.merchant, &v_cert, 2500);
    let v_gifted = issue(&s, &b, Some(&v.email));
    let v_gift = give(&s, &v, &v_gifted, "pal@example.com");
    let b_pending = issue(&s, &b, None);

    // Positive controls: the owner and the issuing merchant do see it all.
    for c in u_certs {
        let path = format!("/v2/certificates/{}", id(c));
        assert_eq!(s.get(&path, &uh).status, 200, "U on {path}");
    }
    for c in all_certs {
        let path = format!("/v2/certificates/{}", id(c));
        assert_eq!(s.get(&path, &ah).status, 200, "A on {path}");
        let path = format!("/v2/claim_codes/{}", code(c));
        assert_eq!(s.get(&path, &ah).status, 200, "A on {path}");
    }
    for h in [&uh, &ah] {
        let path = format!("/v2/redemptions/{}", id(&redemption));
        assert_eq!(s.get(&path, h).status, 200, "{path}");
        let path = format!("/v2/gifts/{}", id(&gift));
        assert_eq!(s.get(&path, h).status, 200, "{path}");
        let path = format!("/v2/users/{}", u.id);
        assert_eq!(s.get(&path, h).status, 200, "{path}");
    }
    for sub in ["certificates", "redemptions", "gifts", "sent_gifts"] {
        let path = format!("/v2/users/{}/{sub}", u.id);
        assert_eq!(s.get(&path, &uh).status, 200, "{path}");
    }
    for sub in ["certificates", "redemptions"] {
        let path = format!("/v2/merchants/{}/{sub}", a.merchant.id);
        assert_eq!(s.get(&path, &ah).status, 200, "{path}");
    }

    // The round of forbidden calls.
    let ghost_code = ghost_code();
    let printed = json!({"certificate": {"marked_as_printed": true}});
    let split = json!({"new_face_value_cents": 1000});
    let redeem = json!({"amount_to_redeem_cents": 1000});
    let gift_to = gift_body("thief@example.com");
    let empty = json!({});
    let public: Headers = Vec::new();
    // Forged credentials: U's email with V's token, A's key with B's secret.
    let forged_user: Headers = vec![
        ("X-User-Email".into(), u.email.clone()),
        ("X-User-Token".into(), v.token.clone()),
    ];
    let forged_merchant: Headers = vec![
        ("X-Merchant-Key".into(), a.merchant.key.clone()),
        ("X-Merchant-Secret".into(), b.merchant.secret.clone()),
    ];
    // Even the rightful owners' credentials together are a 400 (see
    // docs/reference.md, Authentication).
    let mixed: Headers = uh.iter().chain(ah.iter()).cloned().collect();
    // (who, headers, kind of caller)
    let callers: [(&'static str, &Headers, &str); 6] = [
        ("stranger V", &vh, "user"),
        ("merchant B", &bh, "merchant"),
        ("public", &public, "anonymous"),
        ("U's email with V's token", &forged_user, "anonymous"),
        ("A's key with B's secret", &forged_merchant, "anonymous"),
        ("U and A together", &mixed, "mixed"),
    ];
    let mut calls = Calls::default();
    for &(who, h, kind) in &callers {
        // 404 for the endpoint's own kind of account (someone else's
        // resource), 403 for the other kind, 401 without valid credentials,
        // 400 for both kinds at once.
        let expect = |endpoint: &str, hidden: u16| match kind {
            "anonymous" => 401,
            "mixed" => 400,
            k if endpoint == "both" || endpoint == k => hidden,
            _ => 403,
        };
        let for_users = |hidden: u16| expect("user", hidden);
        let for_merchants = |hidden: u16| expect("merchant", hidden);
        let for_both = |hidden: u16| expect("both", hidden);

        for c in all_certs {
            let cid = id(c);
            let p = |suffix: &str| {
                (
                    format!("/v2/certificates/{cid}{suffix}"),
                    format!("/v2/certificates/{GHOST_ID}{suffix}"),
                )
            };
            let (path, ghost) = p("");
            calls.add(who, h, "GET", path, ghost, None, for_both(404));
            let (path, ghost) = p("");
            calls.add(
                who,
                h,
                "PUT",
                path,
                ghost,
                Some(printed.clone()),
                for_users(404),
            );
            let (path, ghost) = p("/certificates");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(split.clone()),
                for_users(404),
            );
            let (path, ghost) = p("/redemptions");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(redeem.clone()),
                for_both(404),
            );
            // The original's misspelling is routed to the same handler.
            calls.add(
                who,
                h,
                "POST",
                format!("/v2/certficates/{cid}/redemptions"),
                format!("/v2/certficates/{GHOST_ID}/redemptions"),
                Some(redeem.clone()),
                for_both(404),
            );
            let (path, ghost) = p("/gifts");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(gift_to.clone()),
                for_users(404),
            );
            let (path, ghost) = p("/cancellations");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(empty.clone()),
                for_merchants(404),
            );
            let (path, ghost) = p("/returns");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(empty.clone()),
                for_merchants(404),
            );

            let cc = code(c);
            let p = |prefix: &str, suffix: &str| {
                (
                    format!("/v2/{prefix}/{cc}{suffix}"),
                    format!("/v2/{prefix}/{ghost_code}{suffix}"),
                )
            };
            let (path, ghost) = p("claim_codes", "");
            calls.add(who, h, "GET", path, ghost, None, for_merchants(404));
            let (path, ghost) = p("claim_code", "");
            calls.add(who, h, "GET", path, ghost, None, for_merchants(404));
            let (path, ghost) = p("claim_codes", "/redemptions");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(redeem.clone()),
                for_merchants(404),
            );
            let (path, ghost) = p("claim_codes", "/redemptions");
            calls.add(
                who,
                h,
                "POST",
                path,
                ghost,
                Some(empty.clone()),
                for_merchants(404),
            );
            // Claiming by code is for users (and legitimately works for any
            // user holding the code, so only the other callers try it).
            if kind != "user" {
                let (path, ghost) = p("certificates", "");
                calls.add(
                    who,
                    h,
                    "PUT",
                    path,
                    ghost,
                    Some(empty.clone()),
                    for_users(404),
                );
            }
        }

        let rid = id(&redemption);
        calls.add(
            who,
            h,
            "GET",
            format!("/v2/redemptions/{rid}"),
            format!("/v2/redemptions/{GHOST_ID}"),
            None,
            for_both(404),
        );
        calls.add(
            who,
            h,
            "POST",
            format!("/v2/redemptions/{rid}/reversals"),
            format!("/v2/redemptions/{GHOST_ID}/reversals"),
            Some(empty.clone()),
            for_merchants(404),
        );

        let gid = id(&gift);
        calls.add(
            who,
            h,
            "GET",
            format!("/v2/gifts/{gid}"),
            format!("/v2/gifts/{GHOST_ID}"),
            None,
            for_both(404),
        );
        calls.add(
            who,
            h,
            "DELETE",
            format!("/v2/gifts/{gid}"),
            format!("/v2/gifts/{GHOST_ID}"),
            None,
            for_users(404),
        );

        calls.add(
            who,
            h,
            "GET",
            format!("/v2/users/{}", u.id),
            format!("/v2/users/{GHOST_ID}"),
            None,
            for_both(404),
        );
        for prefix in ["users", "user"] {
            for sub in ["certificates", "redemptions", "gifts", "sent_gifts"] {
                calls.add(
                    who,
                    h,
                    "GET",
                    format!("/v2/{prefix}/{}/{sub}", u.id),
                    format!("/v2/{prefix}/{GHOST_ID}/{sub}"),
                    None,
                    for_users(404),
                );
            }
        }
        for prefix in ["merchants", "merchant"] {
            for sub in ["certificates", "redemptions"] {
                calls.add(
                    who,
                    h,
                    "GET",
                    format!("/v2/{prefix}/{}/{sub}", a.merchant.id),
                    format!("/v2/{prefix}/{GHOST_ID}/{sub}"),
                    None,
                    for_merchants(404),
                );
            }
        }

        // A's catalog: only A manages it.
        calls.add(
            who,
            h,
            "PUT",
            format!("/v2/locations/{}", a.location_id),
            format!("/v2/locations/{GHOST_ID}"),
            Some(json!({"location": {"name": "Hijacked"}})),
            for_merchants(404),
        );
        calls.add(
            who,
            h,
            "PUT",
            format!("/v2/products/{}", a.product_id),
            format!("/v2/products/{GHOST_ID}"),
            Some(json!({"product": {"tagline": "Hijacked"}})),
            for_merchants(404),
        );
        calls.add(
            who,
            h,
            "POST",
            format!("/v2/products/{}/product_options", a.product_id),
            format!("/v2/products/{GHOST_ID}/product_options"),
            Some(json!({"product_option": {"face_value_cents": 100000, "price_cents": 1}})),
            for_merchants(404),
        );
        calls.add(
            who,
            h,
            "PUT",
            format!("/v2/product_options/{}", a.option_id),
            format!("/v2/product_options/{GHOST_ID}"),
            Some(json!({"product_option": {"price_cents": 1}})),
            for_merchants(404),
        );
    }

    // B may not issue A's option, nor redeem its own certificate at A's
    // location: 400, worded exactly as for ids that do not exist.
    calls.0.push(Call {
        who: "merchant B",
        headers: bh.clone(),
        method: "POST",
        path: "/v2/certificates".into(),
        ghost_path: "/v2/certificates".into(),
        body: Some(issue_body(&a.option_id, Some(&u.email))),
        ghost_body: Some(issue_body(GHOST_ID, Some(&u.email))),
        want: 400,
    });
    let b_redeem = format!("/v2/claim_codes/{}/redemptions", code(&b_pending));
    calls.0.push(Call {
        who: "merchant B",
        headers: bh.clone(),
        method: "POST",
        path: b_redeem.clone(),
        ghost_path: b_redeem,
        body: Some(json!({"redemption_location_id": a.location_id})),
        ghost_body: Some(json!({ "redemption_location_id": GHOST_ID })),
        want: 400,
    });
    // The merchant-only collection endpoints refuse a user outright.
    calls.add(
        "stranger V",
        &vh,
        "POST",
        "/v2/certificates".into(),
        "/v2/certificates".into(),
        Some(issue_body(&a.option_id, Some(&v.email))),
        403,
    );
    calls.add(
        "stranger V",
        &vh,
        "GET",
        "/v2/users".into(),
        "/v2/users".into(),
        None,
        403,
    );

    let before = snapshot(&s);
    let mut failures = Vec::new();
    for c in &calls.0 {
        let r = s.req(c.method, &c.path, &c.headers, c.body.as_ref());
        let g = s.req(c.method, &c.ghost_path, &c.headers, c.ghost_body.as_ref());
        if r.status != c.want {
            failures.push(format!(
                "{} {} {} as {}: want {}, got {} {}",
                c.method,
                c.path,
                c.body.as_ref().map(Value::to_string).unwrap_or_default(),
                c.who,
                c.want,
                r.status,
                r.text
            ));
        } else if r.body["errors"][0]["code"] != json!(c.want.to_string()) {
            failures.push(format!(
                "{} {} as {}: error body does not carry code {}: {}",
                c.method, c.path, c.who, c.want, r.text
            ));
        }
        if (g.status, &g.text) != (r.status, &r.text) {
            failures.push(format!(
                "{} {} as {}: reveals existence: {} {} vs. nothing there ({}): {} {}",
                c.method, c.path, c.who, r.status, r.text, c.ghost_path, g.status, g.text
            ));
        }
    }
    let after = snapshot(&s);
    assert!(
        failures.is_empty(),
        "{} of {} forbidden calls misbehaved:\n{}",
        failures.len(),
        calls.0.len(),
        failures.join("\n")
    );
    for (table, rows) in &before {
        assert_eq!(rows, &after[table], "forbidden calls changed table {table}");
    }

    // Nothing of U's or A's shows up in V's or B's lists, which do hold
    // their own things.
    let mut secrets: Vec<String> = vec![
        id(&redemption),
        id(&gift),
        u.id.clone(),
        u.email.clone(),
        a.merchant.id.clone(),
        a.location_id.clone(),
        a.product_id.clone(),
        a.option_id.clone(),
    ];
    for c in all_certs {
        secrets.push(id(c));
        secrets.push(code(c));
        secrets.push(code(c).replace('-', ""));
    }
    let lists: Vec<(&str, &Headers, String, Vec<String>)> = vec![
        (
            "V",
            &vh,
            "/v2/certificates?per_page=100".into(),
            vec![id(&v_cert), id(&v_balance), id(&v_gifted)],
        ),
        (
            "V",
            &vh,
            "/v2/certificates?list_type=available&per_page=100".into(),
            vec![id(&v_balance)],
        ),
        (
            "V",
            &vh,
            "/v2/redemptions?per_page=100".into(),
            vec![id(&v_redemption)],
        ),
        ("V", &vh, "/v2/gifts?per_page=100".into(), vec![id(&v_gift)]),
        (
            "V",
            &vh,
            format!("/v2/users/{}/certificates?per_page=100", v.id),
            vec![id(&v_cert), id(&v_balance), id(&v_gifted)],
        ),
        (
            "V",
            &vh,
            format!("/v2/users/{}/redemptions?per_page=100", v.id),
            vec![id(&v_redemption)],
        ),
        (
            "V",
            &vh,
            format!("/v2/users/{}/gifts?per_page=100", v.id),
            vec![id(&v_gift)],
        ),
        (
            "V",
            &vh,
            format!("/v2/users/{}/sent_gifts?per_page=100", v.id),
            vec![id(&v_gift)],
        ),
        ("V", &vh, format!("/v2/users/{}", v.id), vec![v.id.clone()]),
        (
            "B",
            &bh,
            "/v2/certificates?per_page=100".into(),
            vec![id(&v_cert), id(&v_balance), id(&v_gifted), id(&b_pending)],
        ),
        (
            "B",
            &bh,
            format!("/v2/merchants/{}/certificates?per_page=100", b.merchant.id),
            vec![id(&v_cert), id(&v_balance), id(&v_gifted), id(&b_pending)],
        ),
        (
            "B",
            &bh,
            "/v2/redemptions?per_page=100".into(),
            vec![id(&v_redemption)],
        ),
        (
            "B",
            &bh,
            format!("/v2/merchants/{}/redemptions?per_page=100", b.merchant.id),
            vec![id(&v_redemption)],
        ),
        ("B", &bh, "/v2/gifts?per_page=100".into(), vec![id(&v_gift)]),
        (
            "B",
            &bh,
            "/v2/users?per_page=100".into(),
            vec![v.id.clone()],
        ),
        ("B", &bh, format!("/v2/users/{}", v.id), vec![v.id.clone()]),
    ];
    for (who, h, path, own) in &lists {
        let r = s.get(path, h);
        assert_eq!(r.status, 200, "{who} on {path}: {}", r.text);
        for secret in &secrets {
            assert!(
                !r.text.contains(secret.as_str()),
                "{who} on {path} sees {secret}: {}",
                r.text
            );
        }
        for mine in own {
            assert!(
                r.text.contains(mine.as_str()),
                "{who} on {path} misses its own {mine}: {}",
                r.text
            );
        }
        // Every list counts exactly what its caller owns; a single
        // resource has no count to check.
        if path.contains("per_page=") {
            let total = r.body["meta"]["total_count"].as_u64();
            assert_eq!(total, Some(own.len() as u64), "{who} on {path}: {}", r.text);
        }
    }
    // A merchant sees a holder without email or token.
    let r = s.get(&format!("/v2/users/{}", v.id), &bh);
    assert!(r.first("users").get("email").is_none(), "{}", r.text);
    assert!(
        r.first("users").get("authentication_token").is_none(),
        "{}",
        r.text
    );

    // The owner's things still work after the whole round, and the
    // snapshot does see such a change.
    let r = s.put(
        &format!("/v2/certificates/{}", id(&c_assigned)),
        &uh,
        printed.clone(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("certificates")["marked_as_printed"], true);
    assert_ne!(snapshot(&s)["certificates"], after["certificates"]);
    s.check_passes();
}

/// A merchant redeems `cert` by claim code with a key.
fn keyed_redeem(s: &Server, m: &Merchant, cert: &Value, key: &str, cents: i64) -> Resp {
    s.post(
        &format!("/v2/claim_codes/{}/redemptions", code(cert)),
        &keyed(&m.headers(), key),
        json!({ "amount_to_redeem_cents": cents }),
    )
}

fn redemptions_of(s: &Server, cert: &Value) -> i64 {
    count(
        s,
        "SELECT COUNT(*) FROM redemptions WHERE certificate_id = ?1",
        &id(cert),
    )
}

fn children_of(s: &Server, cert: &Value) -> i64 {
    count(
        s,
        "SELECT COUNT(*) FROM certificates WHERE parent_id = ?1",
        &id(cert),
    )
}

#[test]
fn idempotent_redemption_replays_the_first_answer() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let u = s.user("owner@example.com");
    let c = issue(&s, &a, Some(&u.email));

    let first = keyed_redeem(&s, &a.merchant, &c, "till-7-sale-1001", 4000);
    assert_eq!(first.status, 201, "{}", first.text);
    let second = keyed_redeem(&s, &a.merchant, &c, "till-7-sale-1001", 4000);
    assert_eq!(
        (second.status, &second.text),
        (first.status, &first.text),
        "a repeat must replay the first answer"
    );
    assert_eq!(redemptions_of(&s, &c), 1);
    assert_eq!(children_of(&s, &c), 1, "one balance certificate");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM ledger WHERE kind = 'redeem' AND certificate_id = ?1",
            &id(&c)
        ),
        1
    );

    // Without the key the same request is refused: the work really happened
    // once. The key still replays the first answer afterwards.
    let plain = s.post(
        &format!("/v2/claim_codes/{}/redemptions", code(&c)),
        &a.merchant.headers(),
        json!({"amount_to_redeem_cents": 4000}),
    );
    assert_eq!(plain.status, 400, "{}", plain.text);
    assert_eq!(
        plain.error_details(),
        "This item has previously been redeemed"
    );
    let third = keyed_redeem(&s, &a.merchant, &c, "till-7-sale-1001", 4000);
    assert_eq!((third.status, &third.text), (first.status, &first.text));

    // The same key with another body: 409, and nothing changes.
    let before = snapshot(&s);
    let other = keyed_redeem(&s, &a.merchant, &c, "till-7-sale-1001", 3000);
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.body["errors"][0]["code"], "409");
    assert_eq!(snapshot(&s), before);

    // Keys longer than 255 characters are refused before any work; 255 is
    // fine.
    let fresh = issue(&s, &a, Some(&u.email));
    let before = snapshot(&s);
    let r = keyed_redeem(&s, &a.merchant, &fresh, &"k".repeat(256), 4000);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "400");
    assert_eq!(snapshot(&s), before, "a refused key must do no work");
    let long = "k".repeat(255);
    let r1 = keyed_redeem(&s, &a.merchant, &fresh, &long, 4000);
    assert_eq!(r1.status, 201, "{}", r1.text);
    let r2 = keyed_redeem(&s, &a.merchant, &fresh, &long, 4000);
    assert_eq!((r2.status, &r2.text), (r1.status, &r1.text));
    assert_eq!(redemptions_of(&s, &fresh), 1);
    assert_eq!(children_of(&s, &fresh), 1);
    s.check_passes();
}

#[test]
fn idempotency_keys_are_scoped_to_the_principal() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let b = shop(&s, "Shop B", true);
    let u = s.user("owner@example.com");
    let ca = issue(&s, &a, Some(&u.email));
    let cb = issue(&s, &b, Some(&u.email));
    let cu = issue(&s, &a, Some(&u.email));
    let key = "shared-key-1";

    let ra = keyed_redeem(&s, &a.merchant, &ca, key, 4000);
    assert_eq!(ra.status, 201, "{}", ra.text);
    // B's use of the same key is its own request: it redeems B's
    // certificate, and is no conflict with A's different body.
    let rb = keyed_redeem(&s, &b.merchant, &cb, key, 4000);
    assert_eq!(rb.status, 201, "{}", rb.text);
    assert_ne!(rb.text, ra.text);
    assert_eq!(
        rb.first("redemptions")["links"]["certificate"],
        json!(id(&cb))
    );
    assert_eq!(redemptions_of(&s, &ca), 1);
    assert_eq!(redemptions_of(&s, &cb), 1);
    assert_eq!(children_of(&s, &cb), 1);
    // And so is the user's, on the user's own redeem endpoint.
    let ru = s.post(
        &format!("/v2/certificates/{}/redemptions", id(&cu)),
        &keyed(&u.headers(), key),
        json!({"amount_to_redeem_cents": 4000}),
    );
    assert_eq!(ru.status, 201, "{}", ru.text);
    assert_eq!(ru.first("redemptions")["source"], "api-v2-user");
    assert_eq!(redemptions_of(&s, &cu), 1);

    // Each principal's repeat replays its own first answer.
    let again_a = keyed_redeem(&s, &a.merchant, &ca, key, 4000);
    assert_eq!((again_a.status, &again_a.text), (201, &ra.text));
    let again_b = keyed_redeem(&s, &b.merchant, &cb, key, 4000);
    assert_eq!((again_b.status, &again_b.text), (201, &rb.text));
    // A's key used for B's certificate by A is a different request: 409,
    // not B's answer.
    let cross = keyed_redeem(&s, &a.merchant, &cb, key, 4000);
    assert_eq!(cross.status, 409, "{}", cross.text);
    assert_eq!(redemptions_of(&s, &ca), 1);
    assert_eq!(redemptions_of(&s, &cb), 1);
    s.check_passes();
}

#[test]
fn concurrent_repeats_of_one_key_redeem_once() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let u = s.user("owner@example.com");
    let c = issue(&s, &a, Some(&u.email));
    let other = issue(&s, &a, Some(&u.email));

    const THREADS: usize = 8;
    let barrier = Barrier::new(THREADS);
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (s, a, c, barrier) = (&s, &a, &c, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    keyed_redeem(s, &a.merchant, c, "rush-hour", 4000)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(
            r.text, answers[0].text,
            "every repeat gets the first answer"
        );
    }
    assert_eq!(redemptions_of(&s, &c), 1);
    assert_eq!(children_of(&s, &c), 1);

    // Eight concurrent uses of one key with eight different bodies: one
    // request is done, the other seven are conflicts.
    let mixed = issue(&s, &a, Some(&u.email));
    let barrier = Barrier::new(THREADS);
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (s, a, mixed, barrier) = (&s, &a, &mixed, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    keyed_redeem(s, &a.merchant, mixed, "rush-hour-2", 1000 * (i as i64 + 1))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&st| st == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&st| st == 409).count(),
        THREADS - 1
    );
    assert_eq!(redemptions_of(&s, &mixed), 1);
    assert_eq!(children_of(&s, &mixed), 1);

    // Eight concurrent unkeyed full redemptions of one certificate: exactly
    // one wins.
    let barrier = Barrier::new(THREADS);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (s, a, other, barrier) = (&s, &a, &other, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    s.post(
                        &format!("/v2/claim_codes/{}/redemptions", code(other)),
                        &a.merchant.headers(),
                        json!({}),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&st| st == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&st| st == 400).count(),
        THREADS - 1
    );
    assert_eq!(redemptions_of(&s, &other), 1);
    s.check_passes();
}

#[test]
fn idempotent_issue_gift_and_gift_cancel_happen_once() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let u = s.user("owner@example.com");
    let ah = a.merchant.headers();
    let certs = |s: &Server| {
        count(
            s,
            "SELECT COUNT(*) FROM certificates WHERE merchant_id = ?1",
            &a.merchant.id,
        )
    };

    // Limited stock, so a double issue would also show in the inventory.
    let r = s.put(
        &format!("/v2/product_options/{}", a.option_id),
        &ah,
        json!({"product_option": {"count": 5}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Issue: twice with one key, one certificate, one unit of stock.
    let before = certs(&s);
    let body =
        json!({"certificate": {"product_option_id": a.option_id, "recipient_email": u.email}});
    let i1 = s.post("/v2/certificates", &keyed(&ah, "issue-1"), body.clone());
    assert_eq!(i1.status, 201, "{}", i1.text);
    let i2 = s.post("/v2/certificates", &keyed(&ah, "issue-1"), body.clone());
    assert_eq!((i2.status, &i2.text), (i1.status, &i1.text));
    assert_eq!(certs(&s), before + 1);
    let stock: Option<i64> = s
        .sql()
        .query_row(
            "SELECT count FROM product_options WHERE id = ?1",
            [&a.option_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stock, Some(4));
    // Quantity 3 with a key: three certificates, once.
    let bulk = json!({"certificate": {"product_option_id": a.option_id, "quantity": 3}});
    let b1 = s.post("/v2/certificates", &keyed(&ah, "issue-bulk"), bulk.clone());
    assert_eq!(b1.status, 201, "{}", b1.text);
    let b2 = s.post("/v2/certificates", &keyed(&ah, "issue-bulk"), bulk);
    assert_eq!((b2.status, &b2.text), (b1.status, &b1.text));
    assert_eq!(certs(&s), before + 4);
    // The key is bound to its request: another body is a 409.
    let r = s.post(
        "/v2/certificates",
        &keyed(&ah, "issue-1"),
        json!({"certificate": {"product_option_id": a.option_id}}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(certs(&s), before + 4);

    // Gift: twice with one key, one gift, one email, and the replay is a 201
    // although the certificate is no longer `assigned`.
    let c = i1.first("certificates").clone();
    let path = format!("/v2/certificates/{}/gifts", id(&c));
    let uk = keyed(&u.headers(), "gift-1");
    let g1 = s.post(&path, &uk, gift_body("friend@example.com"));
    assert_eq!(g1.status, 201, "{}", g1.text);
    let g2 = s.post(&path, &uk, gift_body("friend@example.com"));
    assert_eq!((g2.status, &g2.text), (g1.status, &g1.text));
    let gifts_of = |s: &Server| {
        count(
            s,
            "SELECT COUNT(*) FROM gifts WHERE certificate_id = ?1",
            &id(&c),
        )
    };
    assert_eq!(gifts_of(&s), 1);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'gift' AND to_addr = ?1",
            "friend@example.com"
        ),
        1
    );
    let r = s.post(&path, &u.headers(), gift_body("friend@example.com"));
    assert_eq!(r.status, 400, "unkeyed repeat must be refused: {}", r.text);

    // Cancelling the gift twice with one key: 204 twice, the code rotated
    // once.
    let gift_path = format!("/v2/gifts/{}", id(g1.first("gifts")));
    let code_now = |s: &Server| -> String {
        s.sql()
            .query_row(
                "SELECT claim_code FROM certificates WHERE id = ?1",
                [id(&c)],
                |r| r.get(0),
            )
            .unwrap()
    };
    let code_gifted = code_now(&s);
    let dk = keyed(&u.headers(), "gift-cancel-1");
    let d1 = s.delete(&gift_path, &dk);
    assert_eq!(d1.status, 204, "{}", d1.text);
    let code_after = code_now(&s);
    assert_ne!(code_after, code_gifted, "cancel rotates the claim code");
    let state = snapshot(&s);
    let d2 = s.delete(&gift_path, &dk);
    assert_eq!((d2.status, &d2.text), (d1.status, &d1.text));
    let mut now = snapshot(&s);
    now.remove("idempotency");
    let mut then = state;
    then.remove("idempotency");
    assert_eq!(now, then, "the replayed cancel must do nothing");
    s.check_passes();
}

/// A keyed issue whose `expires_at` was in the future when first sent:
/// the repeat (a client retrying after a timeout) must get the first
/// answer, not a fresh validation against the new clock.
#[test]
fn keyed_issue_repeat_replays_even_after_its_expiry_has_passed() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let ah = keyed(&a.merchant.headers(), "issue-expiring");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expires = jiff::Timestamp::from_second(now + 2).unwrap().to_string();
    let body = json!({"certificate": {"product_option_id": a.option_id, "expires_at": expires}});
    let first = s.post("/v2/certificates", &ah, body.clone());
    assert_eq!(first.status, 201, "{}", first.text);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let again = s.post("/v2/certificates", &ah, body);
    assert_eq!(
        (again.status, &again.text),
        (first.status, &first.text),
        "the repeat must replay the first answer"
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM certificates WHERE merchant_id = ?1",
            &a.merchant.id
        ),
        1
    );
    s.check_passes();
}

/// docs/reference.md, Idempotency: the same key with a different request is a
/// 409 -- also when the different body would not pass validation.
#[test]
fn reused_key_with_a_different_invalid_body_is_a_conflict() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let u = s.user("owner@example.com");
    let c = issue(&s, &a, Some(&u.email));
    let first = keyed_redeem(&s, &a.merchant, &c, "till-1", 4000);
    assert_eq!(first.status, 201, "{}", first.text);
    let r = s.post(
        &format!("/v2/claim_codes/{}/redemptions", code(&c)),
        &keyed(&a.merchant.headers(), "till-1"),
        json!({"amount_to_redeem_cents": "forty dollars"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(redemptions_of(&s, &c), 1);
    s.check_passes();
}

/// Once a gift is claimed the certificate is the recipient's: the former
/// owner can neither see nor touch it, and the old claim code is dead.
#[test]
fn former_owner_loses_the_certificate_once_a_gift_is_claimed() {
    let s = Server::start();
    let a = shop(&s, "Shop A", true);
    let u = s.user("owner@example.com");
    let v = s.user("friend@example.com");
    let (uh, vh, ah) = (u.headers(), v.headers(), a.merchant.headers());
    let c = issue(&s, &a, Some(&u.email));
    let gift = give(&s, &u, &c, &v.email);
    let r = s.put(&format!("/v2/certificates/{}", code(&c)), &vh, json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let claimed = r.first("certificates").clone();
    assert_eq!(claimed["links"]["user"], json!(v.id));
    assert_ne!(code(&claimed), code(&c), "the claim rotates the code");

    let before = snapshot(&s);
    let cid = id(&c);
    let calls: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", format!("/v2/certificates/{cid}"), None, 404),
        (
            "PUT",
            format!("/v2/certificates/{cid}"),
            Some(json!({"certificate": {"marked_as_printed": true}})),
            404,
        ),
        (
            "POST",
            format!("/v2/certificates/{cid}/certificates"),
            Some(json!({"new_face_value_cents": 1000})),
            404,
        ),
        (
            "POST",
            format!("/v2/certificates/{cid}/redemptions"),
            Some(json!({})),
            404,
        ),
        (
            "POST",
            format!("/v2/certificates/{cid}/gifts"),
            Some(gift_body("someone@example.com")),
            404,
        ),
        // The old code no longer exists, so it cannot be claimed back.
        (
            "PUT",
            format!("/v2/certificates/{}", code(&c)),
            Some(json!({})),
            404,
        ),
        // The claimed gift cannot be withdrawn.
        ("DELETE", format!("/v2/gifts/{}", id(&gift)), None, 400),
    ];
    for (method, path, body, want) in &calls {
        let r = s.req(method, path, &uh, body.as_ref());
        assert_eq!(
            r.status, *want,
            "{method} {path} by the former owner: {}",
            r.text
        );
    }
    // Nor does the till accept the old code.
    let r = s.get(&format!("/v2/claim_codes/{}", code(&c)), &ah);
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.post(
        &format!("/v2/claim_codes/{}/redemptions", code(&c)),
        &ah,
        json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(snapshot(&s), before, "the refused calls changed something");

    // U's lists no longer hold it, but U still sees the gift U sent.
    let r = s.get("/v2/certificates", &uh);
    assert_eq!(r.body["meta"]["total_count"], 0, "{}", r.text);
    let r = s.get(&format!("/v2/gifts/{}", id(&gift)), &uh);
    assert_eq!(r.status, 200, "{}", r.text);
    // The new owner redeems it; the redemption is V's, not U's.
    let r = s.post(
        &format!("/v2/certificates/{cid}/redemptions"),
        &vh,
        json!({"amount_to_redeem_cents": 2500}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let red = id(r.first("redemptions"));
    assert_eq!(s.get(&format!("/v2/redemptions/{red}"), &uh).status, 404);
    assert_eq!(s.get(&format!("/v2/redemptions/{red}"), &vh).status, 200);
    let r = s.get("/v2/redemptions", &uh);
    assert_eq!(r.body["meta"]["total_count"], 0, "{}", r.text);
    s.check_passes();
}
