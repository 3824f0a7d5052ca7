//! The people side for the operator: users, gifts, support tickets (and
//! closing them) and the mail outbox (and sending a message again).

use super::Filters;
use crate::api::input::Fields;
use crate::api::{gifts as gift_api, support_tickets, users as user_api};
use crate::domain::certificates::Actor;
use crate::domain::{gifts, tickets, time, users};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Page, Response};
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::{json, Value};

/// `GET /admin/api/users?q=`: newest first; `q` matches email or name. Each
/// user carries `email` and `certificates_count`.
pub fn users(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let pattern = filters
        .text("q")?
        .map(|q| super::contains_pattern(&q.to_lowercase()));
    let filter = "FROM users u WHERE (?1 IS NULL OR u.email_norm LIKE ?1 ESCAPE '\\'
        OR lower(u.first_name || ' ' || u.last_name) LIKE ?1 ESCAPE '\\')";
    let items = ctx
        .db
        .prepare_cached(&format!(
            "SELECT u.id, u.email, u.first_name, u.last_name, u.last_login_at, u.created_at, u.updated_at,
                (SELECT COUNT(*) FROM certificates c WHERE c.user_id = u.id)
             {filter} ORDER BY u.created_at DESC, u.rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((&pattern, page.limit(), page.offset()), |r| {
            let u = users::from_row(r)?;
            let mut v = user_api::render(&u, true, None);
            v["certificates_count"] = json!(r.get::<_, i64>(7)?);
            Ok(v)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = ctx
        .db
        .prepare_cached(&format!("SELECT COUNT(*) {filter}"))?
        .query_row([&pattern], |r| r.get(0))?;
    Ok(user_api::document(items)
        .meta(filters.meta(&page, total))
        .respond(200))
}

/// `GET /admin/api/gifts?merchant_id=`: newest first.
pub fn gifts(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let merchant = filters.text("merchant_id")?;
    let who = match &merchant {
        Some(id) => Actor::Merchant(id),
        None => Actor::Operator,
    };
    let (rows, total) = gifts::list(ctx.db, who, false, page.limit(), page.offset())?;
    Ok(
        gift_api::document(rows.iter().map(gift_api::render).collect())
            .meta(filters.meta(&page, total))
            .respond(200),
    )
}

/// `GET /admin/api/support_tickets?status=open|closed`: newest first.
pub fn tickets(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let status = filters.one_of("status", &["open", "closed"])?;
    let filter = "FROM support_tickets WHERE (?1 IS NULL OR status = ?1)";
    let items = ctx
        .db
        .prepare_cached(&format!(
            "SELECT {} {filter} ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3",
            tickets::COLUMNS
        ))?
        .query_map((&status, page.limit(), page.offset()), |r| {
            tickets::from_row(r).map(|t| support_tickets::render(&t))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = ctx
        .db
        .prepare_cached(&format!("SELECT COUNT(*) {filter}"))?
        .query_row([&status], |r| r.get(0))?;
    Ok(Document::new("support_tickets", items)
        .meta(filters.meta(&page, total))
        .respond(200))
}

/// `PUT /admin/api/support_tickets/{id}` `{"support_ticket":{"status":
/// "closed"}}` (or `"open"` to reopen).
pub fn update_ticket(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(
        &body,
        "support_ticket",
        true,
        "Unable to update support ticket",
    )?;
    let status = f.required_line("status", 16);
    if !status.is_empty() && status != "open" && status != "closed" {
        f.fail("status", "status must be open or closed");
    }
    f.finish()?;
    let id = params[0].to_string();
    ctx.app.writer.run(move |db| {
        let changed = db.execute(
            "UPDATE support_tickets SET status = ?2, updated_at = ?3 WHERE id = ?1",
            (&id, &status, time::now()),
        )?;
        if changed == 0 {
            return Err(ApiError::not_found());
        }
        let t = db.query_row(
            &format!(
                "SELECT {} FROM support_tickets WHERE id = ?1",
                tickets::COLUMNS
            ),
            [&id],
            tickets::from_row,
        )?;
        Ok(Document::new("support_tickets", vec![support_tickets::render(&t)]).respond(200))
    })
}

/// Outbox statuses.
const MAIL_STATUSES: [&str; 4] = ["queued", "sent", "failed", "cancelled"];

const MAIL_COLUMNS: &str =
    "id, kind, to_addr, subject, body_text, gift_id, status, attempts, failure_count,
    last_error, next_attempt_at, last_sent_at, created_at";

fn mail_row(r: &Row) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, String>(0)?,
        "kind": r.get::<_, String>(1)?,
        "to": r.get::<_, String>(2)?,
        "subject": r.get::<_, String>(3)?,
        "body_text": r.get::<_, String>(4)?,
        "status": r.get::<_, String>(6)?,
        "attempts": r.get::<_, i64>(7)?,
        "failure_count": r.get::<_, i64>(8)?,
        "last_error": r.get::<_, Option<String>>(9)?,
        "next_attempt_at": time::rfc3339(r.get(10)?),
        "last_sent_at": time::rfc3339_opt(r.get(11)?),
        "links": { "gift": r.get::<_, Option<String>>(5)? },
        "created_at": time::rfc3339(r.get(12)?),
    }))
}

/// `GET /admin/api/outbox?status=&kind=`: every email, newest first, with
/// its text (without SMTP this is where the operator reads them).
pub fn outbox(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let status = filters.one_of("status", &MAIL_STATUSES)?;
    let kind = filters.text("kind")?;
    let filter = "FROM outbox WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)";
    let items = ctx
        .db
        .prepare_cached(&format!(
            "SELECT {MAIL_COLUMNS} {filter} ORDER BY created_at DESC, rowid DESC LIMIT ?3 OFFSET ?4"
        ))?
        .query_map((&status, &kind, page.limit(), page.offset()), mail_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = ctx
        .db
        .prepare_cached(&format!("SELECT COUNT(*) {filter}"))?
        .query_row((&status, &kind), |r| r.get(0))?;
    Ok(Document::new("outbox_messages", items)
        .meta(filters.meta(&page, total))
        .respond(200))
}

fn find_mail(db: &Connection, id: &str) -> Result<Option<Value>, ApiError> {
    Ok(db
        .query_row(
            &format!("SELECT {MAIL_COLUMNS} FROM outbox WHERE id = ?1"),
            [id],
            mail_row,
        )
        .optional()?)
}

/// `POST /admin/api/outbox/{id}/resend`: queues the email again, due now.
/// A withdrawn (`cancelled`) email stays withdrawn: it was cancelled
/// because its claim code no longer holds.
pub fn resend(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let id = params[0].to_string();
    ctx.app.writer.run(move |db| {
        let mail = find_mail(db, &id)?.ok_or_else(ApiError::not_found)?;
        if mail["status"] == "cancelled" {
            return Err(ApiError::bad_request(
                "Unable to resend email",
                "This email was withdrawn (its gift was claimed or cancelled) and cannot be sent again",
            ));
        }
        db.execute(
            "UPDATE outbox SET status = 'queued', next_attempt_at = ?2 WHERE id = ?1",
            (&id, time::now()),
        )?;
        let mail = find_mail(db, &id)?.ok_or_else(ApiError::not_found)?;
        Ok(Document::new("outbox_messages", vec![mail]).respond(200))
    })
}
