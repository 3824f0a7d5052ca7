//! `POST /v2/support_tickets`: anyone can write to the shop.

use crate::api::input::{Fields, LONG, SHORT};
use crate::domain::{tickets, time};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Response};
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
    ctx.write(move |db| {
        let t = tickets::open(db, &name, &email, &message)?;
        Ok(Document::new("support_tickets", vec![render(&t)]).respond(201))
    })
}
