//! The operator's subcommands other than `serve`: they open the database
//! directly (safe beside a running server: SQLite locks, WAL, busy timeout).

use crate::args::{KeyCommand, MerchantCommand};
use crate::db;
use crate::domain::refusal::Refusal;
use crate::domain::{catalog, ledger, money, time};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// `instagift merchant …`: prints what it made; the secret only once.
pub fn merchant(db_path: &Path, cmd: &MerchantCommand) -> Result<(), String> {
    let conn = db::open_writer(db_path)?;
    match cmd {
        MerchantCommand::Create {
            name,
            url,
            time_zone,
        } => {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err("--name must be a non-empty single line".into());
            }
            if !time::is_time_zone(time_zone) {
                return Err(format!(
                    "unknown time zone {time_zone:?} (use an IANA name like America/New_York)"
                ));
            }
            let id = catalog::create_merchant(&conn, name.trim(), url.as_deref(), time_zone, None)
                .map_err(|e| e.to_string())?;
            println!("{id}");
        }
        MerchantCommand::Key(KeyCommand::Create { merchant_id }) => {
            let (key, secret) = catalog::create_key(&conn, merchant_id).map_err(|e| match e {
                Refusal::NotFound => format!("no merchant {merchant_id}"),
                _ => "database error".into(),
            })?;
            println!("key:    {key}\nsecret: {secret}");
            eprintln!(
                "Keep the secret now: it is stored only as a digest and cannot be shown again."
            );
        }
        MerchantCommand::Key(KeyCommand::Revoke { key }) => {
            if !catalog::revoke_key(&conn, key).map_err(|e| e.to_string())? {
                return Err(format!("no active key {key}"));
            }
            println!("revoked {key}");
        }
    }
    Ok(())
}

/// `instagift healthcheck`: GET /healthz without needing curl.
pub fn healthcheck(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
        println!("ok");
        Ok(())
    } else {
        Err(format!(
            "unhealthy: {}",
            answer.lines().next().unwrap_or("no answer")
        ))
    }
}

fn open_existing(db_path: &Path) -> Result<rusqlite::Connection, String> {
    if !db_path.exists() {
        return Err(format!("no database at {}", db_path.display()));
    }
    db::open_reader(db_path)
}

/// `instagift check`: prints a summary per merchant and every discrepancy.
pub fn check(db_path: &Path) -> Result<(), String> {
    let conn = open_existing(db_path)?;
    let report = ledger::check(&conn).map_err(|e| format!("check failed: {e}"))?;
    println!(
        "{} certificates, {} ledger rows, {} books (merchant and currency)",
        report.certificates,
        report.ledger_rows,
        report.merchants.len()
    );
    for t in &report.merchants {
        let amount = |c: i64| money::format(c, &t.currency);
        println!(
            "  {} ({}) in {}: issued {} + reversed {} = open {} + redeemed {} + cancelled {} + returned {} + expired {}",
            t.merchant_name,
            t.merchant_id,
            t.currency,
            amount(t.issued),
            amount(t.reversed),
            amount(t.open),
            amount(t.redeemed),
            amount(t.cancelled),
            amount(t.returned),
            amount(t.expired)
        );
    }
    if report.problems.is_empty() {
        println!("ok: every certificate matches its ledger and value is conserved");
        Ok(())
    } else {
        for p in &report.problems {
            println!("PROBLEM: {p}");
        }
        Err(format!("{} discrepancies found", report.problems.len()))
    }
}

/// `instagift backup FILE`: SQLite's online backup, consistent while the
/// server writes.
pub fn backup(db_path: &Path, file: &Path) -> Result<(), String> {
    if file.exists() {
        return Err(format!("{} already exists", file.display()));
    }
    let conn = open_existing(db_path)?;
    let mut dest = rusqlite::Connection::open(file).map_err(|e| e.to_string())?;
    let backup = rusqlite::backup::Backup::new(&conn, &mut dest).map_err(|e| e.to_string())?;
    backup
        .run_to_completion(256, Duration::from_millis(5), None)
        .map_err(|e| format!("backup failed: {e}"))?;
    drop(backup);
    println!("backup written to {}", file.display());
    Ok(())
}
