//! Redemptions (`/v2/redemptions`, and the redeem endpoints under
//! certificates and claim codes).

use crate::api::certificates::{actor, actor_of, code_budget, render as render_certificate};
use crate::api::input::{self, Fields};
use crate::domain::certificates::Actor;
use crate::domain::redemptions::{self, RedeemRequest, Redemption, Target};
use crate::domain::{certificates, time};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Page, Response};
use rusqlite::Connection;
use serde_json::{json, Value};

/// The redemption as JSON.
pub fn render(r: &Redemption) -> Value {
    json!({
        "id": r.id,
        "href": format!("/v2/redemptions/{}", r.id),
        "amount_cents": r.amount_cents,
        "amount_paid_cents": r.amount_paid_cents,
        "source": r.source,
        "reversed_at": time::rfc3339_opt(r.reversed_at),
        "links": {
            "certificate": r.certificate_id,
            "user": r.user_id,
            "merchant": r.merchant_id,
            "location": r.location_id,
            "balance_certificate": r.balance_certificate_id,
            "reversal_certificate": r.reversal_certificate_id,
        },
        "created_at": time::rfc3339(r.created_at),
        // A redemption changes only when it is reversed.
        "updated_at": time::rfc3339(r.reversed_at.unwrap_or(r.created_at)),
    })
}

/// A `redemptions[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("redemptions", items)
        .link(
            "redemptions.certificate",
            "/v2/certificates/{redemptions.certificate}",
        )
        .link("redemptions.user", "/v2/users/{redemptions.user}")
        .link(
            "redemptions.merchant",
            "/v2/merchants/{redemptions.merchant}",
        )
        .link(
            "redemptions.location",
            "/v2/locations/{redemptions.location}",
        )
        .link(
            "redemptions.balance_certificate",
            "/v2/certificates/{redemptions.balance_certificate}",
        )
        .link(
            "redemptions.reversal_certificate",
            "/v2/certificates/{redemptions.reversal_certificate}",
        )
}

fn list(ctx: &Ctx, who: Actor) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = redemptions::list(ctx.db, who, page.limit(), page.offset())?;
    Ok(document(rows.iter().map(render).collect())
        .meta(page.meta(ctx.req, total, &[]))
        .respond(200))
}

/// `GET /v2/redemptions`: the caller's (user: of their certificates).
pub fn index(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    list(ctx, actor(ctx)?)
}

/// `GET /v2/users/{id}/redemptions`: self only.
pub fn of_user(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.user_id()?;
    if me != params[0] {
        return Err(ApiError::not_found());
    }
    list(ctx, Actor::User(me))
}

/// `GET /v2/merchants/{id}/redemptions`: the merchant itself only.
pub fn of_merchant(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.merchant_id()?;
    if me != params[0] {
        return Err(ApiError::not_found());
    }
    list(ctx, Actor::Merchant(me))
}

/// `GET /v2/redemptions/{id}`.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let r = redemptions::find(ctx.db, params[0], actor(ctx)?)?;
    Ok(document(vec![render(&r)]).respond(200))
}

enum By {
    Id,
    Code,
}

/// Reads `amount_to_redeem_cents` (absent: the whole value) and
/// `redemption_location_id`, flat or under `redemption`.
pub fn parse_input(body: &Value) -> Result<(Option<i64>, Option<String>), ApiError> {
    let mut f = Fields::new(body, "redemption", true, "Unable to create redemption")?;
    // Absent means the whole value; present (even null) must be an amount.
    let amount = f
        .present("amount_to_redeem_cents")
        .then(|| f.required_positive_cents("amount_to_redeem_cents"));
    let location = f.line("redemption_location_id", 64);
    f.finish()?;
    Ok((amount, location))
}

/// Redeems in the write transaction and answers 201 with the redemption
/// and, after a partial redemption, the balance under `linked.certificates`.
pub fn redeemed(
    db: &Connection,
    who: Actor,
    req: &RedeemRequest,
    public_url: &str,
) -> Result<Response, ApiError> {
    let (r, balance) = redemptions::redeem(db, who, req)?;
    let mut doc = document(vec![render(&r)]);
    if let Some(b) = balance {
        doc = doc.linked("certificates", vec![render_certificate(&b, public_url)]);
    }
    Ok(doc.respond(201))
}

fn redeem(ctx: &Ctx, target: &str, by: By) -> Result<Response, ApiError> {
    actor(ctx)?;
    let (amount, location) = parse_input(&ctx.body()?)?;
    if let By::Code = by {
        certificates::parse_code(target)?;
    }
    let principal = ctx.principal.clone();
    let target = target.to_string();
    let url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        let who = actor_of(&principal)?;
        let req = RedeemRequest {
            target: match by {
                By::Id => Target::Id(&target),
                By::Code => Target::Code(&target),
            },
            amount_cents: amount,
            location_id: location.as_deref(),
        };
        redeemed(db, who, &req, &url)
    })
}

/// `POST /v2/certificates/{id}/redemptions` (owner or merchant).
pub fn create_by_id(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    redeem(ctx, params[0], By::Id)
}

/// `POST /v2/claim_codes/{code}/redemptions` (merchant): the till's path.
pub fn create_by_code(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    ctx.merchant_id()?;
    code_budget(ctx, || redeem(ctx, params[0], By::Code))
}

/// `POST /v2/redemptions/{id}/reversals` (merchant, same day).
pub fn reverse(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    input::no_fields(&ctx.body()?, "reversal", "Unable to reverse redemption")?;
    let id = params[0].to_string();
    let url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        let (r, cert) = redemptions::reverse(db, &id, Actor::Merchant(&merchant_id))?;
        Ok(document(vec![render(&r)])
            .linked("certificates", vec![render_certificate(&cert, &url)])
            .respond(201))
    })
}
