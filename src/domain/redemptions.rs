//! Redemptions: spending a certificate's value, exactly to the cent, and
//! undoing a mistaken one the same day.

use crate::domain::catalog;
use crate::domain::certificates::{
    self, refusal, Actor, Certificate, Moved, NewCertificate, Status,
};
use crate::domain::ledger::{self, Kind};
use crate::domain::refusal::Refusal;
use crate::domain::{gifts, ids, money, time};
use rusqlite::{Connection, OptionalExtension, Row};

const TITLE: &str = "Unable to create redemption";

/// A redemption as stored.
#[derive(Debug, Clone)]
pub struct Redemption {
    pub id: String,
    pub certificate_id: String,
    pub merchant_id: String,
    pub user_id: Option<String>,
    pub location_id: Option<String>,
    pub balance_certificate_id: Option<String>,
    pub amount_cents: i64,
    pub amount_paid_cents: i64,
    pub source: String,
    pub reversed_at: Option<i64>,
    pub reversal_certificate_id: Option<String>,
    pub created_at: i64,
}

const SELECT: &str = "SELECT id, certificate_id, merchant_id, user_id, location_id, balance_certificate_id,
    amount_cents, amount_paid_cents, source, reversed_at, reversal_certificate_id, created_at FROM redemptions";

fn from_row(r: &Row) -> rusqlite::Result<Redemption> {
    Ok(Redemption {
        id: r.get(0)?,
        certificate_id: r.get(1)?,
        merchant_id: r.get(2)?,
        user_id: r.get(3)?,
        location_id: r.get(4)?,
        balance_certificate_id: r.get(5)?,
        amount_cents: r.get(6)?,
        amount_paid_cents: r.get(7)?,
        source: r.get(8)?,
        reversed_at: r.get(9)?,
        reversal_certificate_id: r.get(10)?,
        created_at: r.get(11)?,
    })
}

fn visible(r: &Redemption, actor: Actor) -> bool {
    match actor {
        Actor::User(id) => r.user_id.as_deref() == Some(id),
        Actor::Merchant(id) => r.merchant_id == id,
        Actor::Operator => true,
    }
}

/// The redemption with that id, if `actor` may see it.
pub fn find(db: &Connection, id: &str, actor: Actor) -> Result<Redemption, Refusal> {
    db.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .filter(|r| visible(r, actor))
        .ok_or(Refusal::NotFound)
}

/// A page of the redemptions `actor` may see, newest first, and the total.
pub fn list(
    db: &Connection,
    actor: Actor,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<Redemption>, i64)> {
    let (filter, who) = match actor {
        Actor::User(id) => ("user_id = ?1", id),
        Actor::Merchant(id) => ("merchant_id = ?1", id),
        Actor::Operator => ("?1 = ?1", ""),
    };
    let rows = db
        .prepare_cached(&format!(
            "{SELECT} WHERE {filter} ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((who, limit, offset), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db
        .prepare_cached(&format!("SELECT COUNT(*) FROM redemptions WHERE {filter}"))?
        .query_row([who], |r| r.get(0))?;
    Ok((rows, total))
}

/// Which certificate to redeem.
pub enum Target<'a> {
    Id(&'a str),
    Code(&'a str),
}

/// A redemption request.
pub struct RedeemRequest<'a> {
    pub target: Target<'a>,
    /// None: the whole (remaining) value.
    pub amount_cents: Option<i64>,
    pub location_id: Option<&'a str>,
}

/// Redeems a certificate. Returns the redemption and, after a partial
/// redemption of a splittable certificate, the balance certificate.
///
/// The rules (see docs/reference.md, Money: Redemptions): the whole value by
/// default; a smaller amount of a splittable certificate lowers its face to the
/// amount, redeems it, and puts the rest on a new certificate for the same
/// owner; a smaller amount of an unsplittable one redeems the whole value; more
/// than the value is refused. After expiry the certificate is worth only its
/// paid value: the unpaid part is written off (`expire`) first.
pub fn redeem(
    db: &Connection,
    actor: Actor,
    req: &RedeemRequest,
) -> Result<(Redemption, Option<Certificate>), Refusal> {
    let mut cert = match req.target {
        Target::Id(id) => certificates::find(db, id, actor)?,
        Target::Code(code) => certificates::find_by_code(db, code, actor)?,
    };
    if !cert.is_open() {
        return Err(refusal(TITLE, cert.status));
    }
    if let Actor::User(_) = actor {
        if cert.status != Status::Assigned {
            return Err(certificates::unavailable(TITLE));
        }
        if cert.is_print_only {
            return Err(Refusal::refused(
                TITLE,
                "This item can only be redeemed in print at the merchant",
            ));
        }
    }
    let location_id = pick_location(db, &cert, req.location_id)?;
    let now = time::now();
    if cert.is_expired(now) {
        if cert.price_cents == 0 {
            return Err(certificates::unavailable(TITLE));
        }
        let unpaid = cert.face_value_cents - cert.price_cents;
        if unpaid > 0 {
            ledger::append(
                db,
                &ledger::Entry {
                    certificate_id: &cert.id,
                    merchant_id: &cert.merchant_id,
                    kind: Kind::Expire,
                    face_delta: -unpaid,
                    paid_delta: 0,
                    redemption_id: None,
                },
            )?;
            cert.face_value_cents = cert.price_cents;
        }
        // From now on every cent of it is paid: reckon 1:1.
        cert.basis_face_cents = cert.price_cents;
        cert.basis_price_cents = cert.price_cents;
    }
    let face = cert.face_value_cents;
    let mut amount = req.amount_cents.unwrap_or(face);
    if amount > face {
        return Err(Refusal::field(
            TITLE,
            "amount_to_redeem_cents",
            format!(
                "The amount exceeds the value of this item ({})",
                money::format(face, &cert.currency)
            ),
        ));
    }
    if amount < face && !cert.can_split_value {
        amount = face;
    }
    let redemption_id = ids::new_id();
    let mut balance_id = None;
    if amount < face {
        let (status, owner) = match cert.status {
            Status::Assigned => (Status::Assigned, cert.user_id.clone()),
            // A pending or gifted certificate spent at the till: the balance
            // goes to whoever holds the new code, printed on the receipt.
            _ => (Status::Pending, None),
        };
        let basis = (cert.basis_face_cents, cert.basis_price_cents);
        let balance = Moved {
            face: face - amount,
            paid: money::paid_left(basis.0, basis.1, face - amount).min(cert.price_cents),
            status,
            owner,
            basis: Some(basis),
        };
        balance_id = Some(certificates::move_value(db, &mut cert, balance)?);
    }
    let paid = cert.price_cents;
    // Only an assigned certificate's redemption is its owner's. A gifted or
    // pending one is spent by whoever holds the code: the giver must neither
    // see it nor get its reversal (which would pay them the gift back).
    let user_id = (cert.status == Status::Assigned)
        .then(|| cert.user_id.clone())
        .flatten();
    db.prepare_cached(
        "INSERT INTO redemptions (id, certificate_id, merchant_id, user_id, location_id, balance_certificate_id,
            amount_cents, amount_paid_cents, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(rusqlite::params![
        redemption_id, cert.id, cert.merchant_id, user_id, location_id, balance_id, amount, paid,
        actor.source(), now
    ])?;
    ledger::append(
        db,
        &ledger::Entry {
            certificate_id: &cert.id,
            merchant_id: &cert.merchant_id,
            kind: Kind::Redeem,
            face_delta: -amount,
            paid_delta: -paid,
            redemption_id: Some(&redemption_id),
        },
    )?;
    if cert.status == Status::Gifted {
        // Spent at the till before the gift email went out: withdraw it.
        gifts::withdraw_open(db, &cert.id)?;
    }
    cert.status = Status::Redeemed;
    certificates::store(db, &cert)?;
    let balance = match balance_id {
        Some(id) => Some(certificates::reload(db, &id)?),
        None => None,
    };
    Ok((find(db, &redemption_id, Actor::Operator)?, balance))
}

/// The location rules: a given location must be the merchant's; without
/// one, the merchant's only location is used, and several are a 400.
fn pick_location(
    db: &Connection,
    cert: &Certificate,
    given: Option<&str>,
) -> Result<Option<String>, Refusal> {
    if let Some(id) = given {
        return match catalog::location(db, id)? {
            Some(l) if l.merchant_id == cert.merchant_id => Ok(Some(l.id)),
            _ => Err(Refusal::field(
                TITLE,
                "redemption_location_id",
                "That location does not belong to this merchant",
            )),
        };
    }
    let mut ids = catalog::merchant_location_ids(db, &cert.merchant_id)?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        _ => Err(Refusal::refused(
            TITLE,
            "You must select a redemption location",
        )),
    }
}

/// Undoes a redemption made the same day (merchant's calendar): its value
/// comes back as a new certificate for the same owner.
pub fn reverse(
    db: &Connection,
    id: &str,
    actor: Actor,
) -> Result<(Redemption, Certificate), Refusal> {
    let title = "Unable to reverse redemption";
    let r = find(db, id, actor)?;
    if r.reversed_at.is_some() {
        return Err(Refusal::refused(
            title,
            "This redemption has already been reversed",
        ));
    }
    let cert = certificates::reload(db, &r.certificate_id)?;
    let now = time::now();
    if time::local_date(r.created_at, &cert.time_zone) != time::local_date(now, &cert.time_zone) {
        return Err(Refusal::refused(
            title,
            "Only redemptions made today can be reversed",
        ));
    }
    let status = if r.user_id.is_some() {
        Status::Assigned
    } else {
        Status::Pending
    };
    let new_id = certificates::insert(
        db,
        &NewCertificate {
            merchant_id: &cert.merchant_id,
            product_id: &cert.product_id,
            product_option_id: &cert.product_option_id,
            user_id: r.user_id.as_deref(),
            parent_id: Some(&cert.id),
            status,
            currency: &cert.currency,
            face_value_cents: r.amount_cents,
            price_cents: r.amount_paid_cents,
            expires_at: cert.expires_at,
            basis: None,
        },
        Kind::Reverse,
        Some(&r.id),
    )?;
    db.execute(
        "UPDATE redemptions SET reversed_at = ?2, reversal_certificate_id = ?3 WHERE id = ?1",
        (&r.id, now, &new_id),
    )?;
    Ok((
        find(db, &r.id, Actor::Operator)?,
        certificates::reload(db, &new_id)?,
    ))
}
