//! A client written against the original Instagift reference, sending its
//! samples as written: error titles, writes without a body, the
//! `status=available` filter, the reference's link keys, claim codes of
//! other shapes, and the balance a web shop reads before redeeming.

mod common;

use common::{shop, Server};
use serde_json::json;

#[test]
fn errors_carry_the_references_titles() {
    let s = Server::start();
    let r = s.get("/v2/certificates", &[]);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        r.body["errors"][0],
        json!({"code": "401", "status": "Unauthorized", "title": "Permission denied",
               "details": "Credentials are missing or wrong"})
    );
    let r = s.get("/v2/products/no-such-product-id-0000", &[]);
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.body["errors"][0]["status"], "Not Found");
    assert_eq!(
        r.body["errors"][0]["title"],
        "Resource with that ID not found"
    );
}

/// A raw request with no body and no Content-Type, as `curl -X PUT` sends.
fn bare(s: &Server, method: &str, path: &str, headers: &[(String, String)]) -> common::Resp {
    let mut b = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", s.base));
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    s.raw(b.body(Vec::new()).unwrap())
}

#[test]
fn writes_whose_fields_are_optional_need_no_body() {
    let s = Server::start();
    let shop = shop(&s, "Bare", true);
    let m = shop.merchant.headers();
    let issued = s.post(
        "/v2/certificates",
        &m,
        json!({"certificate": {"product_option_id": shop.option_id, "quantity": 3}}),
    );
    assert_eq!(issued.status, 201, "{}", issued.text);
    let certs = issued.body["certificates"].as_array().unwrap().clone();
    let code = |i: usize| certs[i]["claim_code"].as_str().unwrap().to_string();
    let id = |i: usize| certs[i]["id"].as_str().unwrap().to_string();
    // Claim with `curl -X PUT`.
    let ann = s.user("ann@example.com");
    let r = bare(
        &s,
        "PUT",
        &format!("/v2/certificates/{}", code(0)),
        &ann.headers(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.first("certificates")["links"]["user"], json!(ann.id));
    // Redeem the whole value at the till, no body.
    let r = bare(
        &s,
        "POST",
        &format!("/v2/claim_codes/{}/redemptions", code(1)),
        &m,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let red = r.first("redemptions").clone();
    assert_eq!(red["amount_cents"], 10000);
    assert_eq!(red["created_at"], red["updated_at"]);
    // Reverse it and cancel another, no bodies.
    let r = bare(
        &s,
        "POST",
        &format!("/v2/redemptions/{}/reversals", red["id"].as_str().unwrap()),
        &m,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.first("redemptions")["updated_at"].is_string());
    let r = bare(
        &s,
        "POST",
        &format!("/v2/certificates/{}/cancellations", id(2)),
        &m,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("certificates")["status"], "cancelled");
    // A body that is there and is not JSON stays a 406.
    let rq = ureq::http::Request::builder()
        .method("PUT")
        .uri(format!("{}/v2/certificates/{}", s.base, code(0)))
        .header("X-User-Email", ann.email.as_str())
        .header("X-User-Token", ann.token.as_str())
        .header("Content-Type", "text/plain")
        .body(b"claim it".to_vec())
        .unwrap();
    let r = s.raw(rq);
    assert_eq!(r.status, 406, "{}", r.text);
    s.check_passes();
}

#[test]
fn status_available_lists_what_list_type_available_does() {
    let s = Server::start();
    let shop = shop(&s, "Available", true);
    let ann = s.user("ann@example.com");
    let m = shop.merchant.headers();
    for _ in 0..2 {
        let r = s.post(
            "/v2/certificates",
            &m,
            json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": ann.email}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let spent = s.get("/v2/certificates", &ann.headers()).body["certificates"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.post(
        &format!("/v2/certificates/{spent}/redemptions"),
        &ann.headers(),
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let a = s.get("/v2/certificates?status=available", &ann.headers());
    let b = s.get("/v2/certificates?list_type=available", &ann.headers());
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["meta"]["total_count"], 1);
    assert_eq!(a.body["certificates"], b.body["certificates"]);
    assert_ne!(a.body["certificates"][0]["id"], json!(spent));
}

#[test]
fn user_documents_carry_the_references_link_keys() {
    let s = Server::start();
    let ann = s.user("ann@example.com");
    let r = s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": ann.email, "password": "password123"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    for doc in [
        &r.body,
        &s.get(&format!("/v2/users/{}", ann.id), &ann.headers()).body,
    ] {
        for kind in ["certificates", "redemptions", "gifts", "sent_gifts"] {
            assert_eq!(
                doc["links"][format!("user.{kind}")],
                json!(format!("/v2/users/{{users.id}}/{kind}")),
                "{doc}"
            );
        }
        assert!(doc["users"][0]["created_at"].is_string());
        assert!(doc["users"][0]["updated_at"].is_string());
    }
}

#[test]
fn claim_codes_of_another_shape_are_looked_up() {
    let s = Server::start();
    let shop = shop(&s, "Codes", true);
    let m = shop.merchant.headers();
    let r = s.post(
        "/v2/certificates",
        &m,
        json!({"certificate": {"product_option_id": shop.option_id}}),
    );
    let code = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        code.split('-').map(str::len).collect::<Vec<_>>(),
        vec![4, 4, 4, 4]
    );
    // The reference's own sample code: unknown here, so 404, not a typo.
    let r = s.get("/v2/claim_codes/62DD-CV4T-R2NTM2", &m);
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.post(
        "/v2/claim_codes/62DD-CV4T-R2NTM2/redemptions",
        &m,
        json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    // One of ours with a wrong check character is a typo.
    let mut typo: Vec<char> = code.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    let r = s.get(&format!("/v2/claim_codes/{typo}"), &m);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["errors"][0]["title"], "Invalid claim code");
    // And the real one, in any case and spacing, is found.
    let r = s.get(
        &format!("/v2/claim_codes/{}", code.to_lowercase().replace('-', "")),
        &m,
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn an_expired_certificate_shows_what_can_be_redeemed_now() {
    let s = Server::start();
    let shop = shop(&s, "Expiry", true);
    let m = shop.merchant.headers();
    let r = s.post(
        "/v2/certificates",
        &m,
        json!({"certificate": {"product_option_id": shop.option_id}}),
    );
    let c = r.first("certificates").clone();
    assert_eq!(c["expired"], false);
    assert_eq!(c["redeemable_value_cents"], 10000);
    let id = c["id"].as_str().unwrap();
    s.sql()
        .execute(
            "UPDATE certificates SET expires_at = 1000 WHERE id = ?1",
            [id],
        )
        .unwrap();
    let r = s.get(&format!("/v2/certificates/{id}"), &m);
    let shown = r.first("certificates");
    assert_eq!(shown["expired"], true);
    assert_eq!(shown["face_value_cents"], 10000);
    assert_eq!(shown["redeemable_value_cents"], 5000);
    // Redeeming what the fetch showed is accepted.
    let r = s.post(
        &format!("/v2/certificates/{id}/redemptions"),
        &m,
        json!({"amount_to_redeem_cents": 5000}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["amount_cents"], 5000);
    let r = s.get(&format!("/v2/certificates/{id}"), &m);
    assert_eq!(r.first("certificates")["redeemable_value_cents"], 0);
    s.check_passes();
}
