//! Certificates: the money core. Issue, look up, split, claim, print,
//! cancel and return; every change of value goes through `ledger`.
//! Redemptions and gifts have their own modules.

use crate::domain::catalog;
use crate::domain::ledger::{self, Kind};
use crate::domain::refusal::Refusal;
use crate::domain::{claim_code, gifts, ids, money, time, users};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row};

pub use crate::domain::status::{Status, STATUSES};
/// Most certificates issued by one request.
pub const MAX_QUANTITY: i64 = 100;

/// Who is acting: the checks of ownership depend on it.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    User(&'a str),
    Merchant(&'a str),
    Operator,
}

impl Actor<'_> {
    /// The `source` recorded on redemptions.
    pub fn source(&self) -> &'static str {
        match self {
            Actor::User(_) => "api-v2-user",
            Actor::Merchant(_) => "api-v2-merchant",
            Actor::Operator => "admin",
        }
    }
}

/// A certificate with the product and merchant facts it is shown with.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub id: String,
    pub merchant_id: String,
    pub product_id: String,
    pub product_option_id: String,
    pub user_id: Option<String>,
    pub parent_id: Option<String>,
    /// Canonical form (16 characters, no dashes).
    pub claim_code: String,
    pub status: Status,
    pub marked_as_printed: bool,
    pub currency: String,
    pub face_value_cents: i64,
    pub price_cents: i64,
    pub expires_at: Option<i64>,
    /// The face and price its paid share is reckoned against: its own when
    /// it was sold, carried on to the balance certificates of partial
    /// redemptions (see `money::paid_left`).
    pub basis_face_cents: i64,
    pub basis_price_cents: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub product_type: String,
    pub product_tagline: String,
    pub can_split_value: bool,
    pub is_print_only: bool,
    pub thumb: Option<String>,
    pub seller: String,
    pub time_zone: String,
}

impl Certificate {
    /// True while it carries open value (pending, assigned, gifted).
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }

    /// True once `expires_at` has passed.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// What a redemption could take right now: nothing unless open; after
    /// expiry only the paid value (the unpaid part is written off when it
    /// is next redeemed; see `redemptions::redeem`).
    pub fn redeemable_now(&self, now: i64) -> i64 {
        match (self.is_open(), self.is_expired(now)) {
            (false, _) => 0,
            (true, true) => self.price_cents,
            (true, false) => self.face_value_cents,
        }
    }

    /// May `actor` see and act on it? Others get 404.
    pub fn visible_to(&self, actor: Actor) -> bool {
        match actor {
            Actor::User(id) => self.user_id.as_deref() == Some(id),
            Actor::Merchant(id) => self.merchant_id == id,
            Actor::Operator => true,
        }
    }

    /// "$100 Tuscan Kitchen eGift Card".
    pub fn title(&self) -> String {
        let amount = money::format(self.face_value_cents, &self.currency);
        match self.product_type.as_str() {
            "GiftCertificate" => format!("{amount} {} eGift Card", self.seller),
            _ => format!("{amount} {} {}", self.seller, self.product_tagline),
        }
    }
}

const SELECT: &str = "SELECT c.id, c.merchant_id, c.product_id, c.product_option_id, c.user_id, c.parent_id,
    c.claim_code, c.status, c.marked_as_printed, c.currency, c.face_value_cents, c.price_cents, c.expires_at,
    c.created_at, c.updated_at, p.type, p.tagline, p.can_split_value, p.is_print_only, p.gift_card_image,
    m.name, m.time_zone, c.basis_face_cents, c.basis_price_cents
    FROM certificates c JOIN products p ON p.id = c.product_id JOIN merchants m ON m.id = c.merchant_id";

fn from_row(r: &Row) -> rusqlite::Result<Certificate> {
    Ok(Certificate {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        product_id: r.get(2)?,
        product_option_id: r.get(3)?,
        user_id: r.get(4)?,
        parent_id: r.get(5)?,
        claim_code: r.get(6)?,
        status: r.get(7)?,
        marked_as_printed: r.get(8)?,
        currency: r.get(9)?,
        face_value_cents: r.get(10)?,
        price_cents: r.get(11)?,
        expires_at: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        product_type: r.get(15)?,
        product_tagline: r.get(16)?,
        can_split_value: r.get(17)?,
        is_print_only: r.get(18)?,
        thumb: r.get(19)?,
        seller: r.get(20)?,
        time_zone: r.get(21)?,
        basis_face_cents: r.get(22)?,
        basis_price_cents: r.get(23)?,
    })
}

/// The certificate with that id.
pub fn get(db: &Connection, id: &str) -> rusqlite::Result<Option<Certificate>> {
    db.prepare_cached(&format!("{SELECT} WHERE c.id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The certificate with that id, if `actor` may see it (404 otherwise).
pub fn find(db: &Connection, id: &str, actor: Actor) -> Result<Certificate, Refusal> {
    get(db, id)?
        .filter(|c| c.visible_to(actor))
        .ok_or(Refusal::NotFound)
}

/// The lookup form of a typed claim code (`claim_code::lookup_key`); a
/// typo in one of our own codes is a 400 before any lookup.
pub fn parse_code(input: &str) -> Result<String, Refusal> {
    claim_code::lookup_key(input).ok_or_else(|| {
        Refusal::refused(
            "Invalid claim code",
            "That claim code is not valid: check it for typos",
        )
    })
}

/// The certificate with that claim code (any input form), if `actor` may
/// see it.
pub fn find_by_code(db: &Connection, code: &str, actor: Actor) -> Result<Certificate, Refusal> {
    let canonical = parse_code(code)?;
    db.prepare_cached(&format!("{SELECT} WHERE c.claim_code = ?1"))?
        .query_row([canonical], from_row)
        .optional()?
        .filter(|c| c.visible_to(actor))
        .ok_or(Refusal::NotFound)
}

/// Filters of a certificate list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub user_id: Option<String>,
    pub merchant_id: Option<String>,
    pub status: Option<String>,
    pub product_type: Option<String>,
    /// Only certificates redeemable at this moment.
    pub available_at: Option<i64>,
}

/// A page of certificates (newest first) and the total matching.
pub fn list(
    db: &Connection,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<Certificate>, i64)> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(u) = &f.user_id {
        clauses.push("c.user_id = ?");
        params.push(SqlValue::Text(u.clone()));
    }
    if let Some(m) = &f.merchant_id {
        clauses.push("c.merchant_id = ?");
        params.push(SqlValue::Text(m.clone()));
    }
    if let Some(s) = &f.status {
        clauses.push("c.status = ?");
        params.push(SqlValue::Text(s.clone()));
    }
    if let Some(t) = &f.product_type {
        clauses.push("p.type = ?");
        params.push(SqlValue::Text(t.clone()));
    }
    if let Some(now) = f.available_at {
        clauses.push("c.status = 'assigned' AND c.face_value_cents > 0 AND (c.expires_at IS NULL OR c.expires_at > ?)");
        params.push(SqlValue::Integer(now));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let total: i64 = db
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM certificates c JOIN products p ON p.id = c.product_id{filter}"
        ))?
        .query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?;
    params.push(SqlValue::Integer(limit));
    params.push(SqlValue::Integer(offset));
    let rows = db
        .prepare_cached(&format!(
            "{SELECT}{filter} ORDER BY c.created_at DESC, c.rowid DESC LIMIT ? OFFSET ?"
        ))?
        .query_map(rusqlite::params_from_iter(params.iter()), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, total))
}

/// What a new certificate row is made of.
pub struct NewCertificate<'a> {
    pub merchant_id: &'a str,
    pub product_id: &'a str,
    pub product_option_id: &'a str,
    pub user_id: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    pub status: Status,
    pub currency: &'a str,
    pub face_value_cents: i64,
    pub price_cents: i64,
    pub expires_at: Option<i64>,
    /// `(face, price)` to reckon its paid share against; None: its own.
    pub basis: Option<(i64, i64)>,
}

/// A claim code no certificate has yet.
pub fn fresh_code(db: &Connection) -> Result<String, Refusal> {
    for _ in 0..8 {
        let code = claim_code::generate();
        let taken: bool = db
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM certificates WHERE claim_code = ?1)")?
            .query_row([&code], |r| r.get(0))?;
        if !taken {
            return Ok(code);
        }
    }
    Err(Refusal::internal("could not find a free claim code"))
}

/// Inserts a certificate and the ledger row that brings its value in.
pub fn insert(
    db: &Connection,
    c: &NewCertificate,
    kind: Kind,
    redemption_id: Option<&str>,
) -> Result<String, Refusal> {
    let id = ids::new_id();
    let code = fresh_code(db)?;
    let now = time::now();
    let (basis_face, basis_price) = c.basis.unwrap_or((c.face_value_cents, c.price_cents));
    db.prepare_cached(
        "INSERT INTO certificates (id, merchant_id, product_id, product_option_id, user_id, parent_id, claim_code,
            status, currency, face_value_cents, price_cents, expires_at, created_at, updated_at,
            basis_face_cents, basis_price_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15)",
    )?
    .execute(rusqlite::params![
        id, c.merchant_id, c.product_id, c.product_option_id, c.user_id, c.parent_id, code, c.status,
        c.currency, c.face_value_cents, c.price_cents, c.expires_at, now, basis_face, basis_price
    ])?;
    ledger::append(
        db,
        &ledger::Entry {
            certificate_id: &id,
            merchant_id: c.merchant_id,
            kind,
            face_delta: c.face_value_cents,
            paid_delta: c.price_cents,
            redemption_id,
        },
    )?;
    Ok(id)
}

/// Sets status, owner, value and code of a stored certificate.
pub fn store(db: &Connection, c: &Certificate) -> rusqlite::Result<()> {
    db.prepare_cached(
        "UPDATE certificates SET status = ?2, face_value_cents = ?3, price_cents = ?4,
            marked_as_printed = ?5, updated_at = ?6, basis_face_cents = ?7, basis_price_cents = ?8
         WHERE id = ?1",
    )?
    .execute(rusqlite::params![
        c.id,
        c.status,
        c.face_value_cents,
        c.price_cents,
        c.marked_as_printed,
        time::now(),
        c.basis_face_cents,
        c.basis_price_cents
    ])?;
    // The indexed columns are written only when they changed: SQLite
    // rewrites an index whose column is SET even to the same value, and
    // those pages would cost a WAL frame each on every redemption.
    db.prepare_cached("UPDATE certificates SET user_id = ?2 WHERE id = ?1 AND user_id IS NOT ?2")?
        .execute((&c.id, &c.user_id))?;
    db.prepare_cached(
        "UPDATE certificates SET claim_code = ?2 WHERE id = ?1 AND claim_code IS NOT ?2",
    )?
    .execute((&c.id, &c.claim_code))?;
    Ok(())
}

/// Re-reads a certificate that must exist.
pub fn reload(db: &Connection, id: &str) -> Result<Certificate, Refusal> {
    get(db, id)?.ok_or_else(|| Refusal::internal(format!("certificate {id} vanished")))
}

/// An issue request from a merchant.
pub struct IssueRequest {
    pub product_option_id: String,
    pub quantity: i64,
    pub recipient_email: Option<String>,
    pub price_cents: Option<i64>,
    pub expires_at: Option<i64>,
}

/// Issues `quantity` certificates of an option of the merchant's. With a
/// registered recipient they are `assigned` to them; with an unregistered
/// address `gifted`, with a gift email each; without, `pending`. Inventory
/// is taken in the same transaction and never goes below zero.
pub fn issue(
    db: &Connection,
    merchant_id: &str,
    req: &IssueRequest,
    public_url: &str,
) -> Result<Vec<Certificate>, Refusal> {
    let title = "Unable to issue certificate";
    let option = catalog::product_option(db, &req.product_option_id)?;
    let product = match &option {
        Some(o) => catalog::product(db, &o.product_id)?.filter(|p| p.merchant_id == merchant_id),
        None => None,
    };
    let (Some(option), Some(product)) = (option, product) else {
        return Err(Refusal::field(
            title,
            "product_option_id",
            "product option not found",
        ));
    };
    if let Some(limit) = option.limit_per_order {
        if req.quantity > limit {
            return Err(Refusal::field(
                title,
                "quantity",
                format!("quantity exceeds the limit per order ({limit})"),
            ));
        }
    }
    if let Some(count) = option.count {
        if count < req.quantity {
            return Err(Refusal::field(
                title,
                "quantity",
                format!("only {count} left in stock"),
            ));
        }
        db.execute(
            "UPDATE product_options SET count = count - ?2, updated_at = ?3 WHERE id = ?1 AND count >= ?2",
            (&option.id, req.quantity, time::now()),
        )?;
    }
    let price = req.price_cents.unwrap_or(option.price_cents);
    if price > option.face_value_cents {
        return Err(Refusal::field(
            title,
            "price_cents",
            "price_cents must not exceed the face value",
        ));
    }
    let recipient = match &req.recipient_email {
        // Only into an account whose owner proved the mailbox: anyone can
        // sign up with any address before the shop issues to it.
        Some(email) => users::find_verified(db, email)?,
        None => None,
    };
    let status = match (&req.recipient_email, &recipient) {
        (_, Some(_)) => Status::Assigned,
        (Some(_), None) => Status::Gifted,
        (None, None) => Status::Pending,
    };
    let merchant = catalog::merchant(db, merchant_id)?.ok_or(Refusal::NotFound)?;
    let mut issued = Vec::new();
    for _ in 0..req.quantity {
        let id = insert(
            db,
            &NewCertificate {
                merchant_id,
                product_id: &product.id,
                product_option_id: &option.id,
                user_id: recipient.as_ref().map(|u| u.id.as_str()),
                parent_id: None,
                status,
                currency: &option.currency,
                face_value_cents: option.face_value_cents,
                price_cents: price,
                expires_at: req.expires_at,
                basis: None,
            },
            Kind::Issue,
            None,
        )?;
        let cert = reload(db, &id)?;
        if status == Status::Gifted {
            let email = req.recipient_email.as_deref().unwrap_or_default();
            gifts::create(
                db,
                &cert,
                None,
                &gifts::GiftInput {
                    sender_name: merchant.name.clone(),
                    recipient_email: email.to_string(),
                    ..gifts::GiftInput::default()
                },
                public_url,
            )?;
        }
        issued.push(cert);
    }
    Ok(issued)
}

/// Splits `new_face` off an owned, assigned, splittable certificate into a
/// new child certificate. The price is divided by `money::paid_left`: the
/// parent keeps the paid value of what it keeps, reckoned against its sale,
/// so many small splits leave it the same paid value as one large one; the
/// child is a sale of its own from then on. Returns (original, child).
pub fn split(
    db: &Connection,
    id: &str,
    user_id: &str,
    new_face: i64,
) -> Result<(Certificate, Certificate), Refusal> {
    let title = "Unable to split certificate";
    let mut cert = find(db, id, Actor::User(user_id))?;
    if cert.status != Status::Assigned {
        return Err(Refusal::refused(
            title,
            format!(
                "Only assigned certificates can be split (this one is {})",
                cert.status
            ),
        ));
    }
    if !cert.can_split_value {
        return Err(Refusal::refused(
            title,
            "This certificate's value cannot be split",
        ));
    }
    if cert.is_expired(time::now()) {
        return Err(Refusal::refused(title, "This certificate has expired"));
    }
    if new_face <= 0 || new_face >= cert.face_value_cents {
        return Err(Refusal::field(
            title,
            "new_face_value_cents",
            format!(
                "new_face_value_cents must be more than 0 and less than {}",
                cert.face_value_cents
            ),
        ));
    }
    let kept = money::paid_left(
        cert.basis_face_cents,
        cert.basis_price_cents,
        cert.face_value_cents - new_face,
    )
    .min(cert.price_cents);
    let child_price = cert.price_cents - kept;
    let owner = cert.user_id.clone();
    let child = Moved {
        face: new_face,
        paid: child_price,
        status: Status::Assigned,
        owner,
        basis: None,
    };
    let child_id = move_value(db, &mut cert, child)?;
    store(db, &cert)?;
    Ok((reload(db, &cert.id)?, reload(db, &child_id)?))
}

/// What `move_value` puts on the new child certificate.
pub struct Moved {
    pub face: i64,
    pub paid: i64,
    pub status: Status,
    pub owner: Option<String>,
    /// The basis it inherits (a balance goes on reckoning against the sale);
    /// None: a sale of its own.
    pub basis: Option<(i64, i64)>,
}

/// Moves value out of `cert` (in memory; the caller stores it) into a new
/// child certificate with a new claim code, writing both split rows.
pub fn move_value(db: &Connection, cert: &mut Certificate, m: Moved) -> Result<String, Refusal> {
    let (face, paid) = (m.face, m.paid);
    let child_id = insert(
        db,
        &NewCertificate {
            merchant_id: &cert.merchant_id,
            product_id: &cert.product_id,
            product_option_id: &cert.product_option_id,
            user_id: m.owner.as_deref(),
            parent_id: Some(&cert.id),
            status: m.status,
            currency: &cert.currency,
            face_value_cents: face,
            price_cents: paid,
            expires_at: cert.expires_at,
            basis: m.basis,
        },
        Kind::Split,
        None,
    )?;
    ledger::append(
        db,
        &ledger::Entry {
            certificate_id: &cert.id,
            merchant_id: &cert.merchant_id,
            kind: Kind::Split,
            face_delta: -face,
            paid_delta: -paid,
            redemption_id: None,
        },
    )?;
    cert.face_value_cents -= face;
    cert.price_cents -= paid;
    Ok(child_id)
}

/// The contract's refusal for a certificate that is not open.
pub fn refusal(title: &'static str, status: Status) -> Refusal {
    let details = match status {
        Status::Redeemed => "This item has previously been redeemed",
        Status::Returned => "This item has been refunded to the customer",
        _ => return unavailable(title),
    };
    Refusal::refused(title, details)
}

/// The contract's refusal for a certificate that cannot be spent here.
pub fn unavailable(title: &'static str) -> Refusal {
    Refusal::refused(title, "That item is not available for redemption")
}

/// Claims a certificate by code for `user_id`: ownership moves, status
/// becomes `assigned`, an open gift is marked claimed, and the code is
/// rotated so the previous holder can no longer use it. Claiming one's own
/// assigned certificate changes nothing.
pub fn claim(db: &Connection, code: &str, user_id: &str) -> Result<Certificate, Refusal> {
    let mut cert = find_by_code(db, code, Actor::Operator)?;
    if !cert.is_open() {
        return Err(refusal("Unable to claim certificate", cert.status));
    }
    if cert.status == Status::Assigned && cert.user_id.as_deref() == Some(user_id) {
        return Ok(cert);
    }
    if cert.status == Status::Gifted && cert.user_id.as_deref() == Some(user_id) {
        // The giver typing their own gift's code takes the gift back, as
        // cancelling it would: it must never show as claimed by its sender.
        gifts::take_back(db, &mut cert)?;
        return reload(db, &cert.id);
    }
    gifts::mark_claimed(db, &cert.id, user_id)?;
    cert.user_id = Some(user_id.to_string());
    cert.status = Status::Assigned;
    cert.claim_code = fresh_code(db)?;
    store(db, &cert)?;
    reload(db, &cert.id)
}

/// Sets `marked_as_printed` on an owned certificate.
pub fn set_printed(
    db: &Connection,
    id: &str,
    user_id: &str,
    printed: bool,
) -> Result<Certificate, Refusal> {
    let mut cert = find(db, id, Actor::User(user_id))?;
    cert.marked_as_printed = printed;
    store(db, &cert)?;
    reload(db, id)
}

/// Voids (`cancelled`) or refunds (`returned`) an open certificate of the
/// merchant's; its whole open value leaves through the ledger and any gift
/// email not yet sent is withdrawn.
pub fn void(db: &Connection, id: &str, actor: Actor, kind: Kind) -> Result<Certificate, Refusal> {
    let (title, status) = match kind {
        Kind::Cancel => ("Unable to cancel certificate", Status::Cancelled),
        _ => ("Unable to return certificate", Status::Returned),
    };
    let mut cert = find(db, id, actor)?;
    if !cert.is_open() {
        let details = match cert.status {
            Status::Redeemed => "This item has previously been redeemed",
            Status::Returned => "This item has been refunded to the customer",
            _ => "This item has been cancelled",
        };
        return Err(Refusal::refused(title, details));
    }
    ledger::append(
        db,
        &ledger::Entry {
            certificate_id: &cert.id,
            merchant_id: &cert.merchant_id,
            kind,
            face_delta: -cert.face_value_cents,
            paid_delta: -cert.price_cents,
            redemption_id: None,
        },
    )?;
    gifts::withdraw_open(db, &cert.id)?;
    cert.status = status;
    store(db, &cert)?;
    reload(db, id)
}
