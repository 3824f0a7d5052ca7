//! The money audit's findings, each over HTTP against the real binary:
//! stock oversold by concurrent catalog edits, a gift's reversal paying the
//! giver, paid shares drifting with small steps, a null or misplaced amount
//! spending everything, idempotency blind to the query string, `check`
//! adding currencies, and a giver claiming their own gift.

mod common;

use common::{code, id, issue, issue_to, shop, Server, Shop};
use serde_json::{json, Value};

/// An option of `face` sold for `price` on the shop's product.
fn option(s: &Server, shop: &Shop, face: i64, price: i64) -> String {
    let r = s.post(
        &format!("/v2/products/{}/product_options", shop.product_id),
        &shop.merchant.headers(),
        json!({"product_option": {"face_value_cents": face, "price_cents": price}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    id(r.first("product_options"))
}

/// Finding 1: 48 issues and 16 tagline edits of one option with a stock of
/// 100, in parallel. Each edit used to write back the `count` it had read
/// before the issues took stock, so more than 100 certificates came out.
#[test]
fn catalog_edits_never_give_back_stock() {
    let s = Server::start();
    let shop = shop(&s, "Stock", true);
    let h = shop.merchant.headers();
    let r = s.put(
        &format!("/v2/product_options/{}", shop.option_id),
        &h,
        json!({"product_option": {"count": 100}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::scope(|scope| {
        for i in 0..64 {
            let (s, shop, h) = (&s, &shop, h.clone());
            scope.spawn(move || {
                if i % 4 == 0 {
                    let r = s.put(
                        &format!("/v2/product_options/{}", shop.option_id),
                        &h,
                        json!({"product_option": {"tagline": format!("edit {i}")}}),
                    );
                    assert_eq!(r.status, 200, "{}", r.text);
                } else {
                    let r = issue(s, &shop.merchant, &shop.option_id, json!({}));
                    assert_eq!(r.status, 201, "{}", r.text);
                }
            });
        }
    });
    let r = s.get(&format!("/v2/product_options/{}", shop.option_id), &[]);
    assert_eq!(r.first("product_options")["count"], 52);
    // Issuing until refused gives exactly the stock that is left.
    let mut more = 0;
    loop {
        let r = issue(&s, &shop.merchant, &shop.option_id, json!({}));
        if r.status != 201 {
            assert_eq!(r.status, 400, "{}", r.text);
            assert_eq!(r.pointers(), vec!["/certificate/quantity"]);
            break;
        }
        more += 1;
        assert!(more <= 52, "issued past the stock");
    }
    assert_eq!(more, 52);
    let issued: i64 = s
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM certificates WHERE product_option_id = ?1",
            [&shop.option_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(issued, 100);
    s.check_passes();
}

/// Finding 2: Ann gifts her certificate to Frank; the till redeems part of
/// it with the emailed code. The redemption is nobody's (Ann cannot read it),
/// its reversal is a `pending` certificate with a new code, not Ann's money.
#[test]
fn a_gifts_reversal_does_not_pay_the_giver() {
    let s = Server::start();
    let shop = shop(&s, "Gifts", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c)),
        &ann.headers(),
        json!({"gift": {"sender_name": "Ann", "recipient_name": "Frank",
                        "recipient_email": "frank@example.com"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let m = shop.merchant.headers();
    let r = s.post(
        &format!("/v2/claim_codes/{}/redemptions", code(&c)),
        &m,
        json!({"redemption": {"amount_to_redeem_cents": 3000}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let red = r.first("redemptions").clone();
    assert_eq!(red["links"]["user"], Value::Null);
    assert_eq!(red["amount_cents"], 3000);
    assert_eq!(red["amount_paid_cents"], 1500);
    let balance = &r.body["linked"]["certificates"][0];
    assert_eq!(balance["status"], "pending");
    assert_eq!(balance["face_value_cents"], 7000);
    assert_eq!(balance["links"]["user"], Value::Null);
    // Ann can neither read the redemption nor find it in her list.
    let r = s.get(&format!("/v2/redemptions/{}", id(&red)), &ann.headers());
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.get("/v2/redemptions", &ann.headers());
    assert_eq!(r.body["meta"]["total_count"], 0);
    // The reversal is a pending certificate with its own code.
    let r = s.post(
        &format!("/v2/redemptions/{}/reversals", id(&red)),
        &m,
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let back = &r.body["linked"]["certificates"][0];
    assert_eq!(back["status"], "pending");
    assert_eq!(back["links"]["user"], Value::Null);
    assert_eq!(back["face_value_cents"], 3000);
    assert_eq!(back["price_cents"], 1500);
    assert_ne!(back["claim_code"], json!(code(&c)));
    // Ann holds nothing she could spend.
    let r = s.get("/v2/certificates?list_type=available", &ann.headers());
    assert_eq!(r.body["meta"]["total_count"], 0, "{}", r.text);
    s.check_passes();
}

/// Paid figures of a certificate as (face, price).
fn figures(s: &Server, id: &str, h: &[(String, String)]) -> (i64, i64) {
    let r = s.get(&format!("/v2/certificates/{id}"), h);
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.first("certificates");
    (
        c["face_value_cents"].as_i64().unwrap(),
        c["price_cents"].as_i64().unwrap(),
    )
}

/// Finding 3: a 10000 card sold for 3333. 300 one-cent redemptions used to
/// leave 9700/3333 (each cent's paid share rounded to 0); one 300-cent
/// redemption leaves 9700/3234. Now both do, and the 300 redemptions record
/// 99 paid cents between them. One-cent splits likewise.
#[test]
fn small_steps_end_on_the_one_step_figures() {
    let s = Server::start();
    let shop = shop(&s, "Drift", true);
    let opt = option(&s, &shop, 10000, 3333);
    let m = shop.merchant.headers();
    // One step.
    let r = issue(&s, &shop.merchant, &opt, json!({}));
    let one = code(r.first("certificates"));
    let r = s.post(
        &format!("/v2/claim_codes/{one}/redemptions"),
        &m,
        json!({"amount_to_redeem_cents": 300}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["amount_paid_cents"], 99);
    let b = &r.body["linked"]["certificates"][0];
    assert_eq!(
        (b["face_value_cents"].as_i64(), b["price_cents"].as_i64()),
        (Some(9700), Some(3234))
    );
    // 300 steps of a cent, each on the balance the last one left.
    let r = issue(&s, &shop.merchant, &opt, json!({}));
    let mut current = code(r.first("certificates"));
    let mut paid = 0;
    let mut last = Value::Null;
    for _ in 0..300 {
        let r = s.post(
            &format!("/v2/claim_codes/{current}/redemptions"),
            &m,
            json!({"amount_to_redeem_cents": 1}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        paid += r.first("redemptions")["amount_paid_cents"]
            .as_i64()
            .unwrap();
        last = r.body["linked"]["certificates"][0].clone();
        current = code(&last);
    }
    assert_eq!(paid, 99);
    assert_eq!(last["face_value_cents"], 9700);
    assert_eq!(last["price_cents"], 3234);

    // Splits: 30 one-cent splits leave the parent what one 30-cent split does.
    let ann = s.user("ann@example.com");
    let r = issue(
        &s,
        &shop.merchant,
        &opt,
        json!({"recipient_email": ann.email, "quantity": 2}),
    );
    let certs = r.body["certificates"].as_array().unwrap().clone();
    let (a, b) = (id(&certs[0]), id(&certs[1]));
    let split = |cert: &str, cents: i64| {
        let r = s.post(
            &format!("/v2/certificates/{cert}/certificates"),
            &ann.headers(),
            json!({"certificate": {"new_face_value_cents": cents}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["certificates"][1]["price_cents"].as_i64().unwrap()
    };
    let child = split(&a, 30);
    assert_eq!(child, 9);
    assert_eq!(figures(&s, &a, &ann.headers()), (9970, 3324));
    let mut children = 0;
    for _ in 0..30 {
        children += split(&b, 1);
    }
    assert_eq!(children, 9);
    assert_eq!(figures(&s, &b, &ann.headers()), (9970, 3324));
    s.check_passes();
}

/// Finding 7: a giver typing their own gift's code takes it back instead of
/// claiming it as its recipient.
#[test]
fn claiming_ones_own_gift_cancels_it() {
    let s = Server::start();
    let shop = shop(&s, "Own gift", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c)),
        &ann.headers(),
        json!({"gift": {"sender_name": "Ann", "recipient_email": "frank@example.com"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let gift = id(r.first("gifts"));
    let r = s.put(
        &format!("/v2/certificates/{}", code(&c)),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let back = r.first("certificates");
    assert_eq!(back["status"], "assigned");
    assert_eq!(back["links"]["user"], json!(ann.id));
    assert_ne!(
        back["claim_code"],
        json!(code(&c)),
        "the emailed code must die"
    );
    let g = s.get(&format!("/v2/gifts/{gift}"), &ann.headers());
    assert_eq!(g.status, 200, "{}", g.text);
    let g = g.first("gifts");
    assert_eq!(g["claimed_at"], Value::Null);
    assert!(g["cancelled_at"].is_string(), "{g}");
    assert_eq!(g["links"]["recipient"], Value::Null);
    // The emailed code no longer works for anyone.
    let frank = s.user("frank@example.com");
    let r = s.put(
        &format!("/v2/certificates/{}", code(&c)),
        &frank.headers(),
        json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    s.check_passes();
}

/// Finding 4: a null amount, or an amount beside the envelope instead of
/// in it, used to redeem the whole value. A field the endpoint would not
/// read is refused by name, and nothing is spent.
#[test]
fn a_null_or_misplaced_amount_spends_nothing() {
    let s = Server::start();
    let shop = shop(&s, "Amounts", true);
    let m = shop.merchant.headers();
    let r = issue(&s, &shop.merchant, &shop.option_id, json!({}));
    let c = r.first("certificates").clone();
    let at = format!("/v2/claim_codes/{}/redemptions", code(&c));
    let r = s.post(&at, &m, json!({"amount_to_redeem_cents": null}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/amount_to_redeem_cents"]);
    let r = s.post(
        &at,
        &m,
        json!({"redemption": {"amount_to_redeem_cents": null}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/redemption/amount_to_redeem_cents"]);
    let r = s.post(
        &at,
        &m,
        json!({"redemption": {"redemption_location_id": shop.location_id}, "amount_to_redeem_cents": 100}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/amount_to_redeem_cents"]);
    let r = s.post(&at, &m, json!({"amount_to_redeem": 100}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/amount_to_redeem"]);
    // Nothing was spent.
    assert_eq!(figures(&s, &id(&c), &m), (10000, 5000));
    let r = s.get(&format!("/v2/certificates/{}", id(&c)), &m);
    assert_eq!(r.first("certificates")["status"], "pending");
    // Endpoints that read nothing refuse any field too.
    let r = s.post(
        &format!("/v2/certificates/{}/cancellations", id(&c)),
        &m,
        json!({"reason": "typo"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/reason"]);
    // A typo in an issue is named, not dropped (the certificate would have
    // gone out unassigned).
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"recipent_email": "ann@example.com"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/certificate/recipent_email"]);
    // An update may send back what it read unchanged, not change read-only
    // fields, and not add fields of its own.
    let opt = s.get(&format!("/v2/product_options/{}", shop.option_id), &[]);
    let mut whole = opt.first("product_options").clone();
    whole["tagline"] = json!("Sent back whole");
    let r = s.put(
        &format!("/v2/product_options/{}", shop.option_id),
        &m,
        json!({"product_option": whole}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("product_options")["tagline"], "Sent back whole");
    let r = s.put(
        &format!("/v2/product_options/{}", shop.option_id),
        &m,
        json!({"product_option": {"id": "someone-else", "colour": "red"}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.pointers(),
        vec!["/product_option/colour", "/product_option/id"]
    );
    s.check_passes();
}

/// Finding 5: the idempotency fingerprint covers the query string. The
/// same key on `DELETE /v2/tokens` and then `DELETE /v2/tokens?all=true`
/// used to replay the first answer and revoke nothing.
#[test]
fn idempotency_keys_see_the_query_string() {
    let s = Server::start();
    let ann = s.user("ann@example.com");
    let login = s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": ann.email, "password": "password123"}}),
    );
    assert_eq!(login.status, 201, "{}", login.text);
    let second = login.first("users")["authentication_token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = |token: &str| {
        vec![
            ("X-User-Email".to_string(), ann.email.clone()),
            ("X-User-Token".to_string(), token.to_string()),
        ]
    };
    let keyed = |token: &str| {
        let mut h = auth(token);
        h.push(("Idempotency-Key".to_string(), "logout-1".to_string()));
        h
    };
    let r = s.req("DELETE", "/v2/tokens", &keyed(&ann.token), None);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.req("DELETE", "/v2/tokens?all=true", &keyed(&second), None);
    assert_eq!(r.status, 409, "{}", r.text);
    // The same request again is replayed.
    let r = s.req("DELETE", "/v2/tokens?all=true", &keyed(&second), None);
    assert_eq!(r.status, 409, "{}", r.text);
    let mut fresh = auth(&second);
    fresh.push(("Idempotency-Key".to_string(), "logout-2".to_string()));
    let r = s.req("DELETE", "/v2/tokens?all=true", &fresh, None);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get("/v2/certificates", &auth(&second));
    assert_eq!(r.status, 401, "{}", r.text);
}

/// Finding 6: `check` keeps a merchant's currencies apart. A USD surplus
/// matching a EUR shortfall (moved between two certificates with split rows
/// that net to zero across currencies) used to pass.
#[test]
fn check_does_not_add_currencies_together() {
    let s = Server::start();
    let shop = shop(&s, "Two currencies", true);
    let r = s.post(
        &format!("/v2/products/{}/product_options", shop.product_id),
        &shop.merchant.headers(),
        json!({"product_option": {"face_value_cents": 10000, "price_cents": 5000, "currency": "EUR"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let eur_option = id(r.first("product_options"));
    let usd = id(issue(&s, &shop.merchant, &shop.option_id, json!({})).first("certificates"));
    let eur = id(issue(&s, &shop.merchant, &eur_option, json!({})).first("certificates"));
    let out = s.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("in USD: issued $100 "), "{text}");
    assert!(text.contains("in EUR: issued 100.00 EUR "), "{text}");
    // Move 10.00 of value from the EUR certificate to the USD one, each
    // certificate agreeing with its own ledger rows.
    let db = s.sql();
    for (cert, delta) in [(&usd, 1000), (&eur, -1000)] {
        db.execute(
            "UPDATE certificates SET face_value_cents = face_value_cents + ?2 WHERE id = ?1",
            (cert, delta),
        )
        .unwrap();
        db.execute(
            "INSERT INTO ledger (certificate_id, merchant_id, kind, face_delta, paid_delta, created_at)
             VALUES (?1, ?2, 'split', ?3, 0, 0)",
            (cert, &shop.merchant.id, delta),
        )
        .unwrap();
    }
    let out = s.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "merchant {} in EUR: split rows of face_delta sum to -1000, not 0",
            shop.merchant.id
        )),
        "{text}"
    );
    assert!(
        text.contains("in USD: issued $100 + reversed $0 = open $110"),
        "{text}"
    );
}

/// Accounts: signing up with someone's address before the shop issues to
/// it used to put the certificate straight into the squatter's account.
/// Only an address its owner confirmed gets certificates assigned; any
/// other goes out as a gift email with its code.
#[test]
fn a_certificate_reaches_the_owner_of_the_mailbox() {
    let s = Server::start();
    let shop = shop(&s, "Mailbox", true);
    let mallory = s.unverified_user("bob@shop-customer.example");
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"recipient_email": "bob@shop-customer.example"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let c = r.first("certificates").clone();
    assert_eq!(c["status"], "gifted");
    assert_eq!(c["links"]["user"], Value::Null);
    let r = s.get("/v2/certificates", &mallory.headers());
    assert_eq!(r.body["meta"]["total_count"], 0, "{}", r.text);
    let (to, text): (String, String) = s
        .sql()
        .query_row(
            "SELECT to_addr, body_text FROM outbox WHERE kind = 'gift'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(to, "bob@shop-customer.example");
    assert!(text.contains(&code(&c)), "{text}");

    // The real owner confirms (the token went to the mailbox only); from
    // then on issues go into the account.
    let ann = s.unverified_user("ann@example.com");
    let me = s.get(&format!("/v2/users/{}", ann.id), &ann.headers());
    assert_eq!(me.first("users")["email_verified"], false);
    let r = s.post(
        "/v2/email_verifications",
        &[],
        json!({"verification_token": "not-the-token"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/verification_token"]);
    let token = s.verification_token("ann@example.com");
    let r = s.post(
        "/v2/email_verifications",
        &[],
        json!({"user": {"verification_token": token}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("users")["email_verified"], true);
    assert_eq!(r.first("users")["authentication_token"], Value::Null);
    // A token works once.
    let r = s.post(
        "/v2/email_verifications",
        &[],
        json!({"verification_token": token}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let c = issue_to(&s, &shop, &ann);
    assert_eq!(c["status"], "assigned");
    assert_eq!(c["links"]["user"], json!(ann.id));
    // A confirmed user asking for another confirmation is told so; an
    // unconfirmed one gets a new email.
    let r = s.post("/v2/email_verifications", &ann.headers(), json!({}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.post("/v2/email_verifications", &mallory.headers(), json!({}));
    assert_eq!(r.status, 202, "{}", r.text);
    let r = s.post("/v2/email_verifications", &[], json!({}));
    assert_eq!(r.status, 401, "{}", r.text);
    s.check_passes();
}

/// Two spellings never name one account: only ASCII is case-folded, and
/// an address with anything else (the Kelvin sign lower-cases to `k`) is
/// refused.
#[test]
fn two_spellings_never_name_one_account() {
    let s = Server::start();
    s.user("kate@example.com");
    let signup = |email: &str| {
        s.post(
            "/v2/users",
            &[],
            json!({"user": {"email": email, "password": "password123", "password_confirmation": "password123"}}),
        )
    };
    let r = signup("\u{212A}ate@example.com");
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/user/email"]);
    let r = signup("KATE@Example.com");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("already been taken"), "{}", r.text);
    let r = s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": "\u{212A}ATE@example.com", "password": "password123"}}),
    );
    // Not Kate's account: the same 401 as any unknown address.
    assert_eq!(r.status, 401, "{}", r.text);
}

/// A refusal names the field as the request spelled it: the split endpoint
/// takes `face_value_cents` as well as `new_face_value_cents`, flat or
/// under `certificate`, and used to report `/new_face_value_cents` always.
#[test]
fn a_split_refusal_names_the_field_that_was_sent() {
    let s = Server::start();
    let shop = shop(&s, "Split", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let at = format!("/v2/certificates/{}/certificates", id(&c));
    for (body, pointer) in [
        (json!({"face_value_cents": 10000}), "/face_value_cents"),
        (
            json!({"certificate": {"face_value_cents": 20000}}),
            "/certificate/face_value_cents",
        ),
        (
            json!({"certificate": {"new_face_value_cents": 10000}}),
            "/certificate/new_face_value_cents",
        ),
        (
            json!({"new_face_value_cents": 10000}),
            "/new_face_value_cents",
        ),
    ] {
        let r = s.post(&at, &ann.headers(), body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.pointers(), vec![pointer], "{body}");
    }
    assert_eq!(figures(&s, &id(&c), &ann.headers()), (10000, 5000));
}

/// A list longer than 100 items used to be dropped without a word (the
/// product kept its old terms); it is refused like any other bad field.
#[test]
fn a_list_too_long_is_refused_not_dropped() {
    let s = Server::start();
    let shop = shop(&s, "Terms", true);
    let terms: Vec<String> = (0..101).map(|i| format!("term {i}")).collect();
    let r = s.put(
        &format!("/v2/products/{}", shop.product_id),
        &shop.merchant.headers(),
        json!({"product": {"terms": terms}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.pointers(), vec!["/product/terms"]);
    let r = s.put(
        &format!("/v2/products/{}", shop.product_id),
        &shop.merchant.headers(),
        json!({"product": {"terms": &terms[..100]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("products")["terms"].as_array().unwrap().len(), 100);
}
