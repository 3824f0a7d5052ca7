//! The append-only ledger of value, and the audit that proves the
//! certificates table against it (`instagift check`).
//!
//! Every change of a certificate's open value writes one row here in the
//! same transaction: `issue` (+), `split` (− on the parent, + on the child),
//! `redeem` (−), `cancel`/`return` (−), `expire` (− the unpaid part written
//! off at expiry), `reverse` (+ on the certificate a reversal creates).

use crate::domain::status::Status;
use crate::domain::time;
use rusqlite::Connection;

/// The kinds of ledger rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Issue,
    Split,
    Redeem,
    Cancel,
    Return,
    Expire,
    Reverse,
}

impl Kind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Issue => "issue",
            Kind::Split => "split",
            Kind::Redeem => "redeem",
            Kind::Cancel => "cancel",
            Kind::Return => "return",
            Kind::Expire => "expire",
            Kind::Reverse => "reverse",
        }
    }
}

/// One movement of value on one certificate.
pub struct Entry<'a> {
    pub certificate_id: &'a str,
    pub merchant_id: &'a str,
    pub kind: Kind,
    pub face_delta: i64,
    pub paid_delta: i64,
    pub redemption_id: Option<&'a str>,
}

/// Appends a row.
pub fn append(db: &Connection, e: &Entry) -> rusqlite::Result<()> {
    db.prepare_cached(
        "INSERT INTO ledger (certificate_id, merchant_id, kind, face_delta, paid_delta, redemption_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute((e.certificate_id, e.merchant_id, e.kind.as_str(), e.face_delta, e.paid_delta, e.redemption_id, time::now()))?;
    Ok(())
}

/// Totals of face value in cents, per merchant and currency: amounts in
/// different currencies are never added together, so a surplus in one
/// cannot hide a shortfall in another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub merchant_id: String,
    pub merchant_name: String,
    pub currency: String,
    pub issued: i64,
    pub reversed: i64,
    pub open: i64,
    pub redeemed: i64,
    pub cancelled: i64,
    pub returned: i64,
    pub expired: i64,
    pub open_paid: i64,
}

/// The result of an audit: totals per merchant and every discrepancy found.
#[derive(Debug, Default)]
pub struct Report {
    pub merchants: Vec<Totals>,
    pub certificates: i64,
    pub ledger_rows: i64,
    pub problems: Vec<String>,
}

/// The sum of `column` over a merchant's ledger rows of one kind, in one
/// currency (the certificate's).
fn sum_kind(
    db: &Connection,
    (merchant_id, currency): (&str, &str),
    kind: &str,
    column: &str,
) -> rusqlite::Result<i64> {
    db.prepare_cached(&format!(
        "SELECT COALESCE(SUM(l.{column}), 0) FROM ledger l JOIN certificates c ON c.id = l.certificate_id
         WHERE l.merchant_id = ?1 AND c.currency = ?2 AND l.kind = ?3"
    ))?
    .query_row((merchant_id, currency, kind), |r| r.get(0))
}

/// Audits the whole database: each certificate against its ledger, each
/// merchant's conservation of value (face and paid), the redemptions
/// against the ledger, split rows netting to zero, foreign keys and
/// SQLite's own integrity check.
pub fn check(db: &Connection) -> rusqlite::Result<Report> {
    let mut report = Report::default();
    let tx = db.unchecked_transaction()?;
    report.certificates = tx.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))?;
    report.ledger_rows = tx.query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))?;

    // 1. Every certificate's open value equals the sum of its ledger rows.
    let mut stmt = tx.prepare(
        "SELECT c.id, c.status, c.face_value_cents, c.price_cents,
                COALESCE(SUM(l.face_delta), 0), COALESCE(SUM(l.paid_delta), 0), COUNT(l.seq)
         FROM certificates c LEFT JOIN ledger l ON l.certificate_id = c.id
         GROUP BY c.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    for row in rows {
        let (id, status, face, price, face_sum, paid_sum, n) = row?;
        // Read by name: a tampered row with an unknown status is reported,
        // not an error of the audit.
        let open = Status::parse(&status).is_some_and(Status::is_open);
        let (want_face, want_paid) = if open { (face, price) } else { (0, 0) };
        if n == 0 {
            report
                .problems
                .push(format!("certificate {id}: no ledger rows"));
        } else if face_sum != want_face || paid_sum != want_paid {
            report.problems.push(format!(
                "certificate {id} ({status}): ledger says face {face_sum} paid {paid_sum}, table says {want_face}/{want_paid}"
            ));
        }
    }
    drop(stmt);

    // 2. Conservation per merchant and currency.
    let books: Vec<(String, String, String)> = tx
        .prepare(
            "SELECT m.id, m.name, c.currency FROM merchants m
             JOIN (SELECT DISTINCT merchant_id, currency FROM certificates) c ON c.merchant_id = m.id
             ORDER BY m.created_at, m.rowid, c.currency",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, name, currency) in books {
        let book = (id.as_str(), currency.as_str());
        let sum = |kind: &str, column: &str| sum_kind(&tx, book, kind, column);
        let (open, open_paid): (i64, i64) = tx.query_row(
            "SELECT COALESCE(SUM(face_value_cents), 0), COALESCE(SUM(price_cents), 0) FROM certificates
             WHERE merchant_id = ?1 AND currency = ?2 AND status IN ('pending', 'assigned', 'gifted')",
            book,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let t = Totals {
            merchant_id: id.clone(),
            merchant_name: name,
            currency: currency.clone(),
            issued: sum("issue", "face_delta")?,
            reversed: sum("reverse", "face_delta")?,
            open,
            redeemed: -sum("redeem", "face_delta")?,
            cancelled: -sum("cancel", "face_delta")?,
            returned: -sum("return", "face_delta")?,
            expired: -sum("expire", "face_delta")?,
            open_paid,
        };
        let at = format!("merchant {id} in {currency}");
        if t.issued + t.reversed != t.open + t.redeemed + t.cancelled + t.returned + t.expired {
            report.problems.push(format!(
                "{at}: issued {} + reversed {} != open {} + redeemed {} + cancelled {} + returned {} + expired {}",
                t.issued, t.reversed, t.open, t.redeemed, t.cancelled, t.returned, t.expired
            ));
        }
        for column in ["face_delta", "paid_delta"] {
            let split = sum("split", column)?;
            if split != 0 {
                report.problems.push(format!(
                    "{at}: split rows of {column} sum to {split}, not 0"
                ));
            }
        }
        let paid_in = sum("issue", "paid_delta")? + sum("reverse", "paid_delta")?;
        let redeemed_paid = -sum("redeem", "paid_delta")?;
        let paid_out = redeemed_paid
            - (sum("cancel", "paid_delta")?
                + sum("return", "paid_delta")?
                + sum("expire", "paid_delta")?);
        if paid_in != t.open_paid + paid_out {
            report.problems.push(format!(
                "{at}: paid value in {paid_in} != open paid {} + paid out {paid_out}",
                t.open_paid
            ));
        }
        // The redemptions table agrees with the ledger.
        let redemptions = |only_reversed: &str| -> rusqlite::Result<(i64, i64)> {
            tx.prepare_cached(&format!(
                "SELECT COALESCE(SUM(r.amount_cents), 0), COALESCE(SUM(r.amount_paid_cents), 0)
                 FROM redemptions r JOIN certificates c ON c.id = r.certificate_id
                 WHERE r.merchant_id = ?1 AND c.currency = ?2{only_reversed}"
            ))?
            .query_row(book, |r| Ok((r.get(0)?, r.get(1)?)))
        };
        let (amount, paid) = redemptions("")?;
        if amount != t.redeemed || paid != redeemed_paid {
            report.problems.push(format!(
                "{at}: redemptions total {amount}/{paid} but ledger redeemed {}/{redeemed_paid}",
                t.redeemed
            ));
        }
        let (rev_amount, rev_paid) = redemptions(" AND r.reversed_at IS NOT NULL")?;
        if rev_amount != t.reversed || rev_paid != sum("reverse", "paid_delta")? {
            report.problems.push(format!(
                "{at}: reversed redemptions total {rev_amount}/{rev_paid} but ledger reversed {}",
                t.reversed
            ));
        }
        report.merchants.push(t);
    }

    // 3. Every foreign key resolves, and SQLite's own structures are sound.
    let fk: Vec<String> = tx
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| {
            Ok(format!(
                "{} row {:?} -> {}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for f in fk {
        report.problems.push(format!("foreign key: {f}"));
    }
    let integrity: String = tx.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        report.problems.push(format!("integrity: {integrity}"));
    }
    tx.commit()?;
    Ok(report)
}
