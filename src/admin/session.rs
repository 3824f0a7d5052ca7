//! The operator account and its sessions: the password (Argon2id), login
//! throttled per client IP and across all of them, the session cookie, and
//! logout.
//!
//! A session is a random token in an HttpOnly, SameSite=Strict cookie
//! limited to `/admin`; the database keeps only its SHA-256 digest, so a
//! copy of the database (a backup download) cannot be used to log in.

use crate::api::input::Fields;
use crate::domain::{ids, password, time};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Request, Response};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};

/// Name of the session cookie.
pub const COOKIE: &str = "instagift_admin";
/// How long a session lasts from login.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// Failed logins in a row allowed before the client IP must wait.
const FREE_FAILURES: i64 = 5;
/// Failed logins in a row from all IPs together before every IP must wait
/// (the same doubling waits), so many source addresses do not multiply the
/// guesses. Kept in the row of `ALL_IPS`.
const FREE_FAILURES_ALL_IPS: i64 = 20;
/// The `admin_login_failures.ip` of the budget shared by all IPs.
const ALL_IPS: &str = "*";
/// The first wait; each further failure doubles it, up to `MAX_BLOCK_SECS`.
const FIRST_BLOCK_SECS: i64 = 30;
const MAX_BLOCK_SECS: i64 = 3600;
/// Failures older than this are forgotten.
const FORGET_SECS: i64 = 24 * 3600;

/// Characters of generated passwords: no look-alikes (i, l, o, 0, 1).
const PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Creates the operator with a random password when there is none yet, and
/// returns that password (to be shown once); None when one exists.
pub fn ensure_operator(conn: &Connection) -> Result<Option<String>, String> {
    let exists: bool = conn
        .query_row("SELECT EXISTS(SELECT 1 FROM operator)", [], |r| r.get(0))
        .map_err(|e| format!("cannot read the operator account: {e}"))?;
    if exists {
        return Ok(None);
    }
    let generated = generate_password();
    let hash = hash(&generated)?;
    let now = time::now();
    let inserted = conn
        .execute(
            "INSERT INTO operator (id, password_hash, created_at, updated_at) VALUES (1, ?1, ?2, ?2)
             ON CONFLICT(id) DO NOTHING",
            (&hash, now),
        )
        .map_err(|e| format!("cannot create the operator account: {e}"))?;
    Ok((inserted == 1).then_some(generated))
}

/// Sets the operator password, logs out every admin session and forgets
/// failed logins (whoever runs this has the server's files anyway).
pub fn set_password(conn: &mut Connection, new_password: &str) -> Result<(), String> {
    let hash = hash(new_password)?;
    let now = time::now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    tx.execute(
        "INSERT INTO operator (id, password_hash, created_at, updated_at) VALUES (1, ?1, ?2, ?2)
         ON CONFLICT(id) DO UPDATE SET password_hash = ?1, updated_at = ?2",
        (&hash, now),
    )
    .and_then(|_| tx.execute("DELETE FROM admin_sessions", []))
    .and_then(|_| tx.execute("DELETE FROM admin_login_failures", []))
    .map_err(|e| format!("cannot store the password: {e}"))?;
    tx.commit().map_err(|e| e.to_string())
}

fn hash(pw: &str) -> Result<String, String> {
    let h = password::hash(pw);
    if h.is_empty() {
        Err("could not hash the password".into())
    } else {
        Ok(h)
    }
}

/// A random password of about 99 bits, easy to read and type:
/// `abcde-fghjk-mnpqr-stuvw`.
fn generate_password() -> String {
    let mut rng = rand::rng();
    let group = |rng: &mut rand::rngs::ThreadRng| -> String {
        (0..5)
            .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
            .collect()
    };
    (0..4)
        .map(|_| group(&mut rng))
        .collect::<Vec<_>>()
        .join("-")
}

/// The value of cookie `name` in the request, if sent and not empty.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then_some(v.trim())
        })
        .filter(|v| !v.is_empty())
}

/// The expiry of the request's valid session, if it has one.
pub fn current(ctx: &Ctx) -> Result<Option<i64>, ApiError> {
    let Some(token) = cookie(ctx.req, COOKIE) else {
        return Ok(None);
    };
    Ok(ctx
        .db
        .prepare_cached(
            "SELECT expires_at FROM admin_sessions WHERE digest = ?1 AND expires_at > ?2",
        )?
        .query_row((ids::digest(token.as_bytes()), time::now()), |r| r.get(0))
        .optional()?)
}

/// The `Set-Cookie` value; `Secure` when the public URL is https (over
/// plain http on a LAN the browser would drop a Secure cookie).
fn set_cookie(ctx: &Ctx, value: &str, max_age: i64) -> String {
    let secure = if ctx.app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Max-Age={max_age}; Path=/admin; HttpOnly; SameSite=Strict{secure}")
}

fn document(expires_at: Option<i64>) -> Document {
    Document::new(
        "sessions",
        vec![json!({
            "authenticated": expires_at.is_some(),
            "expires_at": time::rfc3339_opt(expires_at),
        })],
    )
}

/// `GET /admin/api/session`: whether the caller is logged in. Always 200,
/// so the page can ask before showing the login form.
pub fn show(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    Ok(document(current(ctx)?).respond(200))
}

/// `POST /admin/api/session` `{"password"}`: 201 with the session cookie;
/// 401 for a wrong password; 429 with `Retry-After` while the client IP (or
/// every IP, after many failures from anywhere) is blocked.
///
/// The attempt is counted as a failure before the Argon2 check, in one
/// writer job that also checks the blocks, and forgiven when the password
/// is right: parallel guesses cannot all pass a check made before any of
/// them was counted.
pub fn login(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let ip = ctx.req.remote_ip.clone();
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "session", true, "Unable to log in")?;
    let given = match f.raw("password") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        Some(Value::String(_)) | None => {
            f.fail("password", "password is required");
            String::new()
        }
        Some(_) => {
            f.fail("password", "password must be a string");
            String::new()
        }
    };
    f.finish()?;
    let now = time::now();
    let who = ip.clone();
    if let Some((wait, limit)) = ctx.app.writer.run(move |db| reserve(db, &who, now))? {
        return Err(ApiError::new(
            429,
            "Too Many Requests",
            format!("Too many failed logins: try again in {wait} seconds"),
        )
        .with_header("Retry-After", wait.to_string())
        .with_header("RateLimit-Limit", limit.to_string())
        .with_header("RateLimit-Remaining", "0".to_string())
        .with_header("RateLimit-Reset", wait.to_string()));
    }
    let stored: Option<String> = ctx
        .db
        .prepare_cached("SELECT password_hash FROM operator WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let ok = match stored {
        Some(h) => password::verify(&given, &h),
        None => {
            password::verify_dummy(&given);
            false
        }
    };
    if !ok {
        return Err(ApiError::new(401, "Permission denied", "Wrong password"));
    }
    let token = ids::new_secret();
    let digest = ids::digest(token.as_bytes());
    let now = time::now();
    let expires_at = now + SESSION_TTL_SECS;
    ctx.app.writer.run(move |db| {
        forgive(db, &ip)?;
        db.execute("DELETE FROM admin_sessions WHERE expires_at <= ?1", [now])?;
        db.execute(
            "INSERT INTO admin_sessions (digest, created_at, expires_at) VALUES (?1, ?2, ?3)",
            (&digest, now, expires_at),
        )?;
        Ok(())
    })?;
    Ok(document(Some(expires_at))
        .respond(201)
        .with_header("Set-Cookie", set_cookie(ctx, &token, SESSION_TTL_SECS)))
}

/// `DELETE /admin/api/session`: ends the session and clears the cookie.
pub fn logout(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    if let Some(token) = cookie(ctx.req, COOKIE) {
        let digest = ids::digest(token.as_bytes());
        ctx.app.writer.run(move |db| {
            db.execute("DELETE FROM admin_sessions WHERE digest = ?1", [&digest])?;
            Ok(())
        })?;
    }
    Ok(Response::no_content().with_header("Set-Cookie", set_cookie(ctx, "", 0)))
}

/// Seconds `key` (a client IP or `ALL_IPS`) must still wait, if blocked.
fn blocked_for(db: &Connection, key: &str, now: i64) -> Result<Option<i64>, ApiError> {
    let until: Option<i64> = db
        .prepare_cached("SELECT blocked_until FROM admin_login_failures WHERE ip = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(until.filter(|&u| u > now).map(|u| u - now))
}

/// In the writer, before the password check: (seconds to wait, the
/// budget's free failures) when the IP or every IP is blocked; otherwise
/// counts the attempt as a failure of both (`forgive` takes it back).
fn reserve(db: &Connection, ip: &str, now: i64) -> Result<Option<(i64, i64)>, ApiError> {
    for (key, free) in [(ip, FREE_FAILURES), (ALL_IPS, FREE_FAILURES_ALL_IPS)] {
        if let Some(wait) = blocked_for(db, key, now)? {
            return Ok(Some((wait, free)));
        }
    }
    record_failure(db, ip, FREE_FAILURES, now)?;
    record_failure(db, ALL_IPS, FREE_FAILURES_ALL_IPS, now)?;
    Ok(None)
}

/// After a right password: this IP's failures are forgotten, and the
/// attempt `reserve` counted is taken back from the budget of all IPs (its
/// earlier failures stay, or a login would reset every attacker's count).
fn forgive(db: &Connection, ip: &str) -> Result<(), ApiError> {
    db.execute("DELETE FROM admin_login_failures WHERE ip = ?1", [ip])?;
    db.execute(
        "UPDATE admin_login_failures SET failures = failures - 1,
             blocked_until = CASE WHEN failures - 1 < ?2 THEN 0 ELSE blocked_until END
         WHERE ip = ?1 AND failures > 0",
        (ALL_IPS, FREE_FAILURES_ALL_IPS),
    )?;
    Ok(())
}

/// Counts a failed login of `key`; from the `free`th in a row on, `key` is
/// blocked for a doubling time.
fn record_failure(db: &Connection, key: &str, free: i64, now: i64) -> Result<(), ApiError> {
    let previous: Option<(i64, i64)> = db
        .query_row(
            "SELECT failures, last_failure_at FROM admin_login_failures WHERE ip = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let failures = match previous {
        Some((n, last)) if now - last < FORGET_SECS => n + 1,
        _ => 1,
    };
    let blocked_until = block_secs(failures, free).map_or(0, |s| now + s);
    db.execute(
        "INSERT INTO admin_login_failures (ip, failures, blocked_until, last_failure_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(ip) DO UPDATE SET failures = ?2, blocked_until = ?3, last_failure_at = ?4",
        (key, failures, blocked_until, now),
    )?;
    db.execute(
        "DELETE FROM admin_login_failures WHERE last_failure_at < ?1",
        [now - FORGET_SECS],
    )?;
    Ok(())
}

/// How long to block after the `failures`th failed login in a row, with
/// `free` failures allowed.
fn block_secs(failures: i64, free: i64) -> Option<i64> {
    if failures < free {
        return None;
    }
    let doublings = (failures - free).min(16) as u32;
    Some((FIRST_BLOCK_SECS << doublings).min(MAX_BLOCK_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_and_are_capped() {
        assert_eq!(block_secs(1, 5), None);
        assert_eq!(block_secs(4, 5), None);
        assert_eq!(block_secs(5, 5), Some(30));
        assert_eq!(block_secs(6, 5), Some(60));
        assert_eq!(block_secs(7, 5), Some(120));
        assert_eq!(block_secs(12, 5), Some(3600));
        assert_eq!(block_secs(i64::MAX, 5), Some(3600));
        assert_eq!(block_secs(19, 20), None);
        assert_eq!(block_secs(20, 20), Some(30));
    }

    #[test]
    fn generated_passwords_are_readable_and_distinct() {
        let a = generate_password();
        assert_eq!(a.len(), 23);
        assert_eq!(a.split('-').count(), 4);
        assert!(a
            .bytes()
            .all(|b| b == b'-' || PASSWORD_ALPHABET.contains(&b)));
        assert_ne!(a, generate_password());
    }

    #[test]
    fn reads_the_session_cookie() {
        let req = |v: &str| {
            Request::new(
                "GET",
                "/admin/api/session",
                vec![("Cookie".into(), v.into())],
                vec![],
                String::new(),
            )
        };
        assert_eq!(
            cookie(&req("a=1; instagift_admin=tok; b=2"), COOKIE),
            Some("tok")
        );
        assert_eq!(cookie(&req("instagift_admin="), COOKIE), None);
        assert_eq!(cookie(&req("other=x"), COOKIE), None);
        assert_eq!(cookie(&req("garbage"), COOKIE), None);
    }

    #[test]
    fn operator_is_created_once_and_password_changes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        let first = ensure_operator(&conn).unwrap().expect("generated");
        assert_eq!(ensure_operator(&conn).unwrap(), None);
        let stored: String = conn
            .query_row("SELECT password_hash FROM operator", [], |r| r.get(0))
            .unwrap();
        assert!(password::verify(&first, &stored));
        conn.execute(
            "INSERT INTO admin_sessions (digest, created_at, expires_at) VALUES ('d', 0, 9999999999)",
            [],
        )
        .unwrap();
        set_password(&mut conn, "new password 1").unwrap();
        let stored: String = conn
            .query_row("SELECT password_hash FROM operator", [], |r| r.get(0))
            .unwrap();
        assert!(password::verify("new password 1", &stored));
        let sessions: i64 = conn
            .query_row("SELECT COUNT(*) FROM admin_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 0);
    }
}
