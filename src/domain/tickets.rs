//! Support tickets from the public, visible to the operator.

use crate::domain::{ids, outbox, time};
use rusqlite::{Connection, Row};

/// A support ticket.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: String,
    pub name: String,
    pub email: String,
    pub message: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The columns `from_row` reads, in order.
pub const COLUMNS: &str = "id, name, email, message, status, created_at, updated_at";

/// A ticket from a row of `COLUMNS`.
pub fn from_row(r: &Row) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        message: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// Opens a ticket and queues a notice to the sender. The notice quotes the
/// name and message only when `quote` (the address is the sender's own).
pub fn open(
    db: &Connection,
    name: &str,
    email: &str,
    message: &str,
    quote: bool,
) -> rusqlite::Result<Ticket> {
    let id = ids::new_id();
    let now = time::now();
    db.execute(
        "INSERT INTO support_tickets (id, name, email, message, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        (&id, name, email, message, now),
    )?;
    let text = if quote {
        format!(
            "Hello {name},\n\nwe received your message and will answer soon.\n\n> {}\n",
            message.replace('\n', "\n> ")
        )
    } else {
        "Hello,\n\nwe received a support request naming this address and will answer \
         soon. If you did not write to us, you can ignore this message.\n"
            .to_string()
    };
    outbox::enqueue(
        db,
        &outbox::Mail {
            kind: "support_ticket",
            to: email,
            subject: "We received your support request",
            text: &text,
            html: None,
            gift_id: None,
            due_at: now,
        },
    )?;
    db.query_row(
        "SELECT id, name, email, message, status, created_at, updated_at FROM support_tickets WHERE id = ?1",
        [&id],
        from_row,
    )
}
