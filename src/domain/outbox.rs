//! The mail outbox: every email is a row written in the same transaction as
//! its cause; a background worker delivers it later.

use crate::domain::{ids, time};
use rusqlite::Connection;

/// One email to queue.
pub struct Mail<'a> {
    pub kind: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub gift_id: Option<&'a str>,
    /// Not delivered before this Unix second.
    pub due_at: i64,
}

/// Queues `mail`; returns the outbox row's id.
pub fn enqueue(db: &Connection, mail: &Mail) -> rusqlite::Result<String> {
    let id = ids::new_id();
    db.execute(
        "INSERT INTO outbox (id, kind, to_addr, subject, body_text, body_html, gift_id, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        (&id, mail.kind, mail.to, mail.subject, mail.text, mail.html, mail.gift_id, mail.due_at, time::now()),
    )?;
    Ok(id)
}
