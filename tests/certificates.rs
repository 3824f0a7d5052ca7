//! Certificates over HTTP: issue, split, claim, gift, redeem, reverse,
//! cancel and return, with exact money figures; every test ends with
//! `instagift check` passing.

mod common;

use common::{code, id, issue, issue_to, shop, Merchant, Resp, Server};
use serde_json::{json, Value};

fn redeem_code(s: &Server, m: &Merchant, code: &str, body: Value) -> Resp {
    s.post(
        &format!("/v2/claim_codes/{code}/redemptions"),
        &m.headers(),
        body,
    )
}

#[test]
fn issue_outcomes_by_recipient() {
    let s = Server::start();
    let shop = shop(&s, "Tuscan Kitchen", true);
    let ann = s.user("ann@example.com");

    // Registered recipient: assigned to them.
    let c = issue_to(&s, &shop, &ann);
    assert_eq!(c["status"], "assigned");
    assert_eq!(c["links"]["user"], json!(ann.id));
    assert_eq!(c["face_value_cents"], 10000);
    assert_eq!(c["price_cents"], 5000);
    assert_eq!(c["currency"], "USD");
    assert_eq!(c["title"], "$100 Tuscan Kitchen eGift Card");
    assert_eq!(c["seller"], "Tuscan Kitchen");
    assert_eq!(c["product_type"], "GiftCertificate");
    assert_eq!(c["daily_deal_store"], Value::Null);
    let cc = code(&c);
    assert_eq!(cc.len(), 16 + 3, "XXXX-XXXX-XXXX-XXXX: {cc}");
    assert_eq!(
        cc.split('-').map(str::len).collect::<Vec<_>>(),
        vec![4, 4, 4, 4],
        "{cc}"
    );
    assert_eq!(
        c["merchant_code"].as_str().unwrap(),
        cc[10..].replace('-', "")
    );
    assert_eq!(id(&c).len(), 22);

    // Unregistered address: gifted, with a gift email carrying the code.
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"recipient_email": "new@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.first("certificates");
    assert_eq!(g["status"], "gifted");
    assert_eq!(g["links"]["user"], Value::Null);
    let body: String = s
        .sql()
        .query_row(
            "SELECT body_text FROM outbox WHERE kind = 'gift' AND to_addr = 'new@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        body.contains(&code(g)),
        "gift email lacks the claim code: {body}"
    );

    // Nobody: pending, printed at the counter; quantity issues several.
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"quantity": "3", "price_cents": "4000"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let list = r.body["certificates"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    for c in list {
        assert_eq!(c["status"], "pending");
        assert_eq!(c["price_cents"], 4000);
    }
    let codes: std::collections::HashSet<_> = list.iter().map(code).collect();
    assert_eq!(codes.len(), 3);

    // The QR code is a real SVG of the claim code.
    let qr_url = c["qrcode_image"].as_str().unwrap();
    let path = &qr_url[qr_url.find("/v2/").unwrap()..];
    let qr = s.get(path, &[]);
    assert_eq!(qr.status, 200);
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
    assert!(qr.text.starts_with("<?xml") && qr.text.contains("<svg"));
    s.check_passes();
}

#[test]
fn issue_validation_and_inventory() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let other = common::shop(&s, "Other", true);
    let h = shop.merchant.headers();
    // Inventory of 2, limit 2 per order.
    let r = s.put(
        &format!("/v2/product_options/{}", shop.option_id),
        &h,
        json!({"product_option": {"count": 2, "limit_per_order": 2}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = issue(&s, &shop.merchant, &shop.option_id, json!({"quantity": 3}));
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), vec!["/certificate/quantity"]);
    assert_eq!(
        issue(&s, &shop.merchant, &shop.option_id, json!({"quantity": 2})).status,
        201
    );
    let r = issue(&s, &shop.merchant, &shop.option_id, json!({}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_details(), "only 0 left in stock");
    let o = s.get(&format!("/v2/product_options/{}", shop.option_id), &[]);
    assert_eq!(o.first("product_options")["count"], 0);

    // Another merchant's option, bad quantity, bad price, past expiry.
    let r = issue(&s, &shop.merchant, &other.option_id, json!({}));
    assert_eq!(
        (r.status, r.pointers()),
        (400, vec!["/certificate/product_option_id".to_string()])
    );
    for (extra, ptr) in [
        (json!({"quantity": 0}), "/certificate/quantity"),
        (json!({"quantity": 101}), "/certificate/quantity"),
        (json!({"price_cents": -5}), "/certificate/price_cents"),
        (json!({"price_cents": 1.5}), "/certificate/price_cents"),
        (
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            "/certificate/expires_at",
        ),
        (json!({"expires_at": "soon"}), "/certificate/expires_at"),
        (
            json!({"recipient_email": "not-an-email"}),
            "/certificate/recipient_email",
        ),
    ] {
        let r = issue(&s, &other.merchant, &other.option_id, extra.clone());
        assert_eq!(r.status, 400, "{extra} → {}", r.text);
        assert_eq!(r.pointers(), vec![ptr.to_string()], "{extra}");
    }
    let r = issue(
        &s,
        &other.merchant,
        &other.option_id,
        json!({"price_cents": 10001}),
    );
    assert_eq!(r.status, 400);
    // Users cannot issue.
    let u = s.user("u@example.com");
    assert_eq!(
        issue(
            &s,
            &Merchant {
                id: String::new(),
                key: String::new(),
                secret: String::new()
            },
            "x",
            json!({})
        )
        .status,
        401
    );
    let r = s.post(
        "/v2/certificates",
        &u.headers(),
        json!({"certificate": {"product_option_id": other.option_id}}),
    );
    assert_eq!(r.status, 403);
    s.check_passes();
}

#[test]
fn partial_redemption_creates_balance_certificate() {
    let s = Server::start();
    let shop = shop(&s, "Tuscan Kitchen", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let old_code = code(&c);

    // The claim code is accepted in sloppy form: lower case, no dashes.
    let sloppy = old_code.replace('-', "").to_lowercase();
    let r = redeem_code(
        &s,
        &shop.merchant,
        &sloppy,
        json!({"amount_to_redeem_cents": "4000"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let red = r.first("redemptions");
    assert_eq!(red["amount_cents"], 4000);
    assert_eq!(red["amount_paid_cents"], 2000);
    assert_eq!(red["source"], "api-v2-merchant");
    assert_eq!(red["links"]["certificate"], json!(id(&c)));
    assert_eq!(red["links"]["location"], json!(shop.location_id));
    assert_eq!(red["links"]["user"], json!(ann.id));
    let balance = &r.body["linked"]["certificates"][0];
    assert_eq!(red["links"]["balance_certificate"], balance["id"]);
    assert_eq!(balance["face_value_cents"], 6000);
    assert_eq!(balance["price_cents"], 3000);
    assert_eq!(balance["status"], "assigned");
    assert_eq!(balance["parent_id"], json!(id(&c)));
    assert_eq!(balance["links"]["parent"], json!(id(&c)));
    assert_eq!(balance["links"]["user"], json!(ann.id));
    assert_ne!(code(balance), old_code);

    // The original is now a redeemed certificate of 4000.
    let orig = s.get(&format!("/v2/certificates/{}", id(&c)), &ann.headers());
    assert_eq!(orig.status, 200);
    let o = orig.first("certificates");
    assert_eq!(
        (o["status"].as_str(), o["face_value_cents"].as_i64()),
        (Some("redeemed"), Some(4000))
    );
    // Redeeming it again is refused with the contract's words.
    let again = redeem_code(&s, &shop.merchant, &old_code, json!({}));
    assert_eq!(again.status, 400);
    assert_eq!(
        again.body["errors"][0]["title"],
        "Unable to create redemption"
    );
    assert_eq!(
        again.error_details(),
        "This item has previously been redeemed"
    );

    // More than the value is refused; the whole balance is fine.
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(balance),
        json!({"amount_to_redeem_cents": 6001}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = redeem_code(&s, &shop.merchant, &code(balance), json!({}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["amount_cents"], 6000);
    assert_eq!(r.first("redemptions")["amount_paid_cents"], 3000);
    assert!(r.body.get("linked").is_none());
    s.check_passes();
}

#[test]
fn paid_shares_sum_exactly_to_the_price() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    // Bought at 5000 for face 10000, redeemed in three parts of awkward sizes.
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"recipient_email": ann.email, "price_cents": 3333}),
    );
    let mut current = r.first("certificates").clone();
    let mut paid = 0;
    let mut redeemed = 0;
    for amount in [3001, 2999] {
        let r = s.post(
            &format!("/v2/certificates/{}/redemptions", id(&current)),
            &ann.headers(),
            json!({"amount_to_redeem_cents": amount}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.first("redemptions")["source"], "api-v2-user");
        paid += r.first("redemptions")["amount_paid_cents"]
            .as_i64()
            .unwrap();
        redeemed += r.first("redemptions")["amount_cents"].as_i64().unwrap();
        current = r.body["linked"]["certificates"][0].clone();
    }
    assert_eq!(current["face_value_cents"], 4000);
    let r = s.post(
        &format!("/v2/certificates/{}/redemptions", id(&current)),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    paid += r.first("redemptions")["amount_paid_cents"]
        .as_i64()
        .unwrap();
    redeemed += r.first("redemptions")["amount_cents"].as_i64().unwrap();
    assert_eq!(redeemed, 10000);
    assert_eq!(paid, 3333);
    // floor(3333 × 3001 / 10000) = 1000, then floor(2333 × 2999 / 6999) =
    // 999, and the last redemption takes the remaining 1334 (newest first).
    let list = s.get("/v2/redemptions", &ann.headers());
    let shares: Vec<i64> = list.body["redemptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount_paid_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(shares, vec![1334, 999, 1000]);
    s.check_passes();
}

#[test]
fn split_divides_face_and_price() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/certificates", id(&c)),
        &ann.headers(),
        json!({"new_face_value_cents": 2500}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let both = r.body["certificates"].as_array().unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both[0]["id"], c["id"]);
    assert_eq!(
        (
            both[0]["face_value_cents"].as_i64(),
            both[0]["price_cents"].as_i64()
        ),
        (Some(7500), Some(3750))
    );
    assert_eq!(
        (
            both[1]["face_value_cents"].as_i64(),
            both[1]["price_cents"].as_i64()
        ),
        (Some(2500), Some(1250))
    );
    assert_eq!(both[1]["parent_id"], c["id"]);
    assert_eq!(both[1]["status"], "assigned");
    assert_eq!(both[1]["links"]["user"], json!(ann.id));
    assert_ne!(both[1]["claim_code"], both[0]["claim_code"]);
    // `face_value_cents` is accepted too; bounds are exclusive.
    for bad in [
        json!({"face_value_cents": 7500}),
        json!({"new_face_value_cents": 0}),
        json!({"new_face_value_cents": "x"}),
        json!({}),
    ] {
        let r = s.post(
            &format!("/v2/certificates/{}/certificates", id(&c)),
            &ann.headers(),
            bad.clone(),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let r = s.post(
        &format!("/v2/certificates/{}/certificates", id(&c)),
        &ann.headers(),
        json!({"face_value_cents": "1"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // Against the sale (10000 for 5000), 7499 left keeps
    // 5000 - floor(5000 × 2501 / 10000) = 3750 paid, so the one-cent child
    // carries no paid value and the parent keeps all of its 3750.
    let figures = |v: &Value| {
        (
            v["face_value_cents"].as_i64().unwrap(),
            v["price_cents"].as_i64().unwrap(),
        )
    };
    assert_eq!(figures(&r.body["certificates"][0]), (7499, 3750));
    assert_eq!(figures(&r.body["certificates"][1]), (1, 0));
    // Unsplittable products refuse.
    let fixed = common::shop(&s, "Fixed", false);
    let f = issue_to(&s, &fixed, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/certificates", id(&f)),
        &ann.headers(),
        json!({"new_face_value_cents": 100}),
    );
    assert_eq!(r.status, 400);
    // A merchant cannot split.
    let r = s.post(
        &format!("/v2/certificates/{}/certificates", id(&c)),
        &shop.merchant.headers(),
        json!({"new_face_value_cents": 100}),
    );
    assert_eq!(r.status, 403);
    s.check_passes();
}

#[test]
fn unsplittable_redeems_whole_value_and_location_rules() {
    let s = Server::start();
    let shop = shop(&s, "Fixed", false);
    let other = common::shop(&s, "Other", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&c),
        json!({"amount_to_redeem_cents": 100}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["amount_cents"], 10000);
    assert_eq!(r.first("redemptions")["amount_paid_cents"], 5000);
    assert!(r.body.get("linked").is_none());

    // Two locations: one must be chosen, and it must be the merchant's.
    let h = shop.merchant.headers();
    let r = s.post(
        "/v2/locations",
        &h,
        json!({"location": {"address1": "2 Side St", "city": "Boston"}}),
    );
    let second = r.first("locations")["id"].as_str().unwrap().to_string();
    let c = issue_to(&s, &shop, &ann);
    let r = redeem_code(&s, &shop.merchant, &code(&c), json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_details(), "You must select a redemption location");
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&c),
        json!({"redemption_location_id": other.location_id}),
    );
    assert_eq!(r.status, 400);
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&c),
        json!({"redemption_location_id": second}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["links"]["location"], json!(second));
    s.check_passes();
}

#[test]
fn refusals_cancel_return_and_print_only() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let h = shop.merchant.headers();
    let a = issue_to(&s, &shop, &ann);
    let b = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/cancellations", id(&a)),
        &h,
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("certificates")["status"], "cancelled");
    let r = s.post(
        &format!("/v2/certificates/{}/returns", id(&b)),
        &h,
        json!({}),
    );
    assert_eq!(r.first("certificates")["status"], "returned");
    let r = redeem_code(&s, &shop.merchant, &code(&a), json!({}));
    assert_eq!(
        (r.status, r.error_details()),
        (400, "That item is not available for redemption")
    );
    let r = redeem_code(&s, &shop.merchant, &code(&b), json!({}));
    assert_eq!(
        (r.status, r.error_details()),
        (400, "This item has been refunded to the customer")
    );
    // Cancelling twice, or a returned one, is refused.
    assert_eq!(
        s.post(
            &format!("/v2/certificates/{}/cancellations", id(&a)),
            &h,
            json!({})
        )
        .status,
        400
    );
    assert_eq!(
        s.post(
            &format!("/v2/certificates/{}/cancellations", id(&b)),
            &h,
            json!({})
        )
        .status,
        400
    );

    // A pending certificate cannot be redeemed by a user (they don't own it),
    // but the merchant can redeem it at the till.
    let r = issue(&s, &shop.merchant, &shop.option_id, json!({}));
    let p = r.first("certificates").clone();
    assert_eq!(
        s.post(
            &format!("/v2/certificates/{}/redemptions", id(&p)),
            &ann.headers(),
            json!({})
        )
        .status,
        404
    );
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&p),
        json!({"amount_to_redeem_cents": 1}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // One cent of a 10000 sold for 5000: floor(5000 × 1 / 10000) = 0 paid
    // is spent; the balance keeps 9999 face and all 5000 paid, and stays
    // pending (whoever holds the receipt's new code may claim it).
    let red = r.first("redemptions");
    assert_eq!(
        (
            red["amount_cents"].as_i64(),
            red["amount_paid_cents"].as_i64()
        ),
        (Some(1), Some(0))
    );
    let balance = &r.body["linked"]["certificates"][0];
    assert_eq!(
        (
            balance["face_value_cents"].as_i64(),
            balance["price_cents"].as_i64()
        ),
        (Some(9999), Some(5000))
    );
    assert_eq!(balance["status"], "pending");
    assert_eq!(balance["links"]["user"], Value::Null);

    // Print-only products cannot be redeemed by the user.
    let r = s.put(
        &format!("/v2/products/{}", shop.product_id),
        &h,
        json!({"product": {"is_print_only": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let c = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/redemptions", id(&c)),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = redeem_code(&s, &shop.merchant, &code(&c), json!({}));
    assert_eq!(r.status, 201, "{}", r.text);
    // At the till the whole value goes, and with it the whole price.
    let red = r.first("redemptions");
    assert_eq!(
        (
            red["amount_cents"].as_i64(),
            red["amount_paid_cents"].as_i64()
        ),
        (Some(10000), Some(5000))
    );
    assert!(r.body.get("linked").is_none(), "{}", r.text);
    let after = s.get(&format!("/v2/certificates/{}", id(&c)), &h);
    assert_eq!(after.first("certificates")["status"], "redeemed");

    // A typo in a claim code is caught before any lookup; an unknown code is 404.
    let mut typo = code(&c).into_bytes();
    typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
    let r = s.get(
        &format!("/v2/claim_codes/{}", String::from_utf8(typo).unwrap()),
        &h,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    s.check_passes();
}

#[test]
fn expired_certificate_is_worth_its_paid_value() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    s.sql()
        .execute(
            "UPDATE certificates SET expires_at = 1000 WHERE id = ?1",
            [id(&c)],
        )
        .unwrap();
    // Not available to the user's list any more.
    let avail = s.get("/v2/certificates?list_type=available", &ann.headers());
    assert_eq!(avail.body["meta"]["total_count"], 0);
    let all = s.get("/v2/certificates?list_type=all", &ann.headers());
    assert_eq!(all.body["meta"]["total_count"], 1);
    // More than the paid value is refused.
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&c),
        json!({"amount_to_redeem_cents": 5001}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Partial: 2000 of the 5000 paid, balance 3000.
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&c),
        json!({"amount_to_redeem_cents": 2000}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["amount_cents"], 2000);
    assert_eq!(r.first("redemptions")["amount_paid_cents"], 2000);
    let bal = r.body["linked"]["certificates"][0].clone();
    assert_eq!(
        (
            bal["face_value_cents"].as_i64(),
            bal["price_cents"].as_i64()
        ),
        (Some(3000), Some(3000))
    );
    // First the unpaid 5000 was written off, once, paid value untouched.
    let write_offs: Vec<(i64, i64)> = s
        .sql()
        .prepare("SELECT face_delta, paid_delta FROM ledger WHERE kind = 'expire' AND certificate_id = ?1")
        .unwrap()
        .query_map([id(&c)], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(write_offs, vec![(-5000, 0)]);
    // Sold at its face, an expired certificate has nothing unpaid to write
    // off: no expire row at all, and its whole value is redeemed.
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"price_cents": 10000}),
    );
    let full = r.first("certificates").clone();
    s.sql()
        .execute(
            "UPDATE certificates SET expires_at = 1000 WHERE id = ?1",
            [id(&full)],
        )
        .unwrap();
    let r = redeem_code(&s, &shop.merchant, &code(&full), json!({}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (
            r.first("redemptions")["amount_cents"].as_i64(),
            r.first("redemptions")["amount_paid_cents"].as_i64()
        ),
        (Some(10000), Some(10000))
    );
    let rows: i64 = s
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM ledger WHERE kind = 'expire' AND certificate_id = ?1",
            [id(&full)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
    // A giveaway (nothing paid) past expiry is not available.
    let r = issue(
        &s,
        &shop.merchant,
        &shop.option_id,
        json!({"price_cents": 0}),
    );
    let g = r.first("certificates").clone();
    s.sql()
        .execute(
            "UPDATE certificates SET expires_at = 1000 WHERE id = ?1",
            [id(&g)],
        )
        .unwrap();
    let r = redeem_code(&s, &shop.merchant, &code(&g), json!({}));
    assert_eq!(
        (r.status, r.error_details()),
        (400, "That item is not available for redemption")
    );
    s.check_passes();
}

#[test]
fn claim_rotates_the_code() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let bob = s.user("bob@example.com");
    let r = issue(&s, &shop.merchant, &shop.option_id, json!({}));
    let p = r.first("certificates").clone();
    // Ann claims the pending certificate.
    let r = s.put(
        &format!("/v2/certificates/{}", code(&p)),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let claimed = r.first("certificates").clone();
    assert_eq!(claimed["status"], "assigned");
    assert_eq!(claimed["links"]["user"], json!(ann.id));
    assert_ne!(code(&claimed), code(&p));
    // The old code is dead, for everyone.
    assert_eq!(
        s.put(
            &format!("/v2/certificates/{}", code(&p)),
            &bob.headers(),
            json!({})
        )
        .status,
        404
    );
    assert_eq!(
        s.get(
            &format!("/v2/claim_codes/{}", code(&p)),
            &shop.merchant.headers()
        )
        .status,
        404
    );
    // Claiming one's own: 200 and no change.
    let r = s.put(
        &format!("/v2/certificates/{}", code(&claimed)),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(code(r.first("certificates")), code(&claimed));
    // Bob claims Ann's assigned certificate with its code: it moves to him.
    let r = s.put(
        &format!("/v2/certificates/{}", code(&claimed)),
        &bob.headers(),
        json!({}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.first("certificates")["links"]["user"], json!(bob.id));
    assert_eq!(
        s.get(&format!("/v2/certificates/{}", id(&p)), &ann.headers())
            .status,
        404
    );
    // A redeemed certificate cannot be claimed.
    let now_code = code(r.first("certificates"));
    assert_eq!(
        redeem_code(&s, &shop.merchant, &now_code, json!({})).status,
        201
    );
    let r = s.put(
        &format!("/v2/certificates/{now_code}"),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(
        (r.status, r.error_details()),
        (400, "This item has previously been redeemed")
    );
    // marked_as_printed by the owner.
    let c = issue_to(&s, &shop, &ann);
    let r = s.put(
        &format!("/v2/certificates/{}", id(&c)),
        &ann.headers(),
        json!({"certificate": {"marked_as_printed": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("certificates")["marked_as_printed"], true);
    assert_eq!(
        s.put(
            &format!("/v2/certificates/{}", id(&c)),
            &bob.headers(),
            json!({"certificate": {"marked_as_printed": true}})
        )
        .status,
        404
    );
    s.check_passes();
}

#[test]
fn gift_claim_and_cancel() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let bob = s.user("bob@example.com");
    let c = issue_to(&s, &shop, &ann);
    let gift = json!({"gift": {"sender_name": "Ann", "recipient_name": "Bob", "recipient_email": bob.email,
                               "message": "Happy birthday <3", "sender_reply_to": "ann@example.com"}});
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c)),
        &ann.headers(),
        gift.clone(),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.first("gifts").clone();
    assert_eq!(g["recipient_email"], json!(bob.email));
    assert_eq!(g["links"]["recipient"], Value::Null);
    assert_eq!(g["links"]["sender"], json!(ann.id));
    assert_eq!(g["attempts"], 0);
    assert_eq!(g["claimed_at"], Value::Null);
    let cert = s.get(&format!("/v2/certificates/{}", id(&c)), &ann.headers());
    assert_eq!(cert.first("certificates")["status"], "gifted");
    // The email carries the code, and the message escaped in HTML.
    let (text, html): (String, String) = s
        .sql()
        .query_row(
            "SELECT body_text, body_html FROM outbox WHERE kind = 'gift'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(text.contains(&code(&c)));
    assert!(html.contains("Happy birthday &lt;3"));
    // Gifting twice is refused (already gifted).
    assert_eq!(
        s.post(
            &format!("/v2/certificates/{}/gifts", id(&c)),
            &ann.headers(),
            gift.clone()
        )
        .status,
        400
    );
    // Bob claims: the gift records it, the code rotates.
    let r = s.put(
        &format!("/v2/certificates/{}", code(&c)),
        &bob.headers(),
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("certificates")["links"]["user"], json!(bob.id));
    let g2 = s.get(&format!("/v2/gifts/{}", id(&g)), &bob.headers());
    assert_eq!(g2.status, 200);
    assert_eq!(g2.first("gifts")["links"]["recipient"], json!(bob.id));
    assert!(g2.first("gifts")["claimed_at"].is_string());
    // Both see it in their gifts; Ann in sent_gifts, Bob not.
    assert_eq!(
        s.get("/v2/gifts", &ann.headers()).body["meta"]["total_count"],
        1
    );
    assert_eq!(
        s.get("/v2/gifts", &bob.headers()).body["meta"]["total_count"],
        1
    );
    assert_eq!(
        s.get(&format!("/v2/users/{}/sent_gifts", ann.id), &ann.headers())
            .body["meta"]["total_count"],
        1
    );
    assert_eq!(
        s.get(&format!("/v2/users/{}/sent_gifts", bob.id), &bob.headers())
            .body["meta"]["total_count"],
        0
    );
    // Cancelling a claimed gift is refused.
    assert_eq!(
        s.delete(&format!("/v2/gifts/{}", id(&g)), &ann.headers())
            .status,
        400
    );

    // Ann gifts another one, then takes it back before it is claimed.
    let c2 = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c2)),
        &ann.headers(),
        gift.clone(),
    );
    let g = r.first("gifts").clone();
    assert_eq!(
        s.delete(&format!("/v2/gifts/{}", id(&g)), &bob.headers())
            .status,
        404
    );
    let r = s.delete(&format!("/v2/gifts/{}", id(&g)), &ann.headers());
    assert_eq!(r.status, 204, "{}", r.text);
    let back = s.get(&format!("/v2/certificates/{}", id(&c2)), &ann.headers());
    assert_eq!(back.first("certificates")["status"], "assigned");
    assert_ne!(code(back.first("certificates")), code(&c2));
    // The emailed code no longer works.
    assert_eq!(
        s.put(
            &format!("/v2/certificates/{}", code(&c2)),
            &bob.headers(),
            json!({})
        )
        .status,
        404
    );
    let status: String = s
        .sql()
        .query_row(
            "SELECT status FROM outbox WHERE gift_id = ?1",
            [id(&g)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "cancelled");

    // A future send_date waits until 03:00 of that date in the merchant's zone.
    let c3 = issue_to(&s, &shop, &ann);
    let mut later = gift.clone();
    later["gift"]["send_date"] = json!("2099-06-01");
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c3)),
        &ann.headers(),
        later,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("gifts")["send_date"], "2099-06-01");
    let due: i64 = s
        .sql()
        .query_row(
            "SELECT next_attempt_at FROM outbox WHERE gift_id = ?1",
            [id(r.first("gifts"))],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(due, 4083966000, "2099-06-01T03:00:00Z");
    let mut past = gift.clone();
    past["gift"]["send_date"] = json!("2001-01-01");
    let c4 = issue_to(&s, &shop, &ann);
    assert_eq!(
        s.post(
            &format!("/v2/certificates/{}/gifts", id(&c4)),
            &ann.headers(),
            past
        )
        .status,
        400
    );
    let mut missing = gift.clone();
    missing["gift"]
        .as_object_mut()
        .unwrap()
        .remove("recipient_email");
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c4)),
        &ann.headers(),
        missing,
    );
    assert_eq!(
        (r.status, r.pointers()),
        (400, vec!["/gift/recipient_email".to_string()])
    );
    s.check_passes();
}

#[test]
fn reversal_brings_the_value_back() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let r = redeem_code(
        &s,
        &shop.merchant,
        &code(&c),
        json!({"amount_to_redeem_cents": 4000}),
    );
    let red = r.first("redemptions").clone();
    let r = s.post(
        &format!("/v2/redemptions/{}/reversals", id(&red)),
        &shop.merchant.headers(),
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let back = r.body["linked"]["certificates"][0].clone();
    assert_eq!(
        (
            back["face_value_cents"].as_i64(),
            back["price_cents"].as_i64()
        ),
        (Some(4000), Some(2000))
    );
    assert_eq!(back["status"], "assigned");
    assert_eq!(back["links"]["user"], json!(ann.id));
    assert!(r.first("redemptions")["reversed_at"].is_string());
    assert_eq!(
        r.first("redemptions")["links"]["reversal_certificate"],
        back["id"]
    );
    // Twice is refused; another merchant gets 404; a user gets 403.
    assert_eq!(
        s.post(
            &format!("/v2/redemptions/{}/reversals", id(&red)),
            &shop.merchant.headers(),
            json!({})
        )
        .status,
        400
    );
    let other = s.merchant("Other");
    assert_eq!(
        s.post(
            &format!("/v2/redemptions/{}/reversals", id(&red)),
            &other.headers(),
            json!({})
        )
        .status,
        404
    );
    assert_eq!(
        s.post(
            &format!("/v2/redemptions/{}/reversals", id(&red)),
            &ann.headers(),
            json!({})
        )
        .status,
        403
    );
    // Ann now holds 6000 + 4000 available.
    let avail = s.get("/v2/certificates?list_type=available", &ann.headers());
    let total: i64 = avail.body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["face_value_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 10000);
    s.check_passes();
}

#[test]
fn lists_filter_and_paginate() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let mut made: Vec<Value> = (0..3).map(|_| issue_to(&s, &shop, &ann)).collect();
    let r = issue(&s, &shop.merchant, &shop.option_id, json!({"quantity": 2}));
    assert_eq!(r.status, 201, "{}", r.text);
    made.extend(r.body["certificates"].as_array().unwrap().iter().cloned());
    let h = shop.merchant.headers();
    let r = s.get("/v2/certificates?per_page=2&page=2", &h);
    assert_eq!(r.status, 200);
    let meta = &r.body["meta"];
    assert_eq!(meta["total_count"], 5);
    assert_eq!(meta["page_count"], 3);
    assert_eq!(meta["page"], 2);
    assert_eq!(meta["per_page"], 2);
    assert_eq!(meta["links"]["previous"], "?page=1&per_page=2");
    assert_eq!(meta["links"]["next"], "?page=3&per_page=2");
    assert_eq!(meta["links"]["last"], "?page=3&per_page=2");
    assert_eq!(r.body["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.get("/v2/certificates?status=pending", &h).body["meta"]["total_count"],
        2
    );
    let r = s.get(
        "/v2/certificates?status=assigned&product_type=GiftCertificate",
        &h,
    );
    assert_eq!(r.body["meta"]["total_count"], 3);
    assert_eq!(
        r.body["meta"]["links"]["first"],
        "?page=1&per_page=10&status=assigned&product_type=GiftCertificate"
    );
    assert_eq!(
        s.get("/v2/certificates?product_type=Deal", &h).body["meta"]["total_count"],
        0
    );
    assert_eq!(s.get("/v2/certificates?status=bogus", &h).status, 400);
    assert_eq!(s.get("/v2/certificates?per_page=101", &h).status, 400);
    assert_eq!(s.get("/v2/certificates?page=0", &h).status, 400);
    assert_eq!(
        s.get(
            &format!("/v2/merchants/{}/certificates", shop.merchant.id),
            &h
        )
        .body["meta"]["total_count"],
        5
    );
    assert_eq!(
        s.get(
            &format!("/v2/merchant/{}/certificates", shop.merchant.id),
            &h
        )
        .body["meta"]["total_count"],
        5
    );
    // Newest first: the five were made within a second or two and
    // `created_at` has one-second resolution, so the whole order (ties
    // broken by insertion) is compared, not just the timestamps.
    let all = s.get("/v2/certificates", &h);
    let listed: Vec<String> = all.body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    let newest_first: Vec<String> = made.iter().rev().map(id).collect();
    assert_eq!(listed, newest_first);
    // The user's own list and per-user path.
    assert_eq!(
        s.get("/v2/certificates", &ann.headers()).body["meta"]["total_count"],
        3
    );
    assert_eq!(
        s.get(
            &format!("/v2/users/{}/certificates", ann.id),
            &ann.headers()
        )
        .body["meta"]["total_count"],
        3
    );
    assert_eq!(
        s.get(&format!("/v2/user/{}/certificates", ann.id), &ann.headers())
            .body["meta"]["total_count"],
        3
    );
    // Merchants see holders, without email or token.
    let users = s.get("/v2/users", &h);
    assert_eq!(users.body["meta"]["total_count"], 1);
    assert_eq!(users.first("users")["id"], json!(ann.id));
    assert!(users.first("users").get("email").is_none());
    assert!(users.first("users").get("authentication_token").is_none());
    let u = s.get(&format!("/v2/users/{}", ann.id), &h);
    assert_eq!(u.status, 200);
    assert!(u.first("users").get("email").is_none());
    // The expanded certificate.
    let one = s.get(
        &format!("/v2/certificates/{}", id(all.first("certificates"))),
        &h,
    );
    let c = one.first("certificates");
    assert_eq!(c["merchant"]["id"], json!(shop.merchant.id));
    assert_eq!(c["merchant"]["locations"][0]["id"], json!(shop.location_id));
    assert_eq!(c["product"]["id"], json!(shop.product_id));
    assert_eq!(
        c["product"]["product_options"][0]["id"],
        json!(shop.option_id)
    );
    assert_eq!(
        c["product"]["redemption_locations"][0]["id"],
        json!(shop.location_id)
    );
    assert_eq!(c["product_option"]["face_value_cents"], 10000);
    // The claim-code lookup is not expanded, and works at the alias.
    let by_code = s.get(&format!("/v2/claim_code/{}", code(c)), &h);
    assert_eq!(by_code.status, 200);
    assert!(by_code.first("certificates").get("merchant").is_none());
    // Every link template points at a route that exists and answers the
    // merchant who owns the certificate.
    let templates = one.body["links"].as_object().unwrap();
    assert!(!templates.is_empty(), "{}", one.text);
    for (name, template) in templates {
        let path = template.as_str().unwrap();
        let concrete = path
            .replace("{certificates.user}", &ann.id)
            .replace("{certificates.parent}", &id(c))
            .replace("{certificates.merchant}", &shop.merchant.id)
            .replace("{certificates.product}", &shop.product_id)
            .replace("{certificates.product_option}", &shop.option_id);
        assert!(!concrete.contains('{'), "{name}: {concrete}");
        let r = s.get(&concrete, &h);
        assert_eq!(r.status, 200, "{name}: {concrete}: {}", r.text);
    }
}

#[test]
fn a_gift_spent_at_the_till_withdraws_its_email() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&c)),
        &ann.headers(),
        json!({"gift": {"sender_name": "Ann", "recipient_email": "bob@example.com", "send_date": "2099-01-01"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let gift = r.first("gifts").clone();
    let r = redeem_code(&s, &shop.merchant, &code(&c), json!({}));
    assert_eq!(r.status, 201, "{}", r.text);
    let status: String = s
        .sql()
        .query_row(
            "SELECT status FROM outbox WHERE gift_id = ?1",
            [id(&gift)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "cancelled");
    s.check_passes();
}

#[test]
fn the_expanded_view_follows_catalog_changes() {
    // The catalog pieces are cached per worker; a change must show at once.
    let s = Server::start_with(&["--threads", "1"], &[]);
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let c = issue_to(&s, &shop, &ann);
    let h = shop.merchant.headers();
    let path = format!("/v2/certificates/{}", id(&c));
    let before = s.get(&path, &h);
    assert_eq!(
        before.first("certificates")["product"]["tagline"],
        "Dinner for two"
    );
    assert_eq!(
        s.get(&path, &h).first("certificates")["product"]["tagline"],
        "Dinner for two"
    );
    let r = s.put(
        &format!("/v2/products/{}", shop.product_id),
        &h,
        json!({"product": {"tagline": "Lunch"}}),
    );
    assert_eq!(r.status, 200);
    let r = s.put(
        &format!("/v2/product_options/{}", shop.option_id),
        &h,
        json!({"product_option": {"count": 7}}),
    );
    assert_eq!(r.status, 200);
    let after = s.get(&path, &h);
    let cert = after.first("certificates");
    assert_eq!(cert["product"]["tagline"], "Lunch");
    assert_eq!(cert["product_option"]["count"], 7);
    assert_eq!(cert["product"]["product_options"][0]["count"], 7);
    // Issuing takes inventory: the count shown drops with it.
    issue_to(&s, &shop, &ann);
    assert_eq!(
        s.get(&path, &h).first("certificates")["product_option"]["count"],
        6
    );
}

/// The status of the email queued for `gift`.
fn gift_mail_status(s: &Server, gift: &Value) -> String {
    s.sql()
        .query_row(
            "SELECT status FROM outbox WHERE gift_id = ?1",
            [id(gift)],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn voiding_a_gifted_certificate_withdraws_its_email() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let h = shop.merchant.headers();
    for action in ["cancellations", "returns"] {
        let c = issue_to(&s, &shop, &ann);
        let r = s.post(
            &format!("/v2/certificates/{}/gifts", id(&c)),
            &ann.headers(),
            json!({"gift": {"sender_name": "Ann", "recipient_email": "bob@example.com", "send_date": "2099-01-01"}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let gift = r.first("gifts").clone();
        assert_eq!(gift_mail_status(&s, &gift), "queued");
        let r = s.post(
            &format!("/v2/certificates/{}/{action}", id(&c)),
            &h,
            json!({}),
        );
        assert_eq!(r.status, 201, "{action}: {}", r.text);
        // The code in that email no longer holds: it must never go out.
        assert_eq!(gift_mail_status(&s, &gift), "cancelled", "{action}");
    }
    s.check_passes();
}

#[test]
fn closed_expired_and_unowned_certificates_are_refused() {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    let h = shop.merchant.headers();
    // A redeemed certificate cannot be cancelled or returned.
    let c = issue_to(&s, &shop, &ann);
    assert_eq!(
        redeem_code(&s, &shop.merchant, &code(&c), json!({})).status,
        201
    );
    for action in ["cancellations", "returns"] {
        let r = s.post(
            &format!("/v2/certificates/{}/{action}", id(&c)),
            &h,
            json!({}),
        );
        assert_eq!(
            (r.status, r.error_details()),
            (400, "This item has previously been redeemed"),
            "{action}"
        );
    }
    let split = |cert: &Value| {
        s.post(
            &format!("/v2/certificates/{}/certificates", id(cert)),
            &ann.headers(),
            json!({"new_face_value_cents": 1000}),
        )
    };
    // An expired one cannot be split.
    let e = issue_to(&s, &shop, &ann);
    s.sql()
        .execute(
            "UPDATE certificates SET expires_at = 1000 WHERE id = ?1",
            [id(&e)],
        )
        .unwrap();
    let r = split(&e);
    assert_eq!(
        (r.status, r.error_details()),
        (400, "This certificate has expired")
    );
    // Nor one that is gifted (no longer the owner's to split).
    let g = issue_to(&s, &shop, &ann);
    let r = s.post(
        &format!("/v2/certificates/{}/gifts", id(&g)),
        &ann.headers(),
        json!({"gift": {"sender_name": "Ann", "recipient_email": "bob@example.com", "send_date": "2099-01-01"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = split(&g);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.error_details(),
        "Only assigned certificates can be split (this one is gifted)"
    );
    // Nothing moved: no child certificates, figures unchanged.
    let children: i64 = s
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM certificates WHERE parent_id IN (?1, ?2)",
            [id(&e), id(&g)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(children, 0);
    s.check_passes();
}
