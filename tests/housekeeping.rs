//! Housekeeping: user tokens expire after an idle time (`--token-idle-days`),
//! and expired tokens and idempotency records are purged.

mod common;

use common::Server;
use serde_json::json;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Moves every time of the user's tokens back by `secs`.
fn age_tokens(s: &Server, user_id: &str, secs: i64) {
    s.sql()
        .execute(
            "UPDATE user_tokens SET created_at = created_at - ?2,
                 last_used_at = last_used_at - ?2 WHERE user_id = ?1",
            (user_id, secs),
        )
        .unwrap();
}

fn last_use(s: &Server, user_id: &str) -> i64 {
    s.sql()
        .query_row(
            "SELECT COALESCE(last_used_at, created_at) FROM user_tokens WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .unwrap()
}

/// Waits until the token's use is recorded (the writer does it in the
/// background, at most once an hour per token).
fn wait_recorded(s: &Server, user_id: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    while now() - last_use(s, user_id) > 60 {
        assert!(Instant::now() < until, "the use was not recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tokens_expire_after_the_idle_time() {
    let s = Server::start_with(&["--token-idle-days", "2"], &[]);
    let ann = s.user("ann@example.com");
    let me = format!("/v2/users/{}", ann.id);
    assert_eq!(s.get(&me, &ann.headers()).status, 200);
    // Unused for a day and a half: still good, and the use is recorded.
    age_tokens(&s, &ann.id, DAY + DAY / 2);
    assert_eq!(s.get(&me, &ann.headers()).status, 200);
    wait_recorded(&s, &ann.id);
    // Unused for two days and a bit: 401 like an unknown token (before:
    // tokens never expired).
    age_tokens(&s, &ann.id, 2 * DAY + 60);
    let r = s.get(&me, &ann.headers());
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "401");
    // Logging in again gives a working token.
    let r = s.post(
        "/v2/tokens",
        &[],
        json!({"user": {"email": "ann@example.com", "password": "password123"}}),
    );
    assert_eq!(r.status, 201);
    let token = r.first("users")["authentication_token"].as_str().unwrap();
    let h = vec![
        ("X-User-Email".to_string(), ann.email.clone()),
        ("X-User-Token".to_string(), token.to_string()),
    ];
    assert_eq!(s.get(&me, &h).status, 200);
}

#[test]
fn the_idle_time_has_an_env_twin_and_zero_means_never() {
    let s = Server::start_with(&[], &[("INSTAGIFT_TOKEN_IDLE_DAYS", "1")]);
    let ann = s.user("ann@example.com");
    age_tokens(&s, &ann.id, DAY + 60);
    assert_eq!(
        s.get(&format!("/v2/users/{}", ann.id), &ann.headers())
            .status,
        401
    );

    let s = Server::start_with(&["--token-idle-days", "0"], &[]);
    let ann = s.user("ann@example.com");
    age_tokens(&s, &ann.id, 1000 * DAY);
    assert_eq!(
        s.get(&format!("/v2/users/{}", ann.id), &ann.headers())
            .status,
        200
    );
}

#[test]
fn the_default_idle_time_is_90_days() {
    let s = Server::start();
    let ann = s.user("ann@example.com");
    age_tokens(&s, &ann.id, 89 * DAY);
    assert_eq!(
        s.get(&format!("/v2/users/{}", ann.id), &ann.headers())
            .status,
        200
    );
    wait_recorded(&s, &ann.id);
    age_tokens(&s, &ann.id, 2 * DAY);
    assert_eq!(
        s.get(&format!("/v2/users/{}", ann.id), &ann.headers())
            .status,
        200,
        "the use above counts"
    );
    let bob = s.user("bob@example.com");
    age_tokens(&s, &bob.id, 90 * DAY + 60);
    assert_eq!(
        s.get(&format!("/v2/users/{}", bob.id), &bob.headers())
            .status,
        401
    );
}

#[test]
fn expired_tokens_and_idempotency_records_are_purged() {
    let s = Server::start();
    let ann = s.user("ann@example.com");
    let bob = s.user("bob@example.com");
    let shop = common::shop(&s, "Shop", true);
    let mut h = shop.merchant.headers();
    h.push(("Idempotency-Key".to_string(), "k1".to_string()));
    let issue = json!({"certificate": {"product_option_id": shop.option_id}});
    assert_eq!(s.post("/v2/certificates", &h, issue.clone()).status, 201);
    h.pop();
    h.push(("Idempotency-Key".to_string(), "k2".to_string()));
    assert_eq!(s.post("/v2/certificates", &h, issue.clone()).status, 201);
    let count =
        |s: &Server, sql: &str| -> i64 { s.sql().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count(&s, "SELECT COUNT(*) FROM idempotency"), 2);
    // One record past its 24 hours, one token idle for 91 days.
    s.sql()
        .execute(
            "UPDATE idempotency SET created_at = created_at - 86401 WHERE key = 'k1'",
            [],
        )
        .unwrap();
    age_tokens(&s, &ann.id, 91 * DAY);
    // The writer purges at start (and every ten minutes).
    let s = s.restart(&[]);
    let until = Instant::now() + Duration::from_secs(5);
    while count(&s, "SELECT COUNT(*) FROM user_tokens") != 1 {
        assert!(Instant::now() < until, "the idle token was not purged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: String = s
        .sql()
        .query_row("SELECT user_id FROM user_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, bob.id);
    let keys: String = s
        .sql()
        .query_row("SELECT group_concat(key) FROM idempotency", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(keys, "k2");
    assert!(
        s.log()
            .contains("1 expired idempotency records, 1 idle user tokens deleted"),
        "{}",
        s.log()
    );
    // A repeat of the purged key is a new request now.
    h.pop();
    h.push(("Idempotency-Key".to_string(), "k1".to_string()));
    let r = s.post("/v2/certificates", &h, issue);
    assert_eq!(r.status, 201);
    assert!(r.header("Idempotent-Replayed").is_none());
}
