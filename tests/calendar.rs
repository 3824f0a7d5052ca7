//! The merchant's calendar: a redemption can be reversed only on the day it
//! was made, and "day" and a gift's 03:00 send time are the merchant's own
//! (its time zone), not UTC's.

mod common;

use common::{shop_in, Merchant, Server, Shop, User};
use jiff::tz::TimeZone;
use serde_json::{json, Value};

fn date_in(secs: i64, tz: &str) -> jiff::civil::Date {
    jiff::Timestamp::from_second(secs)
        .unwrap()
        .to_zoned(TimeZone::get(tz).unwrap())
        .date()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Issues a certificate of `shop` to `user` and redeems 4000 of it at the
/// till; returns the redemption's id.
fn redeem_part(s: &Server, shop: &Shop, user: &User) -> String {
    let h = shop.merchant.headers();
    let r = s.post(
        "/v2/certificates",
        &h,
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": user.email}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let code = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.post(
        &format!("/v2/claim_codes/{code}/redemptions"),
        &h,
        json!({"amount_to_redeem_cents": 4000}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.first("redemptions")["id"].as_str().unwrap().to_string()
}

/// Moves a redemption's time back to `at`, as if it had been made then.
fn made_at(s: &Server, redemption: &str, at: i64) {
    let n = s
        .sql()
        .execute(
            "UPDATE redemptions SET created_at = ?2 WHERE id = ?1",
            (redemption, at),
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn reverse(s: &Server, m: &Merchant, redemption: &str) -> (u16, String) {
    let r = s.post(
        &format!("/v2/redemptions/{redemption}/reversals"),
        &m.headers(),
        json!({}),
    );
    if r.status == 201 {
        let back = &r.body["linked"]["certificates"][0];
        assert_eq!(
            (
                back["face_value_cents"].as_i64(),
                back["price_cents"].as_i64()
            ),
            (Some(4000), Some(2000)),
            "{}",
            r.text
        );
    }
    (r.status, r.error_details().to_string())
}

const REFUSED: (u16, &str) = (400, "Only redemptions made today can be reversed");

#[test]
fn only_todays_redemptions_are_reversed() {
    let s = Server::start();
    let shop = common::shop(&s, "Shop", true);
    let ann = s.user("ann@example.com");
    // Today's is reversed (once); yesterday's is refused.
    let today = redeem_part(&s, &shop, &ann);
    assert_eq!(reverse(&s, &shop.merchant, &today).0, 201);
    let yesterday = redeem_part(&s, &shop, &ann);
    made_at(&s, &yesterday, now() - 86_400);
    let (status, details) = reverse(&s, &shop.merchant, &yesterday);
    assert_eq!((status, details.as_str()), REFUSED);
    let r = s.get(
        &format!("/v2/redemptions/{yesterday}"),
        &shop.merchant.headers(),
    );
    assert_eq!(r.first("redemptions")["reversed_at"], Value::Null);
    s.check_passes();
}

/// "Today" is the merchant's: a redemption made a few hours ago on the
/// same UTC date but the day before in the merchant's zone is refused, and
/// one made on the previous UTC date but the same local date is reversed.
/// Whatever the hour the test runs at, one of the fixed-offset zones
/// Etc/GMT-14 … Etc/GMT+12 disagrees with UTC about such a moment, and a
/// UTC merchant decides the other way.
#[test]
fn a_merchants_today_is_its_own_time_zones() {
    let s = Server::start();
    let ann = s.user("ann@example.com");
    let utc = common::shop(&s, "UTC Shop", true);
    let t = now();
    let zones: Vec<String> = (-14..=12)
        .map(|h: i32| match h {
            0 => "UTC".to_string(),
            h if h < 0 => format!("Etc/GMT{h}"),
            h => format!("Etc/GMT+{h}"),
        })
        .collect();
    // Moments 1..23 hours ago, each in a zone whose calendar disagrees
    // with UTC's about whether it is still the same day.
    let mut cases = Vec::new();
    for hours in 1..=23 {
        let then = t - hours * 3600 - 60;
        let same_utc = date_in(then, "UTC") == date_in(t, "UTC");
        if let Some(tz) = zones
            .iter()
            .find(|z| (date_in(then, z) == date_in(t, z)) != same_utc)
        {
            cases.push((then, tz.clone(), !same_utc));
        }
    }
    // Both kinds exist except in the first and last hour of a UTC day.
    let refused = cases.iter().find(|c| !c.2);
    let reversed = cases.iter().find(|c| c.2);
    assert!(refused.is_some() || reversed.is_some(), "no zone disagrees");
    for (then, tz, same_local) in refused.into_iter().chain(reversed) {
        let local = shop_in(&s, &format!("Shop in {tz}"), tz, true);
        let r = redeem_part(&s, &local, &ann);
        made_at(&s, &r, *then);
        let (status, details) = reverse(&s, &local.merchant, &r);
        if *same_local {
            assert_eq!(status, 201, "{tz} at {then}: {details}");
        } else {
            assert_eq!((status, details.as_str()), REFUSED, "{tz} at {then}");
        }
        // The UTC merchant decides the other way for the same moment.
        let r = redeem_part(&s, &utc, &ann);
        made_at(&s, &r, *then);
        let (status, _) = reverse(&s, &utc.merchant, &r);
        assert_eq!(status == 201, !same_local, "UTC at {then}");
    }
    s.check_passes();
}

/// A gift dated for tomorrow is due at 03:00 of that date in the
/// merchant's zone, here 14 hours ahead of UTC.
#[test]
fn a_dated_gift_is_due_at_three_in_the_merchants_zone() {
    let s = Server::start();
    let tz = "Pacific/Kiritimati";
    let shop = shop_in(&s, "Line Islands", tz, true);
    let ann = s.user("ann@example.com");
    let r = s.post(
        "/v2/certificates",
        &shop.merchant.headers(),
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": ann.email}}),
    );
    let cert = r.first("certificates")["id"].as_str().unwrap().to_string();
    let tomorrow = date_in(now(), tz).tomorrow().unwrap();
    let r = s.post(
        &format!("/v2/certificates/{cert}/gifts"),
        &ann.headers(),
        json!({"gift": {"sender_name": "Ann", "recipient_name": "Bob",
                        "recipient_email": "bob@example.com", "send_date": tomorrow.to_string()}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let gift = r.first("gifts")["id"].as_str().unwrap().to_string();
    let due: i64 = s
        .sql()
        .query_row(
            "SELECT next_attempt_at FROM outbox WHERE gift_id = ?1",
            [&gift],
            |r| r.get(0),
        )
        .unwrap();
    let want = tomorrow
        .at(3, 0, 0, 0)
        .to_zoned(TimeZone::get(tz).unwrap())
        .unwrap()
        .timestamp()
        .as_second();
    assert_eq!(due, want, "03:00 on {tomorrow} in {tz}");
}
