//! Upgrading a real database: `tests/fixtures/v1.db` was written by the
//! release of schema version 1 (commit 2596bcb; `make_v1.py` beside it says
//! how). The current binary must migrate it in place, keep every
//! credential and figure, pass `instagift check`, and go on serving.

mod common;

use common::{Merchant, Server, TempDir, User};
use serde_json::{json, Value};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.db");
const CREDENTIALS: &str = include_str!("fixtures/v1.json");

fn start_on_copy() -> (Server, Merchant, User) {
    let dir = TempDir::new();
    let db = dir.0.join("upgraded.db");
    std::fs::copy(FIXTURE, &db).unwrap();
    let c: Value = serde_json::from_str(CREDENTIALS).unwrap();
    let s = Server::start_on(dir, db, &[], &[]);
    let merchant = Merchant {
        id: c["merchant"].as_str().unwrap().to_string(),
        key: c["key"].as_str().unwrap().to_string(),
        secret: c["secret"].as_str().unwrap().to_string(),
    };
    let ann = User {
        id: String::new(),
        email: "ann@example.com".to_string(),
        token: c["user_token"].as_str().unwrap().to_string(),
    };
    (s, merchant, ann)
}

#[test]
fn a_version_1_database_is_upgraded_in_place() {
    let (s, m, ann) = start_on_copy();
    let version: i64 = s
        .sql()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, instagift::db::SCHEMA_VERSION);
    s.check_passes();

    // The old credentials still work, and the figures are the old ones.
    let r = s.get("/v2/certificates?per_page=100", &m.headers());
    assert_eq!(r.status, 200, "{}", r.text);
    let certs = r.body["certificates"].as_array().unwrap().clone();
    let count = |status: &str| certs.iter().filter(|c| c["status"] == status).count();
    assert_eq!(
        (
            count("assigned"),
            count("pending"),
            count("gifted"),
            count("redeemed")
        ),
        (3, 2, 2, 2),
        "{certs:?}"
    );
    assert_eq!((count("cancelled"), count("returned")), (1, 1));
    let r = s.get("/v2/certificates?per_page=100", &ann.headers());
    assert_eq!(r.status, 200, "{}", r.text);
    // Ann's balance of the 2500-cent redemption: 7500 face, 2500 paid.
    let balance = r.body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["face_value_cents"] == 7500)
        .unwrap()
        .clone();
    assert_eq!(balance["price_cents"], 2500);
    assert_eq!(balance["claim_code"].as_str().unwrap().len(), 19);
    // An account made before addresses were confirmed has confirmed nothing.
    let user_id = balance["links"]["user"].as_str().unwrap();
    let r = s.get(&format!("/v2/users/{user_id}"), &ann.headers());
    assert_eq!(r.first("users")["email_verified"], false);

    // The migrated balance reckons its paid share against its own figures:
    // three one-cent steps end where one three-cent step would.
    let mut code = balance["claim_code"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let r = s.post(
            &format!("/v2/claim_codes/{code}/redemptions"),
            &m.headers(),
            json!({"amount_to_redeem_cents": 1}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        code = r.body["linked"]["certificates"][0]["claim_code"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let r = s.get(&format!("/v2/claim_codes/{code}"), &m.headers());
    let left = r.first("certificates");
    assert_eq!(left["face_value_cents"], 7497);
    assert_eq!(left["price_cents"], 2500 - (2500 * 3 / 7500));
    s.check_passes();

    // And it survives a restart on the upgraded file.
    let s = s.restart(&[]);
    s.check_passes();
    let r = s.get("/v2/certificates", &m.headers());
    assert_eq!(r.status, 200, "{}", r.text);
}
