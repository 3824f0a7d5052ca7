//! Gifts: a certificate sent to someone by email, claimed with its code.

use crate::domain::certificates::{self, Actor, Certificate, Status};
use crate::domain::refusal::Refusal;
use crate::domain::{claim_code, ids, money, outbox, time};
use rusqlite::{Connection, OptionalExtension, Row};

/// What the sender fills in.
#[derive(Debug, Clone, Default)]
pub struct GiftInput {
    pub sender_name: String,
    pub sender_reply_to: Option<String>,
    pub recipient_name: Option<String>,
    pub recipient_email: String,
    pub message: Option<String>,
    /// YYYY-MM-DD in the merchant's calendar; None sends now.
    pub send_date: Option<String>,
}

/// A gift with its delivery figures from the outbox.
#[derive(Debug, Clone)]
pub struct Gift {
    pub id: String,
    pub certificate_id: String,
    pub sender_id: Option<String>,
    pub recipient_id: Option<String>,
    pub sender_name: String,
    pub sender_reply_to: Option<String>,
    pub recipient_name: Option<String>,
    pub recipient_email: String,
    pub message: Option<String>,
    pub send_date: Option<String>,
    pub claimed_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub attempts: i64,
    pub failure_count: i64,
    pub merchant_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str =
    "SELECT g.id, g.certificate_id, g.sender_id, g.recipient_id, g.sender_name, g.sender_reply_to,
    g.recipient_name, g.recipient_email, g.message, g.send_date, g.claimed_at, g.cancelled_at,
    (SELECT MAX(o.last_sent_at) FROM outbox o WHERE o.gift_id = g.id),
    (SELECT COALESCE(SUM(o.attempts), 0) FROM outbox o WHERE o.gift_id = g.id),
    (SELECT COALESCE(SUM(o.failure_count), 0) FROM outbox o WHERE o.gift_id = g.id),
    c.merchant_id, g.created_at, g.updated_at
    FROM gifts g JOIN certificates c ON c.id = g.certificate_id";

fn from_row(r: &Row) -> rusqlite::Result<Gift> {
    Ok(Gift {
        id: r.get(0)?,
        certificate_id: r.get(1)?,
        sender_id: r.get(2)?,
        recipient_id: r.get(3)?,
        sender_name: r.get(4)?,
        sender_reply_to: r.get(5)?,
        recipient_name: r.get(6)?,
        recipient_email: r.get(7)?,
        message: r.get(8)?,
        send_date: r.get(9)?,
        claimed_at: r.get(10)?,
        cancelled_at: r.get(11)?,
        last_sent_at: r.get(12)?,
        attempts: r.get(13)?,
        failure_count: r.get(14)?,
        merchant_id: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

fn visible(g: &Gift, actor: Actor) -> bool {
    match actor {
        Actor::User(id) => {
            g.sender_id.as_deref() == Some(id) || g.recipient_id.as_deref() == Some(id)
        }
        Actor::Merchant(id) => g.merchant_id == id,
        Actor::Operator => true,
    }
}

/// The gift with that id, if `actor` may see it.
pub fn find(db: &Connection, id: &str, actor: Actor) -> Result<Gift, Refusal> {
    db.prepare_cached(&format!("{SELECT} WHERE g.id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .filter(|g| visible(g, actor))
        .ok_or(Refusal::NotFound)
}

/// A page of the gifts `actor` sent or received (merchant: of its
/// certificates), newest first, with the total. `sent_only` limits a user
/// to the gifts they sent.
pub fn list(
    db: &Connection,
    actor: Actor,
    sent_only: bool,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<Gift>, i64)> {
    let (filter, who) = match actor {
        Actor::User(id) if sent_only => ("g.sender_id = ?1", id),
        Actor::User(id) => ("(g.sender_id = ?1 OR g.recipient_id = ?1)", id),
        Actor::Merchant(id) => ("c.merchant_id = ?1", id),
        Actor::Operator => ("?1 = ?1", ""),
    };
    let rows = db
        .prepare_cached(&format!(
            "{SELECT} WHERE {filter} ORDER BY g.created_at DESC, g.rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((who, limit, offset), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db
        .prepare_cached(&format!("SELECT COUNT(*) FROM gifts g JOIN certificates c ON c.id = g.certificate_id WHERE {filter}"))?
        .query_row([who], |r| r.get(0))?;
    Ok((rows, total))
}

/// Escapes text for the HTML part of an email.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Records a gift of `cert` and queues its email (due now, or at 03:00 of
/// `send_date` in the merchant's time zone). The caller sets the status.
pub fn create(
    db: &Connection,
    cert: &Certificate,
    sender_id: Option<&str>,
    input: &GiftInput,
    public_url: &str,
) -> Result<Gift, Refusal> {
    let now = time::now();
    let send_at = match &input.send_date {
        Some(date) => time::local_hour_on(date, 3, &cert.time_zone)
            .ok_or_else(|| {
                Refusal::field(
                    "Unable to create gift",
                    "send_date",
                    "send_date must be a date (YYYY-MM-DD)",
                )
            })?
            .max(now),
        None => now,
    };
    let id = ids::new_id();
    db.execute(
        "INSERT INTO gifts (id, certificate_id, sender_id, sender_name, sender_reply_to, recipient_name,
            recipient_email, message, send_date, send_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        rusqlite::params![
            id, cert.id, sender_id, input.sender_name, input.sender_reply_to, input.recipient_name,
            input.recipient_email, input.message, input.send_date, send_at, now
        ],
    )?;
    let amount = money::format(cert.face_value_cents, &cert.currency);
    let code = claim_code::display(&cert.claim_code);
    let greeting = input.recipient_name.as_deref().unwrap_or("Hello");
    let message = input.message.as_deref().unwrap_or("");
    let subject = format!(
        "{} sent you a {amount} gift from {}",
        input.sender_name, cert.seller
    );
    let text = format!(
        "{greeting},\n\n{} sent you a {amount} gift certificate for {}.\n\n{message}\n\n\
         Your claim code: {code}\n\nClaim it at {public_url} or show the code at the shop.\n",
        input.sender_name, cert.seller
    );
    let html = format!(
        "<p>{},</p><p>{} sent you a {} gift certificate for {}.</p><blockquote>{}</blockquote>\
         <p>Your claim code: <strong>{}</strong></p><p><a href=\"{}\">Claim it</a> or show the code at the shop.</p>",
        escape_html(greeting),
        escape_html(&input.sender_name),
        escape_html(&amount),
        escape_html(&cert.seller),
        escape_html(message).replace('\n', "<br>"),
        escape_html(&code),
        escape_html(public_url),
    );
    outbox::enqueue(
        db,
        &outbox::Mail {
            kind: "gift",
            to: &input.recipient_email,
            subject: &subject,
            text: &text,
            html: Some(&html),
            gift_id: Some(&id),
            due_at: send_at,
        },
    )?;
    find(db, &id, Actor::Operator)
}

/// Sends an owned, assigned certificate as a gift: status `gifted`.
pub fn give(
    db: &Connection,
    cert_id: &str,
    user_id: &str,
    input: &GiftInput,
    public_url: &str,
) -> Result<Gift, Refusal> {
    let mut cert = certificates::find(db, cert_id, Actor::User(user_id))?;
    if cert.status != Status::Assigned {
        return Err(Refusal::refused(
            "Unable to create gift",
            format!(
                "Only assigned certificates can be gifted (this one is {})",
                cert.status
            ),
        ));
    }
    if let Some(date) = &input.send_date {
        let today = time::local_date(time::now(), &cert.time_zone);
        if date.as_str() < today.as_str() {
            return Err(Refusal::field(
                "Unable to create gift",
                "send_date",
                "send_date must not be in the past",
            ));
        }
    }
    let gift = create(db, &cert, Some(user_id), input, public_url)?;
    cert.status = Status::Gifted;
    certificates::store(db, &cert)?;
    Ok(gift)
}

/// Marks the certificate's open gift (if any) claimed by `user_id` and
/// withdraws its email if it has not gone out yet.
pub fn mark_claimed(db: &Connection, cert_id: &str, user_id: &str) -> rusqlite::Result<()> {
    let now = time::now();
    db.execute(
        "UPDATE gifts SET claimed_at = ?2, recipient_id = ?3, updated_at = ?2
         WHERE certificate_id = ?1 AND claimed_at IS NULL AND cancelled_at IS NULL",
        (cert_id, now, user_id),
    )?;
    withdraw_mail(db, cert_id)
}

/// Cancels the certificate's open gift (if any) and its unsent email.
pub fn withdraw_open(db: &Connection, cert_id: &str) -> rusqlite::Result<()> {
    let now = time::now();
    db.execute(
        "UPDATE gifts SET cancelled_at = ?2, updated_at = ?2
         WHERE certificate_id = ?1 AND claimed_at IS NULL AND cancelled_at IS NULL",
        (cert_id, now),
    )?;
    withdraw_mail(db, cert_id)
}

fn withdraw_mail(db: &Connection, cert_id: &str) -> rusqlite::Result<()> {
    db.execute(
        "UPDATE outbox SET status = 'cancelled'
         WHERE status = 'queued' AND gift_id IN (SELECT id FROM gifts WHERE certificate_id = ?1)",
        [cert_id],
    )?;
    Ok(())
}

/// The sender takes back an unclaimed gift: the certificate returns to
/// `assigned` with a new claim code, so the emailed one no longer works.
pub fn cancel(db: &Connection, gift_id: &str, user_id: &str) -> Result<(), Refusal> {
    let gift = find(db, gift_id, Actor::User(user_id))?;
    if gift.sender_id.as_deref() != Some(user_id) {
        return Err(Refusal::NotFound);
    }
    if gift.claimed_at.is_some() || gift.cancelled_at.is_some() {
        return Err(Refusal::refused(
            "Unable to cancel gift",
            "This gift has already been claimed or cancelled",
        ));
    }
    let mut cert = certificates::reload(db, &gift.certificate_id)?;
    if cert.status != Status::Gifted || cert.user_id.as_deref() != Some(user_id) {
        return Err(Refusal::refused(
            "Unable to cancel gift",
            "This gift can no longer be cancelled",
        ));
    }
    take_back(db, &mut cert)
}

/// The sender has their gifted certificate back: its gift and unsent email
/// are withdrawn, it is `assigned` again, and it gets a new claim code so
/// the emailed one no longer works.
pub fn take_back(db: &Connection, cert: &mut Certificate) -> Result<(), Refusal> {
    withdraw_open(db, &cert.id)?;
    cert.status = Status::Assigned;
    cert.claim_code = certificates::fresh_code(db)?;
    certificates::store(db, cert)?;
    Ok(())
}
