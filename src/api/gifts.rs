//! Gifts (`/v2/gifts`, `POST /v2/certificates/{id}/gifts`).

use crate::api::certificates::actor;
use crate::api::input::{Fields, LONG, SHORT};
use crate::domain::certificates::Actor;
use crate::domain::gifts::{self, Gift, GiftInput};
use crate::domain::time;
use crate::error::{refused_under, ApiError};
use crate::web::{Ctx, Document, Page, Response};
use serde_json::{json, Value};

/// The gift as JSON with its real delivery figures.
pub fn render(g: &Gift) -> Value {
    json!({
        "id": g.id,
        "href": format!("/v2/gifts/{}", g.id),
        "sender_name": g.sender_name,
        "sender_reply_to": g.sender_reply_to,
        "recipient_name": g.recipient_name,
        "recipient_email": g.recipient_email,
        "message": g.message,
        "send_date": g.send_date,
        "claimed_at": time::rfc3339_opt(g.claimed_at),
        "cancelled_at": time::rfc3339_opt(g.cancelled_at),
        "last_sent_at": time::rfc3339_opt(g.last_sent_at),
        "attempts": g.attempts,
        "failure_count": g.failure_count,
        "links": {
            "certificate": g.certificate_id,
            "sender": g.sender_id,
            "recipient": g.recipient_id,
        },
        "created_at": time::rfc3339(g.created_at),
        "updated_at": time::rfc3339(g.updated_at),
    })
}

/// A `gifts[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("gifts", items)
        .link("gifts.certificate", "/v2/certificates/{gifts.certificate}")
        .link("gifts.sender", "/v2/users/{gifts.sender}")
        .link("gifts.recipient", "/v2/users/{gifts.recipient}")
}

fn list(ctx: &Ctx, who: Actor, sent_only: bool) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = gifts::list(ctx.db, who, sent_only, page.limit(), page.offset())?;
    Ok(document(rows.iter().map(render).collect())
        .meta(page.meta(ctx.req, total, &[]))
        .respond(200))
}

/// `GET /v2/gifts`: gifts the user sent or received (merchant: of its
/// certificates).
pub fn index(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    list(ctx, actor(ctx)?, false)
}

/// `GET /v2/users/{id}/gifts`: self only.
pub fn of_user(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.user_id()?;
    if me != params[0] {
        return Err(ApiError::not_found());
    }
    list(ctx, Actor::User(me), false)
}

/// `GET /v2/users/{id}/sent_gifts`: self only.
pub fn sent_by_user(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.user_id()?;
    if me != params[0] {
        return Err(ApiError::not_found());
    }
    list(ctx, Actor::User(me), true)
}

/// `GET /v2/gifts/{id}`.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let g = gifts::find(ctx.db, params[0], actor(ctx)?)?;
    Ok(document(vec![render(&g)]).respond(200))
}

/// `POST /v2/certificates/{id}/gifts` (owner): send it to someone.
pub fn create(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let user_id = ctx.user_id()?.to_string();
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "gift", false, "Unable to create gift")?;
    let input = GiftInput {
        sender_name: f.required_line("sender_name", SHORT),
        sender_reply_to: f.email("sender_reply_to"),
        recipient_name: f.line("recipient_name", SHORT),
        recipient_email: f.required_email("recipient_email"),
        message: f.text("message", LONG),
        send_date: f.line("send_date", 10),
    };
    if let Some(d) = &input.send_date {
        if time::local_hour_on(d, 3, "UTC").is_none() {
            f.fail("send_date", "send_date must be a date (YYYY-MM-DD)");
        }
    }
    f.finish()?;
    let cert_id = params[0].to_string();
    let url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        let gift =
            gifts::give(db, &cert_id, &user_id, &input, &url).map_err(refused_under("gift"))?;
        Ok(document(vec![render(&gift)]).respond(201))
    })
}

/// `DELETE /v2/gifts/{id}` (sender): take back an unclaimed gift.
pub fn cancel(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let user_id = ctx.user_id()?.to_string();
    let id = params[0].to_string();
    ctx.write(move |db| {
        gifts::cancel(db, &id, &user_id)?;
        Ok(Response::no_content())
    })
}
