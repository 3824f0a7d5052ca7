//! Customer accounts, their device tokens and password resets.

use crate::domain::refusal::Refusal;
use crate::domain::{ids, outbox, time};
use rusqlite::{Connection, OptionalExtension, Row};

/// How long a password reset token stays valid.
pub const RESET_TTL_SECS: i64 = 3600;
/// How long an email confirmation token stays valid.
pub const VERIFY_TTL_SECS: i64 = 7 * 24 * 3600;

/// The key one account's address is found by: ASCII case folded, nothing
/// else. Addresses are ASCII only (`api::input::is_email` refuses the
/// rest), so no two spellings (`\u{212A}ate@…` and `kate@…`) can ever name
/// one account.
pub fn email_key(email: &str) -> String {
    email.to_ascii_lowercase()
}

/// A user as stored (without the password hash).
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the owner of the mailbox proved it; until then certificates
    /// issued to the address go out by email, not into the account.
    pub email_verified_at: Option<i64>,
}

const COLUMNS: &str =
    "id, email, first_name, last_name, last_login_at, created_at, updated_at, email_verified_at";

/// A user from a row whose first columns are `COLUMNS`.
pub fn from_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        first_name: r.get(2)?,
        last_name: r.get(3)?,
        last_login_at: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        email_verified_at: r.get(7)?,
    })
}

/// The user with that id.
pub fn get(db: &Connection, id: &str) -> rusqlite::Result<Option<User>> {
    db.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The user with that email (case-insensitive) and their password hash.
pub fn find_login(db: &Connection, email: &str) -> rusqlite::Result<Option<(User, String)>> {
    db.prepare_cached(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE email_norm = ?1"
    ))?
    .query_row([email_key(email)], |r| Ok((from_row(r)?, r.get(8)?)))
    .optional()
}

/// The account whose owner proved they read mail at that address: the
/// only account a certificate issued to the address may go into.
pub fn find_verified(db: &Connection, email: &str) -> rusqlite::Result<Option<User>> {
    Ok(find_login(db, email)?
        .map(|(u, _)| u)
        .filter(|u| u.email_verified_at.is_some()))
}

/// Queues the email that lets the owner of the address confirm it, with a
/// new token (valid `VERIFY_TTL_SECS`, usable once).
pub fn request_verification(
    db: &Connection,
    user: &User,
    token: &str,
    public_url: &str,
) -> Result<(), Refusal> {
    let text = format!(
        "Please confirm that {} is your email address.\n\n\
         Your confirmation token (valid for seven days, usable once):\n\n    {token}\n\n\
         Send it to POST {public_url}/v2/email_verifications, or enter it where\n\
         you signed up. Until you do, gift certificates sent to this address\n\
         arrive by email with their claim code instead of in your account.\n\
         If you did not sign up, ignore this email.\n",
        user.email
    );
    mail_once(
        db,
        OneTime::Verification,
        user,
        token,
        "Confirm your email address",
        &text,
    )
}

/// The two kinds of one-time token mailed to a user.
#[derive(Clone, Copy)]
enum OneTime {
    Verification,
    Reset,
}

impl OneTime {
    /// How long one stays valid.
    fn ttl(self) -> i64 {
        match self {
            OneTime::Verification => VERIFY_TTL_SECS,
            OneTime::Reset => RESET_TTL_SECS,
        }
    }

    /// The outbox kind of the email that carries it.
    fn mail_kind(self) -> &'static str {
        match self {
            OneTime::Verification => "email_verification",
            OneTime::Reset => "password_reset",
        }
    }

    /// Its table and the request field that carries it.
    fn table_and_field(self) -> (&'static str, &'static str) {
        match self {
            OneTime::Verification => ("email_verifications", "verification_token"),
            OneTime::Reset => ("password_resets", "reset_token"),
        }
    }
}

/// Stores a new one-time token for `user` (only its digest) and queues the
/// email that carries it, in the same transaction.
fn mail_once(
    db: &Connection,
    kind: OneTime,
    user: &User,
    token: &str,
    subject: &str,
    text: &str,
) -> Result<(), Refusal> {
    let now = time::now();
    let (table, _) = kind.table_and_field();
    db.prepare_cached(&format!(
        "INSERT INTO {table} (digest, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)"
    ))?
    .execute((
        ids::digest(token.as_bytes()),
        &user.id,
        now + kind.ttl(),
        now,
    ))?;
    outbox::enqueue(
        db,
        &outbox::Mail {
            kind: kind.mail_kind(),
            to: &user.email,
            subject,
            text,
            html: None,
            gift_id: None,
            due_at: now,
        },
    )?;
    Ok(())
}

/// Uses a mailed token once: it must exist, be unused and unexpired. Marks
/// it used and answers its user's id.
fn use_once(
    db: &Connection,
    kind: OneTime,
    token: &str,
    now: i64,
    title: &'static str,
) -> Result<String, Refusal> {
    let (table, field) = kind.table_and_field();
    let digest = ids::digest(token.as_bytes());
    let user_id: Option<String> = db
        .prepare_cached(&format!(
            "UPDATE {table} SET used_at = ?2
             WHERE digest = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user_id"
        ))?
        .query_row((&digest, now), |r| r.get(0))
        .optional()?;
    user_id.ok_or_else(|| {
        Refusal::field(
            title,
            field,
            format!("{field} is invalid, expired or already used"),
        )
    })
}

/// Confirms an address with its token; answers the confirmed user.
pub fn verify_email(db: &Connection, token: &str) -> Result<User, Refusal> {
    let now = time::now();
    let user_id = use_once(
        db,
        OneTime::Verification,
        token,
        now,
        "Unable to confirm email",
    )?;
    db.execute(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?2), updated_at = ?2 WHERE id = ?1",
        (&user_id, now),
    )?;
    get(db, &user_id)?.ok_or_else(|| Refusal::internal("user vanished during verification"))
}

/// What a new account is made of (password already hashed).
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
}

/// Creates the user with a first token. A taken email is a 400 on
/// `/user/email`. The address is unconfirmed until `verify_email`.
pub fn create(db: &Connection, new: &NewUser, token_digest: &str) -> Result<User, Refusal> {
    let norm = email_key(&new.email);
    let taken: bool = db.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE email_norm = ?1)",
        [&norm],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Refusal::field(
            "Unable to create user",
            "email",
            "email has already been taken",
        ));
    }
    let id = ids::new_id();
    let now = time::now();
    db.execute(
        "INSERT INTO users (id, email, email_norm, password_hash, first_name, last_name, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        (&id, &new.email, &norm, &new.password_hash, &new.first_name, &new.last_name, now),
    )?;
    add_token(db, &id, token_digest)?;
    get(db, &id)?.ok_or_else(|| Refusal::internal("user vanished after insert"))
}

/// Stores a new device token for the user.
pub fn add_token(db: &Connection, user_id: &str, token_digest: &str) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO user_tokens (digest, user_id, created_at) VALUES (?1, ?2, ?3)",
        (token_digest, user_id, time::now()),
    )?;
    Ok(())
}

/// A successful login: a new token and `last_login_at` now.
pub fn login(db: &Connection, user_id: &str, token_digest: &str) -> Result<User, Refusal> {
    add_token(db, user_id, token_digest)?;
    let now = time::now();
    db.execute(
        "UPDATE users SET last_login_at = ?2, updated_at = ?2 WHERE id = ?1",
        (user_id, now),
    )?;
    get(db, user_id)?.ok_or(Refusal::Unauthorized)
}

/// Revokes one token, or every token of the user when `all`.
pub fn revoke_tokens(
    db: &Connection,
    user_id: &str,
    token_digest: &str,
    all: bool,
) -> rusqlite::Result<()> {
    if all {
        db.execute("DELETE FROM user_tokens WHERE user_id = ?1", [user_id])?;
    } else {
        db.execute(
            "DELETE FROM user_tokens WHERE digest = ?1 AND user_id = ?2",
            (token_digest, user_id),
        )?;
    }
    Ok(())
}

/// Records a reset token for a registered email and queues the email that
/// carries it. Unknown emails do nothing (the caller answers the same).
pub fn request_reset(
    db: &Connection,
    email: &str,
    token: &str,
    public_url: &str,
) -> Result<(), Refusal> {
    let Some((user, _)) = find_login(db, email)? else {
        return Ok(());
    };
    let text = format!(
        "Someone asked to reset the password of your account ({}).\n\n\
         Your reset token (valid for one hour, usable once):\n\n    {token}\n\n\
         Send it with your new password to PUT {public_url}/v2/passwords.\n\
         If you did not ask for this, ignore this email.\n",
        user.email
    );
    mail_once(
        db,
        OneTime::Reset,
        &user,
        token,
        "Reset your password",
        &text,
    )
}

/// Completes a reset: the token must be valid, unused and unexpired. Sets
/// the new password, revokes every older token and issues a fresh one.
pub fn complete_reset(
    db: &Connection,
    reset_token: &str,
    password_hash: &str,
    new_token_digest: &str,
) -> Result<User, Refusal> {
    let now = time::now();
    let user_id = use_once(
        db,
        OneTime::Reset,
        reset_token,
        now,
        "Unable to reset password",
    )?;
    db.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        (&user_id, password_hash, now),
    )?;
    db.execute("DELETE FROM user_tokens WHERE user_id = ?1", [&user_id])?;
    add_token(db, &user_id, new_token_digest)?;
    get(db, &user_id)?.ok_or_else(|| Refusal::internal("user vanished during reset"))
}

/// A page of the users holding certificates of the merchant, and the total.
pub fn holders(
    db: &Connection,
    merchant_id: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<User>, i64)> {
    let filter = "FROM users WHERE id IN (SELECT user_id FROM certificates WHERE merchant_id = ?1)";
    let cols = COLUMNS;
    let rows = db
        .prepare_cached(&format!(
            "SELECT {cols} {filter} ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((merchant_id, limit, offset), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db
        .prepare_cached(&format!("SELECT COUNT(*) {filter}"))?
        .query_row([merchant_id], |r| r.get(0))?;
    Ok((rows, total))
}

/// True when the user holds at least one certificate of the merchant.
pub fn holds(db: &Connection, user_id: &str, merchant_id: &str) -> rusqlite::Result<bool> {
    db.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM certificates WHERE user_id = ?1 AND merchant_id = ?2)",
    )?
    .query_row((user_id, merchant_id), |r| r.get(0))
}
