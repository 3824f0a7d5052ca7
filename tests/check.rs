//! `instagift check` catches what it promises: a real history is written
//! over HTTP, then each rule of the audit (src/domain/ledger.rs) is shown
//! to fire on a copy of the database tampered for it, through the binary's
//! own CLI.

mod common;

use common::{id, shop, Server, TempDir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The ids a tamper needs, from a history with every kind of row.
struct History {
    _dir: TempDir,
    db: PathBuf,
    merchant: String,
    other_merchant: String,
    /// An assigned certificate, never touched.
    untouched: String,
    /// The balance left by a partial redemption (split rows).
    balance: String,
    /// A cancelled certificate.
    cancelled: String,
    /// A redemption that was reversed, and one that was not.
    reversed: String,
    redeemed: String,
}

fn history() -> History {
    let s = Server::start();
    let shop = shop(&s, "Shop", true);
    let other = s.merchant("Other");
    let ann = s.user("ann@example.com");
    let h = shop.merchant.headers();
    let issue = |recipient: Option<&str>| {
        let mut c = json!({"product_option_id": shop.option_id});
        if let Some(email) = recipient {
            c["recipient_email"] = json!(email);
        }
        let r = s.post("/v2/certificates", &h, json!({ "certificate": c }));
        assert_eq!(r.status, 201, "{}", r.text);
        r.first("certificates").clone()
    };
    let redeem = |cert: &Value, body: Value| {
        let r = s.post(
            &format!("/v2/certificates/{}/redemptions", id(cert)),
            &h,
            body,
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r
    };
    let untouched = issue(Some(&ann.email));
    let split = issue(Some(&ann.email));
    let r = redeem(&split, json!({"amount_to_redeem_cents": 2500}));
    let balance = id(&r.body["linked"]["certificates"][0]);
    let reversed = id(r.first("redemptions"));
    let r = s.post(
        &format!("/v2/redemptions/{reversed}/reversals"),
        &h,
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let whole = issue(Some(&ann.email));
    let redeemed = id(redeem(&whole, json!({})).first("redemptions"));
    let cancelled = issue(None);
    let r = s.post(
        &format!("/v2/certificates/{}/cancellations", id(&cancelled)),
        &h,
        json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    s.check_passes();
    // The server's own online backup: one consistent file.
    let dir = TempDir::new();
    let copy = dir.0.join("history.db");
    let out = s.cli(&["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    History {
        _dir: dir,
        db: copy,
        merchant: shop.merchant.id.clone(),
        other_merchant: other.id,
        untouched: id(&untouched),
        balance,
        cancelled: id(&cancelled),
        reversed,
        redeemed,
    }
}

/// Runs `sql` on a fresh copy of the history and then `instagift check`
/// on it; returns the problems it reported (empty when it passed).
fn problems_after(h: &History, sql: &str) -> Vec<String> {
    let dir = TempDir::new();
    let db = dir.0.join("tampered.db");
    std::fs::copy(&h.db, &db).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    check(&db)
}

fn check(db: &Path) -> Vec<String> {
    let out = std::process::Command::new(common::bin())
        .arg("--db")
        .arg(db)
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let problems: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PROBLEM: "))
        .map(str::to_string)
        .collect();
    // The exit status agrees with what was printed.
    assert_eq!(out.status.success(), problems.is_empty(), "{stdout}");
    problems
}

#[test]
fn every_rule_of_the_audit_fires() {
    let h = history();
    assert_eq!(check(&h.db), Vec::<String>::new());

    // A certificate without any ledger row (a closed one, so that no total
    // moves): only the per-certificate rule can see it.
    let p = problems_after(
        &h,
        &format!(
            "CREATE TEMP TABLE t AS SELECT * FROM certificates WHERE id = '{}';
             UPDATE t SET id = 'ghost', claim_code = 'GHOSTGHOSTGHOST0';
             INSERT INTO certificates SELECT * FROM t;",
            h.cancelled
        ),
    );
    assert_eq!(p, vec!["certificate ghost: no ledger rows"]);

    // 100 cents of face moved from one open certificate to another: every
    // total is unchanged, only the per-certificate rule sees both.
    let p = problems_after(
        &h,
        &format!(
            "UPDATE certificates SET face_value_cents = face_value_cents + 100 WHERE id = '{}';
             UPDATE certificates SET face_value_cents = face_value_cents - 100 WHERE id = '{}';",
            h.untouched, h.balance
        ),
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|p| p.contains("ledger says")), "{p:?}");

    // An open certificate moved to another merchant: each certificate still
    // matches its own rows, but neither merchant's books balance, in face
    // nor in paid value.
    let p = problems_after(
        &h,
        &format!(
            "UPDATE certificates SET merchant_id = '{}' WHERE id = '{}';",
            h.other_merchant, h.untouched
        ),
    );
    assert!(!p.iter().any(|p| p.contains("ledger says")), "{p:?}");
    for merchant in [&h.merchant, &h.other_merchant] {
        let at = format!("merchant {merchant} in USD: ");
        assert!(
            p.iter().any(|p| p.starts_with(&format!("{at}issued"))),
            "{at}: {p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with(&format!("{at}paid value in"))),
            "{at}: {p:?}"
        );
    }

    // A split row without its other half, netted on the certificate by a
    // matching issue row: the split rule fires (with the face conservation
    // it upsets; a lone split imbalance always upsets one of the others).
    let p = problems_after(
        &h,
        &format!(
            "INSERT INTO ledger (certificate_id, merchant_id, kind, face_delta, paid_delta, created_at)
             SELECT id, merchant_id, 'split', -100, -50, 0 FROM certificates WHERE id = '{0}';
             INSERT INTO ledger (certificate_id, merchant_id, kind, face_delta, paid_delta, created_at)
             SELECT id, merchant_id, 'issue', 100, 50, 0 FROM certificates WHERE id = '{0}';",
            h.untouched
        ),
    );
    assert!(
        p.iter()
            .any(|p| p.ends_with("split rows of face_delta sum to -100, not 0")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.ends_with("split rows of paid_delta sum to -50, not 0")),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.contains("ledger says")), "{p:?}");

    // A redemption's amount changed: only the redemptions-against-ledger
    // rule looks at that table.
    let p = problems_after(
        &h,
        &format!(
            "UPDATE redemptions SET amount_cents = amount_cents + 1 WHERE id = '{}';",
            h.redeemed
        ),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(": redemptions total 12501/"), "{p:?}");

    // A reversed redemption no longer marked reversed.
    let p = problems_after(
        &h,
        &format!(
            "UPDATE redemptions SET reversed_at = NULL WHERE id = '{}';",
            h.reversed
        ),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains(": reversed redemptions total 0/0 but ledger reversed 2500"),
        "{p:?}"
    );

    // A certificate owned by a user who does not exist.
    let p = problems_after(
        &h,
        &format!(
            "PRAGMA foreign_keys = OFF;
             UPDATE certificates SET user_id = 'nobody' WHERE id = '{}';",
            h.untouched
        ),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("foreign key: certificates row"), "{p:?}");
}
