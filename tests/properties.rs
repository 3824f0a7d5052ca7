//! Property test of the money rules: any random sequence of issues, splits,
//! partial redemptions, expiries, reversals, cancellations and returns
//! conserves face value and paid value exactly, as `instagift check`
//! (`ledger::check`) verifies. Runs the domain functions directly on a real
//! SQLite file, each operation in its own transaction like the writer does.

mod common;

use instagift::db;
use instagift::domain::certificates::{self, Actor, IssueRequest};
use instagift::domain::ledger::{self, Kind};
use instagift::domain::redemptions::{self, RedeemRequest, Target};
use instagift::domain::refusal::Refusal;
use instagift::domain::{catalog, ids, users};
use proptest::prelude::*;
use rusqlite::Connection;

#[derive(Debug, Clone)]
enum Op {
    Issue {
        price_pct: u8,
    },
    Split {
        pick: usize,
        pct: u8,
    },
    Redeem {
        pick: usize,
        pct: u8,
        by_merchant: bool,
    },
    Expire {
        pick: usize,
    },
    Reverse {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Return {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..=100).prop_map(|price_pct| Op::Issue { price_pct }),
        (any::<usize>(), 1u8..100).prop_map(|(pick, pct)| Op::Split { pick, pct }),
        (any::<usize>(), 1u8..=120, any::<bool>()).prop_map(|(pick, pct, by_merchant)| {
            Op::Redeem {
                pick,
                pct,
                by_merchant,
            }
        }),
        any::<usize>().prop_map(|pick| Op::Expire { pick }),
        any::<usize>().prop_map(|pick| Op::Reverse { pick }),
        any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        any::<usize>().prop_map(|pick| Op::Return { pick }),
    ]
}

struct World {
    conn: Connection,
    merchant: String,
    user: String,
    option: String,
    _dir: common::TempDir,
}

fn world() -> World {
    let dir = common::TempDir::new();
    let conn = db::open_writer(&dir.0.join("prop.db")).unwrap();
    let merchant = catalog::create_merchant(&conn, "Prop Shop", None, "UTC", None).unwrap();
    let product = catalog::save_product(
        &conn,
        &catalog::Product {
            merchant_id: merchant.clone(),
            kind: "GiftCertificate".into(),
            tagline: "Anything".into(),
            can_split_value: true,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let option = catalog::save_product_option(
        &conn,
        &catalog::ProductOption {
            product_id: product.id,
            currency: "USD".into(),
            face_value_cents: 9973,
            price_cents: 6151,
            ..Default::default()
        },
    )
    .unwrap();
    let user = users::create(
        &conn,
        &users::NewUser {
            email: "prop@example.com".into(),
            password_hash: "x".into(),
            first_name: String::new(),
            last_name: String::new(),
        },
        &ids::digest(b"token"),
    )
    .unwrap();
    // A confirmed address: issues to it go into the account.
    conn.execute(
        "UPDATE users SET email_verified_at = created_at WHERE id = ?1",
        [&user.id],
    )
    .unwrap();
    World {
        conn,
        merchant,
        user: user.id,
        option: option.id,
        _dir: dir,
    }
}

fn ids_where(conn: &Connection, sql: &str) -> Vec<String> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What became of one operation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Committed.
    Done,
    /// Refused with a 4xx and rolled back.
    Refused,
    /// Nothing to apply it to (no open certificate, no redemption).
    Idle,
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Issue { .. } => "issue",
            Op::Split { .. } => "split",
            Op::Redeem {
                by_merchant: true, ..
            } => "redeem by merchant",
            Op::Redeem { .. } => "redeem by user",
            Op::Expire { .. } => "expire",
            Op::Reverse { .. } => "reverse",
            Op::Cancel { .. } => "cancel",
            Op::Return { .. } => "return",
        }
    }
}

/// Runs one operation in a transaction: committed on success, rolled back
/// on a refusal. A 5xx is a failure of the property.
fn apply(w: &World, op: &Op) -> Result<Outcome, String> {
    let open = ids_where(&w.conn, "SELECT id FROM certificates WHERE status IN ('pending','assigned','gifted') ORDER BY rowid");
    let owned = ids_where(
        &w.conn,
        "SELECT id FROM certificates WHERE status = 'assigned' ORDER BY rowid",
    );
    let reds = ids_where(
        &w.conn,
        "SELECT id FROM redemptions WHERE reversed_at IS NULL ORDER BY rowid",
    );
    let pick = |list: &[String], i: usize| list.get(i % list.len().max(1)).cloned();
    let face_of = |id: &str| -> i64 {
        w.conn
            .query_row(
                "SELECT face_value_cents FROM certificates WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let tx = w.conn.unchecked_transaction().unwrap();
    let result: Result<(), Refusal> = match op {
        Op::Issue { price_pct } => certificates::issue(
            &tx,
            &w.merchant,
            &IssueRequest {
                product_option_id: w.option.clone(),
                quantity: 1,
                recipient_email: Some("prop@example.com".into()),
                price_cents: Some(9973 * *price_pct as i64 / 100),
                expires_at: None,
            },
            "http://localhost",
        )
        .map(|_| ()),
        Op::Split { pick: i, pct } => match pick(&owned, *i) {
            Some(id) => {
                certificates::split(&tx, &id, &w.user, (face_of(&id) * *pct as i64 / 100).max(1))
                    .map(|_| ())
            }
            None => return Ok(Outcome::Idle),
        },
        Op::Redeem {
            pick: i,
            pct,
            by_merchant,
        } => match pick(&open, *i) {
            Some(id) => {
                let amount = (face_of(&id) * *pct as i64 / 100).max(1);
                let actor = if *by_merchant {
                    Actor::Merchant(&w.merchant)
                } else {
                    Actor::User(&w.user)
                };
                redemptions::redeem(
                    &tx,
                    actor,
                    &RedeemRequest {
                        target: Target::Id(&id),
                        amount_cents: Some(amount),
                        location_id: None,
                    },
                )
                .map(|_| ())
            }
            None => return Ok(Outcome::Idle),
        },
        Op::Expire { pick: i } => match pick(&open, *i) {
            Some(id) => {
                tx.execute(
                    "UPDATE certificates SET expires_at = 1000 WHERE id = ?1",
                    [id],
                )
                .unwrap();
                Ok(())
            }
            None => return Ok(Outcome::Idle),
        },
        Op::Reverse { pick: i } => match pick(&reds, *i) {
            Some(id) => redemptions::reverse(&tx, &id, Actor::Merchant(&w.merchant)).map(|_| ()),
            None => return Ok(Outcome::Idle),
        },
        Op::Cancel { pick: i } | Op::Return { pick: i } => match pick(&open, *i) {
            Some(id) => {
                let kind = if matches!(op, Op::Cancel { .. }) {
                    Kind::Cancel
                } else {
                    Kind::Return
                };
                certificates::void(&tx, &id, Actor::Merchant(&w.merchant), kind).map(|_| ())
            }
            None => return Ok(Outcome::Idle),
        },
    };
    match result {
        Ok(()) => {
            tx.commit().unwrap();
            Ok(Outcome::Done)
        }
        Err(Refusal::Internal(why)) => Err(format!("{op:?} failed: {why}")),
        Err(_) => {
            tx.rollback().unwrap();
            Ok(Outcome::Refused)
        }
    }
}

/// The property would hold vacuously if every operation were refused, so
/// the runner is driven by hand to count what each kind of operation did
/// across all cases, and each kind must have succeeded somewhere.
#[test]
fn value_is_conserved() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    let done: RefCell<BTreeMap<&'static str, u32>> = RefCell::default();
    let write_offs = std::cell::Cell::new(0i64);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let ops = proptest::collection::vec(op(), 1..40);
    runner
        .run(&ops, |ops| {
            let w = world();
            for op in std::iter::once(&Op::Issue { price_pct: 61 }).chain(ops.iter()) {
                if apply(&w, op).map_err(TestCaseError::fail)? == Outcome::Done {
                    *done.borrow_mut().entry(op.kind()).or_default() += 1;
                }
                let report = ledger::check(&w.conn).unwrap();
                prop_assert!(report.problems.is_empty(), "after {:?}: {:?}", op, report.problems);
            }
            // Every purchase's paid value is accounted for exactly: what is
            // still open plus what was paid out equals what came in.
            let t = &ledger::check(&w.conn).unwrap().merchants[0];
            prop_assert_eq!(t.issued + t.reversed, t.open + t.redeemed + t.cancelled + t.returned + t.expired);
            let (paid_in, paid_open, paid_redeemed): (i64, i64, i64) = w.conn.query_row(
                "SELECT (SELECT COALESCE(SUM(paid_delta),0) FROM ledger WHERE kind IN ('issue','reverse')),
                        (SELECT COALESCE(SUM(price_cents),0) FROM certificates WHERE status IN ('pending','assigned','gifted')),
                        (SELECT COALESCE(SUM(amount_paid_cents),0) FROM redemptions)",
                [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
            let paid_voided: i64 = w.conn.query_row(
                "SELECT -COALESCE(SUM(paid_delta),0) FROM ledger WHERE kind IN ('cancel','return','expire')", [], |r| r.get(0)).unwrap();
            prop_assert_eq!(paid_in, paid_open + paid_redeemed + paid_voided);
            let expired: i64 = w.conn.query_row(
                "SELECT COUNT(*) FROM ledger WHERE kind = 'expire'", [], |r| r.get(0)).unwrap();
            write_offs.set(write_offs.get() + expired);
            Ok(())
        })
        .unwrap();
    let done = done.into_inner();
    for kind in [
        "issue",
        "split",
        "redeem by merchant",
        "redeem by user",
        "expire",
        "reverse",
        "cancel",
        "return",
    ] {
        assert!(
            done.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} ever succeeded: {done:?}"
        );
    }
    // An expired certificate redeemed writes off its unpaid part.
    assert!(
        write_offs.get() > 0,
        "no expiry write-off in any case: {done:?}"
    );
}

#[test]
fn check_catches_a_tampered_certificate() {
    let w = world();
    apply(&w, &Op::Issue { price_pct: 50 }).unwrap();
    assert!(ledger::check(&w.conn).unwrap().problems.is_empty());
    w.conn
        .execute(
            "UPDATE certificates SET face_value_cents = face_value_cents + 1",
            [],
        )
        .unwrap();
    let problems = ledger::check(&w.conn).unwrap().problems;
    assert!(
        problems.iter().any(|p| p.contains("ledger says")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("issued")),
        "{problems:?}"
    );
}

/// Issues one certificate of the world's option to its user at `price`.
fn issue_one(w: &World, price: i64) -> String {
    certificates::issue(
        &w.conn,
        &w.merchant,
        &IssueRequest {
            product_option_id: w.option.clone(),
            quantity: 1,
            recipient_email: Some("prop@example.com".into()),
            price_cents: Some(price),
            expires_at: None,
        },
        "http://localhost",
    )
    .unwrap()[0]
        .id
        .clone()
}

fn figures(w: &World, id: &str) -> (i64, i64) {
    w.conn
        .query_row(
            "SELECT face_value_cents, price_cents FROM certificates WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Paid shares are rounded cumulatively: any sequence of small
    /// redemptions and splits leaves the same paid value on what remains,
    /// and takes the same paid value out, as one redemption of the total.
    #[test]
    fn small_steps_end_on_the_one_step_figures(
        price in 0i64..=9973,
        steps in proptest::collection::vec((1i64..50, any::<bool>()), 1..60),
    ) {
        let w = world();
        let (mut current, twin) = (issue_one(&w, price), issue_one(&w, price));
        let (mut total, mut paid_out) = (0, 0);
        for (amount, split) in &steps {
            if *split {
                let (_, child) = certificates::split(&w.conn, &current, &w.user, *amount).unwrap();
                paid_out += child.price_cents;
            } else {
                let (r, balance) = redemptions::redeem(&w.conn, Actor::User(&w.user), &RedeemRequest {
                    target: Target::Id(&current),
                    amount_cents: Some(*amount),
                    location_id: None,
                }).unwrap();
                paid_out += r.amount_paid_cents;
                current = balance.expect("a partial redemption leaves a balance").id;
            }
            total += amount;
        }
        let (r, balance) = redemptions::redeem(&w.conn, Actor::User(&w.user), &RedeemRequest {
            target: Target::Id(&twin),
            amount_cents: Some(total),
            location_id: None,
        }).unwrap();
        let balance = balance.expect("a partial redemption leaves a balance");
        prop_assert_eq!(figures(&w, &current), figures(&w, &balance.id));
        prop_assert_eq!(paid_out, r.amount_paid_cents);
        prop_assert!(ledger::check(&w.conn).unwrap().problems.is_empty());
    }
}
