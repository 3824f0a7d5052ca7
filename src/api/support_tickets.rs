//! `POST /v2/support_tickets`: anyone can write to the shop.
//!
//! Each ticket mails an acknowledgement to the address it names, so tickets
//! have a budget per client IP and per address, and the acknowledgement
//! quotes the sender's name and message only to an address known to be the
//! sender's: the signed-in user's own account email. To any other address
//! the shop would be relaying a stranger's text.

use crate::api::input::{Fields, LONG, SHORT};
use crate::domain::{tickets, time};
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
    // The credentials were checked against this header's account.
    let own_address = matches!(ctx.principal, Principal::User { .. })
        && ctx
            .req
            .header("x-user-email")
            .is_some_and(|account| account.trim().eq_ignore_ascii_case(&email));
    ctx.write(move |db| {
        let t = tickets::open(db, &name, &email, &message, own_address)?;
        Ok(Document::new("support_tickets", vec![render(&t)]).respond(201))
    })
}
