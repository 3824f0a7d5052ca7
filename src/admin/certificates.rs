//! Certificates and redemptions for the operator: lists, the detail with
//! its ledger history, issue, cancel, return, reverse, and the point of
//! sale (look a claim code up, redeem it). The money rules are the
//! domain's; the operator acts as `Actor::Operator`, so redemptions made
//! here carry the source `admin`.

use super::Filters;
use crate::api::certificates::{document, issued, render, render_expanded};
use crate::api::input::Fields;
use crate::api::{gifts as gift_api, redemptions as redemption_api, users as user_api};
use crate::domain::catalog::{self, PRODUCT_TYPES};
use crate::domain::certificates::{
    self, Actor, Certificate, Filter, IssueRequest, MAX_QUANTITY, STATUSES,
};
use crate::domain::ledger::Kind;
use crate::domain::redemptions::{self, RedeemRequest, Target};
use crate::domain::refusal::Refusal;
use crate::domain::{claim_code, gifts, time, users};
use crate::error::ApiError;
use crate::web::{Ctx, Page, Response};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Users' emails by id, each read once per request.
pub(super) type Emails = HashMap<String, Option<String>>;

/// The email of the certificate's owner, if it has one.
pub(super) fn owner_email(
    db: &Connection,
    c: &Certificate,
    emails: &mut Emails,
) -> Result<Option<String>, ApiError> {
    let Some(id) = &c.user_id else {
        return Ok(None);
    };
    if !emails.contains_key(id) {
        emails.insert(id.clone(), users::get(db, id)?.map(|u| u.email));
    }
    Ok(emails.get(id).cloned().flatten())
}

/// A certificate as JSON with its owner's email (the operator may see it).
fn render_with_owner(
    db: &Connection,
    c: &Certificate,
    url: &str,
    emails: &mut Emails,
) -> Result<Value, ApiError> {
    let mut v = render(c, url);
    v["owner_email"] = json!(owner_email(db, c, emails)?);
    Ok(v)
}

/// `GET /admin/api/certificates`: newest first; filters `merchant_id`,
/// `user_id`, `status`, `product_type`, and `q` (a claim code, or an
/// owner's email).
pub fn index(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let mut filter = Filter {
        merchant_id: filters.text("merchant_id")?,
        user_id: filters.text("user_id")?,
        status: filters.one_of("status", &STATUSES)?,
        product_type: filters.one_of("product_type", &PRODUCT_TYPES)?,
        available_at: None,
    };
    let url = &ctx.app.public_url;
    let mut emails = HashMap::new();
    let q = filters.text("q")?;
    let (rows, total) = match q.as_deref().map(|q| (q, claim_code::normalize(q))) {
        Some((_, Some(code))) => {
            let found = certificates::find_by_code(ctx.db, &code, Actor::Operator);
            match found {
                Ok(c) => (vec![c], 1),
                Err(Refusal::NotFound) => (vec![], 0),
                Err(e) => return Err(e.into()),
            }
        }
        Some((email, None)) => match users::find_login(ctx.db, email)? {
            Some((u, _)) => {
                filter.user_id = Some(u.id);
                certificates::list(ctx.db, &filter, page.limit(), page.offset())?
            }
            None => (vec![], 0),
        },
        None => certificates::list(ctx.db, &filter, page.limit(), page.offset())?,
    };
    let items = rows
        .iter()
        .map(|c| render_with_owner(ctx.db, c, url, &mut emails))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(document(items)
        .meta(filters.meta(&page, total))
        .respond(200))
}

/// `GET /admin/api/certificates/{id}`: expanded, with its ledger history
/// (`linked.ledger_entries`), redemptions, gifts, the certificates made
/// from it (balances, splits, reversals) and its owner.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    // One read transaction, so every part shows the same moment.
    let tx = ctx.db.unchecked_transaction()?;
    let url = &ctx.app.public_url;
    let cert = certificates::find(&tx, params[0], Actor::Operator)?;
    let mut emails = HashMap::new();
    let mut body = render_expanded(&tx, &cert, url)?;
    body["owner_email"] = json!(owner_email(&tx, &cert, &mut emails)?);
    let ledger = tx
        .prepare_cached(
            "SELECT seq, kind, face_delta, paid_delta, redemption_id, created_at FROM ledger
             WHERE certificate_id = ?1 ORDER BY seq",
        )?
        .query_map([&cert.id], |r| {
            Ok(json!({
                "seq": r.get::<_, i64>(0)?,
                "kind": r.get::<_, String>(1)?,
                "face_delta_cents": r.get::<_, i64>(2)?,
                "paid_delta_cents": r.get::<_, i64>(3)?,
                "links": { "redemption": r.get::<_, Option<String>>(4)? },
                "created_at": time::rfc3339(r.get(5)?),
            }))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let ids_of = |sql: &str| -> Result<Vec<String>, ApiError> {
        Ok(tx
            .prepare_cached(sql)?
            .query_map([&cert.id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?)
    };
    let redemption_list =
        ids_of("SELECT id FROM redemptions WHERE certificate_id = ?1 ORDER BY created_at, rowid")?
            .iter()
            .map(|id| {
                Ok(redemption_api::render(&redemptions::find(
                    &tx,
                    id,
                    Actor::Operator,
                )?))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
    let gift_list =
        ids_of("SELECT id FROM gifts WHERE certificate_id = ?1 ORDER BY created_at, rowid")?
            .iter()
            .map(|id| Ok(gift_api::render(&gifts::find(&tx, id, Actor::Operator)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
    let children =
        ids_of("SELECT id FROM certificates WHERE parent_id = ?1 ORDER BY created_at, rowid")?
            .iter()
            .map(|id| render_with_owner(&tx, &certificates::reload(&tx, id)?, url, &mut emails))
            .collect::<Result<Vec<_>, ApiError>>()?;
    let owner = match &cert.user_id {
        Some(id) => users::get(&tx, id)?
            .map(|u| vec![user_api::render(&u, true, None)])
            .unwrap_or_default(),
        None => vec![],
    };
    tx.finish()?;
    Ok(document(vec![body])
        .linked("ledger_entries", ledger)
        .linked("redemptions", redemption_list)
        .linked("gifts", gift_list)
        .linked("certificates", children)
        .linked("users", owner)
        .respond(200))
}

/// The end of `date` (YYYY-MM-DD) in `zone`: midnight starting the next day.
fn end_of_day(date: &str, zone: &str) -> Option<i64> {
    let day: jiff::civil::Date = date.trim().parse().ok()?;
    let next = day.tomorrow().ok()?;
    time::local_hour_on(&next.to_string(), 0, zone)
}

/// `POST /admin/api/certificates` `{"certificate":{product_option_id*,
/// quantity (1–100), recipient_email, price_cents, expires_at | expires_on}}`:
/// issues for the option's merchant, as `POST /v2/certificates` does.
/// `expires_on` is a date: the certificate lasts to the end of that day in
/// the merchant's time zone.
pub fn issue(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "certificate", false, "Unable to issue certificate")?;
    let product_option_id = f.required_line("product_option_id", 64);
    let quantity = f.int("quantity", 1, MAX_QUANTITY).unwrap_or(1);
    let recipient_email = f.email("recipient_email");
    let price_cents = f.cents("price_cents");
    let merchant = match catalog::product_option(ctx.db, &product_option_id)? {
        Some(o) => match catalog::product(ctx.db, &o.product_id)? {
            Some(p) => catalog::merchant(ctx.db, &p.merchant_id)?,
            None => None,
        },
        None => None,
    };
    if merchant.is_none() && !product_option_id.is_empty() {
        f.fail("product_option_id", "product option not found");
    }
    let zone = merchant.as_ref().map_or("UTC", |m| m.time_zone.as_str());
    let at = f.line("expires_at", 64).map(|text| {
        (
            "expires_at",
            time::parse_rfc3339(&text),
            "expires_at must be an RFC 3339 timestamp, e.g. 2027-12-31T23:59:59Z",
        )
    });
    let on = f.line("expires_on", 10).map(|text| {
        (
            "expires_on",
            end_of_day(&text, zone),
            "expires_on must be a date (YYYY-MM-DD)",
        )
    });
    let mut expires_at = None;
    for (name, parsed, why) in [at, on].into_iter().flatten() {
        match parsed {
            Some(t) if t > time::now() => expires_at = Some(t),
            Some(_) => f.fail(name, format!("{name} must be in the future")),
            None => f.fail(name, why),
        }
    }
    f.finish()?;
    let merchant_id = merchant.map(|m| m.id).unwrap_or_default();
    let req = IssueRequest {
        product_option_id,
        quantity,
        recipient_email,
        price_cents,
        expires_at,
    };
    let url = ctx.app.public_url.clone();
    ctx.app
        .writer
        .run(move |db| issued(db, &merchant_id, &req, &url))
}

fn void(ctx: &Ctx, id: &str, kind: Kind) -> Result<Response, ApiError> {
    let (root, title) = match kind {
        Kind::Cancel => ("cancellation", "Unable to cancel certificate"),
        _ => ("return", "Unable to return certificate"),
    };
    crate::api::input::no_fields(&ctx.body()?, root, title)?;
    let id = id.to_string();
    let url = ctx.app.public_url.clone();
    ctx.app.writer.run(move |db| {
        let cert = certificates::void(db, &id, Actor::Operator, kind)?;
        Ok(document(vec![render(&cert, &url)]).respond(201))
    })
}

/// `POST /admin/api/certificates/{id}/cancellations`: void it.
pub fn cancel(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    void(ctx, params[0], Kind::Cancel)
}

/// `POST /admin/api/certificates/{id}/returns`: refund it to the customer.
pub fn refund(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    void(ctx, params[0], Kind::Return)
}

/// `GET /admin/api/claim_codes/{code}`: the point of sale's lookup, expanded
/// (the merchant's locations come with it for the redeem form).
pub fn lookup(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let cert = certificates::find_by_code(ctx.db, params[0], Actor::Operator)?;
    let url = &ctx.app.public_url;
    let mut body = render_expanded(ctx.db, &cert, url)?;
    body["owner_email"] = json!(owner_email(ctx.db, &cert, &mut Emails::new())?);
    Ok(document(vec![body]).respond(200))
}

/// `POST /admin/api/claim_codes/{code}/redemptions`
/// `{"amount_to_redeem_cents", "redemption_location_id"}`: redeems as the
/// operator (source `admin`); a balance certificate comes back under
/// `linked.certificates`, as in the merchant API.
pub fn redeem(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let code = certificates::parse_code(params[0])?;
    let (amount, location) = redemption_api::parse_input(&ctx.body()?)?;
    let url = ctx.app.public_url.clone();
    ctx.app.writer.run(move |db| {
        let req = RedeemRequest {
            target: Target::Code(&code),
            amount_cents: amount,
            location_id: location.as_deref(),
        };
        redemption_api::redeemed(db, Actor::Operator, &req, &url)
    })
}

/// `GET /admin/api/redemptions?merchant_id=`: newest first.
pub fn redemptions(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let merchant = filters.text("merchant_id")?;
    let who = match &merchant {
        Some(id) => Actor::Merchant(id),
        None => Actor::Operator,
    };
    let (rows, total) = redemptions::list(ctx.db, who, page.limit(), page.offset())?;
    Ok(
        redemption_api::document(rows.iter().map(redemption_api::render).collect())
            .meta(filters.meta(&page, total))
            .respond(200),
    )
}

/// `POST /admin/api/redemptions/{id}/reversals`: undo a redemption made
/// today; the value comes back as a new certificate (`linked.certificates`).
pub fn reverse(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    crate::api::input::no_fields(&ctx.body()?, "reversal", "Unable to reverse redemption")?;
    let id = params[0].to_string();
    let url = ctx.app.public_url.clone();
    ctx.app.writer.run(move |db| {
        let (r, cert) = redemptions::reverse(db, &id, Actor::Operator)?;
        Ok(redemption_api::document(vec![redemption_api::render(&r)])
            .linked("certificates", vec![render(&cert, &url)])
            .respond(201))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_day_is_local_midnight_after() {
        let t = end_of_day("2026-01-15", "America/New_York").unwrap();
        assert_eq!(time::rfc3339(t), "2026-01-16T05:00:00Z");
        assert_eq!(end_of_day("2026-02-30", "UTC"), None);
        assert_eq!(end_of_day("soon", "UTC"), None);
    }
}
