//! `POST /v2/support_tickets`: anyone can write to the shop.
//!
//! Each ticket mails an acknowledgement to the address it names, so tickets
//! have a budget per client IP and per address, and the acknowledgement
//! quotes the sender's name and message only to an address known to be the
//! sender's: the signed-in user's own, confirmed account email. To any other address
//! the shop would be relaying a stranger's text.

use crate::api::input::{Fields, LONG, SHORT};
use crate::domain::{tickets, time, users};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Principal, Response};
use serde_json::{json, Value};

/// The ticket as JSON.
pub fn render(t: &tickets::Ticket) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "email": t.email,
        "message": t.message,
        "status": t.status,
        "links": {},
        "created_at": time::rfc3339(t.created_at),
        "updated_at": time::rfc3339(t.updated_at),
    })
}

/// Opens a ticket: name, email and message are required.
pub fn create(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(
        &body,
        "support_ticket",
        true,
        "Unable to create support ticket",
    )?;
    let name = f.required_line("name", SHORT);
    let email = f.required_email("email");
    let message = f.required_text("message", LONG);
    f.finish()?;
    let limiter = &ctx.app.limiter;
    let _taken = limiter.take(
        &limiter.tickets(&ctx.req.remote_ip, &email),
        "Too many support tickets; try again later",
    )?;
    // Quoted only to the signed-in user's own address, and only once its
    // owner confirmed it (anyone can sign up with any address).
    let own_address = match &ctx.principal {
        Principal::User { id, .. } => users::get(ctx.db, id)?.is_some_and(|u| {
            u.email_verified_at.is_some() && users::email_key(&u.email) == users::email_key(&email)
        }),
        _ => false,
    };
    ctx.write(move |db| {
        let t = tickets::open(db, &name, &email, &message, own_address)?;
        Ok(Document::new("support_tickets", vec![render(&t)]).respond(201))
    })
}
