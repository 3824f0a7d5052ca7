//! The books for the operator: the dashboard (outstanding liability and
//! today's and this month's flows per merchant), CSV exports, and a
//! consistent backup of the whole database to download.

use super::certificates::{owner_email, Emails};
use super::Filters;
use crate::domain::catalog::PRODUCT_TYPES;
use crate::domain::certificates::{self, Filter, STATUSES};
use crate::domain::{claim_code, ids, time};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Response};
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Issued, redeemed and reversed value since `since` (ledger `issue`,
/// `redeem` and `reverse` rows), for one merchant and currency.
fn flows(
    db: &Connection,
    merchant_id: &str,
    currency: &str,
    since: i64,
) -> Result<Value, ApiError> {
    let mut out = json!({
        "issued_count": 0, "issued_cents": 0,
        "redeemed_count": 0, "redeemed_cents": 0,
        "reversed_count": 0, "reversed_cents": 0,
    });
    let mut stmt = db.prepare_cached(
        "SELECT l.kind, COUNT(*), COALESCE(SUM(l.face_delta), 0)
         FROM ledger l JOIN certificates c ON c.id = l.certificate_id
         WHERE l.merchant_id = ?1 AND c.currency = ?2 AND l.created_at >= ?3
           AND l.kind IN ('issue', 'redeem', 'reverse')
         GROUP BY l.kind",
    )?;
    let rows = stmt.query_map((merchant_id, currency, since), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (kind, count, face) = row?;
        let name = match kind.as_str() {
            "issue" => "issued",
            "redeem" => "redeemed",
            _ => "reversed",
        };
        out[format!("{name}_count")] = json!(count);
        out[format!("{name}_cents")] = json!(face.abs());
    }
    Ok(out)
}

/// Adds every number of `add` into `sum` (totals across merchants).
fn accumulate(sum: &mut Map<String, Value>, add: &Value) {
    if let Value::Object(fields) = add {
        for (k, v) in fields {
            match v {
                Value::Number(n) => {
                    let before = sum.get(k).and_then(Value::as_i64).unwrap_or(0);
                    sum.insert(k.clone(), json!(before + n.as_i64().unwrap_or(0)));
                }
                Value::Object(_) => {
                    let inner = sum.entry(k.clone()).or_insert_with(|| json!({}));
                    if let Value::Object(inner) = inner {
                        accumulate(inner, v);
                    }
                }
                _ => {}
            }
        }
    }
}

/// `GET /admin/api/dashboard`: `merchant_summaries[]`, one per merchant and
/// currency: the open (outstanding) face and paid value, and what was
/// issued, redeemed and reversed today and this month in the merchant's
/// time zone. `meta` has the totals per currency and what waits for the
/// operator (open tickets, queued and failed mail).
pub fn dashboard(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    // One read transaction: all figures are of the same moment.
    let tx = ctx.db.unchecked_transaction()?;
    let now = time::now();
    let merchants: Vec<(String, String, String)> = tx
        .prepare_cached(
            "SELECT id, name, time_zone FROM merchants ORDER BY name COLLATE NOCASE, rowid",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rows = Vec::new();
    let mut totals: Vec<(String, Map<String, Value>)> = Vec::new();
    for (id, name, zone) in merchants {
        let today = time::local_date(now, &zone);
        let day_start = time::local_hour_on(&today, 0, &zone).unwrap_or(now);
        let month_start = today
            .get(..7)
            .and_then(|month| time::local_hour_on(&format!("{month}-01"), 0, &zone))
            .unwrap_or(day_start);
        let mut currencies: Vec<String> = tx
            .prepare_cached(
                "SELECT DISTINCT currency FROM certificates WHERE merchant_id = ?1 ORDER BY currency",
            )?
            .query_map([&id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if currencies.is_empty() {
            currencies.push("USD".into());
        }
        for currency in currencies {
            let (count, face, paid): (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(face_value_cents), 0), COALESCE(SUM(price_cents), 0)
                     FROM certificates WHERE merchant_id = ?1 AND currency = ?2
                       AND status IN ('pending', 'assigned', 'gifted')",
                )?
                .query_row((&id, &currency), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let figures = json!({
                "open_count": count,
                "open_face_value_cents": face,
                "open_paid_value_cents": paid,
                "today": flows(&tx, &id, &currency, day_start)?,
                "this_month": flows(&tx, &id, &currency, month_start)?,
            });
            match totals.iter_mut().find(|(c, _)| *c == currency) {
                Some((_, sum)) => accumulate(sum, &figures),
                None => {
                    let mut sum = Map::new();
                    accumulate(&mut sum, &figures);
                    totals.push((currency.clone(), sum));
                }
            }
            let mut row = figures;
            row["merchant_id"] = json!(id);
            row["merchant_name"] = json!(name);
            row["time_zone"] = json!(zone);
            row["date"] = json!(today);
            row["currency"] = json!(currency);
            rows.push(row);
        }
    }
    let count = |sql: &str| -> Result<i64, ApiError> { Ok(tx.query_row(sql, [], |r| r.get(0))?) };
    let meta = json!({
        "generated_at": time::rfc3339(now),
        "totals": totals
            .into_iter()
            .map(|(currency, mut sum)| {
                sum.insert("currency".into(), json!(currency));
                Value::Object(sum)
            })
            .collect::<Vec<_>>(),
        "open_support_tickets": count("SELECT COUNT(*) FROM support_tickets WHERE status = 'open'")?,
        "queued_mail": count("SELECT COUNT(*) FROM outbox WHERE status = 'queued'")?,
        "failed_mail": count("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")?,
    });
    tx.finish()?;
    Ok(Document::new("merchant_summaries", rows)
        .meta(meta)
        .respond(200))
}

/// One CSV cell: quoted when it holds a comma, quote or line break, and
/// prefixed with `'` when a spreadsheet would take it for a formula.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Appends one CSV record (RFC 4180: CRLF line ends).
fn csv_row(out: &mut String, cells: &[String]) {
    let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// Cents as a plain decimal for spreadsheets: `4000` → `40.00`.
fn decimal(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", (cents / 100).abs(), (cents % 100).abs())
}

fn opt_time(t: Option<i64>) -> String {
    t.map(time::rfc3339).unwrap_or_default()
}

fn csv_response(name: &str, body: String) -> Response {
    let date = time::local_date(time::now(), "UTC");
    Response::bytes(200, "text/csv; charset=utf-8", body.into_bytes()).with_header(
        "Content-Disposition",
        format!("attachment; filename=\"{name}-{date}.csv\""),
    )
}

/// `GET /admin/api/exports/certificates.csv?merchant_id=&status=&product_type=`:
/// every matching certificate, newest first.
pub fn certificates_csv(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let mut filters = Filters::new(ctx);
    let filter = Filter {
        merchant_id: filters.text("merchant_id")?,
        status: filters.one_of("status", &STATUSES)?,
        product_type: filters.one_of("product_type", &PRODUCT_TYPES)?,
        ..Filter::default()
    };
    let tx = ctx.db.unchecked_transaction()?;
    let (rows, _) = certificates::list(&tx, &filter, i64::MAX, 0)?;
    let mut emails = Emails::new();
    let mut out = String::new();
    let header = "id,claim_code,status,merchant_id,merchant,product_type,title,currency,\
        face_value,face_value_cents,price,price_cents,owner_email,user_id,parent_id,expires_at,created_at,updated_at";
    out.push_str(header);
    out.push_str("\r\n");
    for c in &rows {
        let email = owner_email(&tx, c, &mut emails)?.unwrap_or_default();
        csv_row(
            &mut out,
            &[
                c.id.clone(),
                claim_code::display(&c.claim_code),
                c.status.to_string(),
                c.merchant_id.clone(),
                c.seller.clone(),
                c.product_type.clone(),
                c.title(),
                c.currency.clone(),
                decimal(c.face_value_cents),
                c.face_value_cents.to_string(),
                decimal(c.price_cents),
                c.price_cents.to_string(),
                email,
                c.user_id.clone().unwrap_or_default(),
                c.parent_id.clone().unwrap_or_default(),
                opt_time(c.expires_at),
                time::rfc3339(c.created_at),
                time::rfc3339(c.updated_at),
            ],
        );
    }
    tx.finish()?;
    Ok(csv_response("certificates", out))
}

/// `GET /admin/api/exports/redemptions.csv?merchant_id=`: every redemption,
/// newest first, with its certificate's claim code and the location.
pub fn redemptions_csv(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let mut filters = Filters::new(ctx);
    let merchant = filters.text("merchant_id")?;
    let mut out = String::from(
        "id,created_at,merchant_id,merchant,certificate_id,claim_code,currency,amount,amount_cents,\
         amount_paid,amount_paid_cents,source,location_id,location,user_id,balance_certificate_id,\
         reversed_at,reversal_certificate_id\r\n",
    );
    let mut stmt = ctx.db.prepare(
        "SELECT r.id, r.created_at, r.merchant_id, m.name, r.certificate_id, c.claim_code, c.currency,
                r.amount_cents, r.amount_paid_cents, r.source, r.location_id, l.name, l.address1, l.city,
                r.user_id, r.balance_certificate_id, r.reversed_at, r.reversal_certificate_id
         FROM redemptions r JOIN merchants m ON m.id = r.merchant_id
           JOIN certificates c ON c.id = r.certificate_id LEFT JOIN locations l ON l.id = r.location_id
         WHERE (?1 IS NULL OR r.merchant_id = ?1)
         ORDER BY r.created_at DESC, r.rowid DESC",
    )?;
    let mut rows = stmt.query([&merchant])?;
    while let Some(r) = rows.next()? {
        let opt = |i: usize| -> rusqlite::Result<String> {
            Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
        };
        let location = [opt(11)?, opt(12)?, opt(13)?]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let amount: i64 = r.get(7)?;
        let paid: i64 = r.get(8)?;
        csv_row(
            &mut out,
            &[
                r.get(0)?,
                time::rfc3339(r.get(1)?),
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                claim_code::display(&r.get::<_, String>(5)?),
                r.get(6)?,
                decimal(amount),
                amount.to_string(),
                decimal(paid),
                paid.to_string(),
                r.get(9)?,
                opt(10)?,
                location,
                opt(14)?,
                opt(15)?,
                opt_time(r.get(16)?),
                opt(17)?,
            ],
        );
    }
    Ok(csv_response("redemptions", out))
}

/// A private temporary directory, removed with everything in it on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!("instagift-backup-{}", ids::new_id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            // The copy holds every record: no one else may read it.
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&path)?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `GET /admin/api/backup`: a consistent copy of the database as a SQLite
/// file. `VACUUM INTO` runs on this worker's read connection, inside one
/// read transaction, so writers carry on and the copy is one moment.
pub fn backup(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let dir = ScratchDir::new().map_err(|e| ApiError::internal(format!("backup dir: {e}")))?;
    let path = dir.0.join("backup.db");
    let target = path
        .to_str()
        .ok_or_else(|| ApiError::internal("backup path is not UTF-8"))?;
    ctx.db.execute("VACUUM INTO ?1", [target])?;
    let bytes =
        std::fs::read(&path).map_err(|e| ApiError::internal(format!("backup read: {e}")))?;
    let date = time::local_date(time::now(), "UTC");
    Ok(
        Response::bytes(200, "application/vnd.sqlite3", bytes).with_header(
            "Content-Disposition",
            format!("attachment; filename=\"instagift-{date}.db\""),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=1+2"), "'=1+2");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            csv_cell("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_cell(""), "");
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(4000), "40.00");
        assert_eq!(decimal(5), "0.05");
        assert_eq!(decimal(123456789), "1234567.89");
        assert_eq!(decimal(-150), "-1.50");
    }

    #[test]
    fn totals_add_up_nested_figures() {
        let mut sum = Map::new();
        accumulate(&mut sum, &json!({"a": 1, "today": {"b": 2}, "s": "x"}));
        accumulate(&mut sum, &json!({"a": 10, "today": {"b": 20}}));
        assert_eq!(Value::Object(sum), json!({"a": 11, "today": {"b": 22}}));
    }
}
