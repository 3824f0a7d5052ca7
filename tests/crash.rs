//! Crash safety: clients redeem distinct certificates while the server is
//! killed with SIGKILL and restarted, several times. Every redemption that
//! got a 201 survives; nothing is half-applied; `instagift check` passes.

mod common;

use common::Server;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const ROUNDS: usize = 4;
const CLIENTS: usize = 4;

#[test]
fn acknowledged_redemptions_survive_kill_9() {
    let mut s = Server::start_with(&["--rate-limits", "false"], &[]);
    let shop = common::shop(&s, "Shop", true);
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = s.post(
            "/v2/certificates",
            &shop.merchant.headers(),
            json!({"certificate": {"product_option_id": shop.option_id, "quantity": 100}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        for c in r.body["certificates"].as_array().unwrap() {
            codes.push((
                c["id"].as_str().unwrap().to_string(),
                c["claim_code"].as_str().unwrap().to_string(),
            ));
        }
    }
    // certificate id -> redemption id, for every 201 received.
    let acknowledged: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    let next = AtomicUsize::new(0);
    for round in 0..ROUNDS {
        let base = s.base.clone();
        let h = shop.merchant.headers();
        std::thread::scope(|scope| {
            for _ in 0..CLIENTS {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(5)))
                        .build()
                        .into();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((id, code)) = codes.get(i) else {
                            return;
                        };
                        let mut req = agent
                            .post(format!("{base}/v2/claim_codes/{code}/redemptions"))
                            .header("Content-Type", "application/json");
                        for (k, v) in &h {
                            req = req.header(k.as_str(), v.as_str());
                        }
                        match req.send(r#"{"amount_to_redeem_cents": 2500}"#) {
                            Ok(mut resp) if resp.status() == 201 => {
                                // Killed between the status line and the body:
                                // not an acknowledgement.
                                let Ok(body) = resp.body_mut().read_json::<serde_json::Value>()
                                else {
                                    return;
                                };
                                let rid =
                                    body["redemptions"][0]["id"].as_str().unwrap().to_string();
                                acknowledged.lock().unwrap().insert(id.clone(), rid);
                            }
                            Ok(resp) => panic!("unexpected status {}", resp.status()),
                            // The server died mid-request: no answer, no claim.
                            Err(_) => return,
                        }
                    }
                });
            }
            // Let the clients work, then pull the plug.
            std::thread::sleep(Duration::from_millis(150 + 100 * round as u64));
            s.child.kill().unwrap();
        });
        s = s.crash_restart(&["--rate-limits", "false"]);
    }
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() > 20,
        "the test made too little progress: {}",
        acknowledged.len()
    );
    let db = s.sql();
    // Every acknowledged redemption is there, with its balance certificate.
    for (cert, rid) in &acknowledged {
        let (status, face): (String, i64) = db
            .query_row(
                "SELECT status, face_value_cents FROM certificates WHERE id = ?1",
                [cert],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (status.as_str(), face),
            ("redeemed", 2500),
            "certificate {cert}"
        );
        let (amount, balance): (i64, String) = db
            .query_row(
                "SELECT amount_cents, balance_certificate_id FROM redemptions WHERE id = ?1",
                [rid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(amount, 2500);
        let bal: i64 = db
            .query_row(
                "SELECT face_value_cents FROM certificates WHERE id = ?1",
                [&balance],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(bal, 7500);
    }
    // Nothing half-applied: every original is untouched or fully redeemed.
    for (id, _) in &codes {
        let (status, face): (String, i64) = db
            .query_row(
                "SELECT status, face_value_cents FROM certificates WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let redemptions: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM redemptions WHERE certificate_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        match status.as_str() {
            "pending" => assert_eq!((face, redemptions), (10000, 0), "{id}"),
            "redeemed" => assert_eq!((face, redemptions), (2500, 1), "{id}"),
            other => panic!("{id} is {other}"),
        }
    }
    s.check_passes();
}
