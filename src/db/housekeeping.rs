//! Housekeeping on the writer: expired idempotency records and user tokens
//! idle for too long are deleted, at start and then every
//! `PURGE_EVERY` (in the writer thread, between batches or when idle).

use crate::domain::time;
use rusqlite::Connection;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How often the writer purges.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per transaction, so a large backlog does not hold the
/// writer for long at a time; at most `MAX_CHUNKS` per purge.
const CHUNK: i64 = 5_000;
const MAX_CHUNKS: usize = 20;
/// A token's last use is recorded at most this often (one small commit
/// per token and hour, not one per request).
pub const TOUCH_EVERY_SECS: i64 = 3600;

/// The default idle expiry of user tokens: 90 days.
pub const DEFAULT_TOKEN_IDLE_SECS: i64 = 90 * 86_400;
static TOKEN_IDLE_SECS: AtomicI64 = AtomicI64::new(DEFAULT_TOKEN_IDLE_SECS);

/// Sets the idle expiry of user tokens for this process (0: never expire);
/// `serve` sets it from `--token-idle-days` before it starts.
pub fn set_token_idle_secs(secs: i64) {
    TOKEN_IDLE_SECS.store(secs.max(0), Ordering::Relaxed);
}

/// The idle expiry of user tokens in seconds (0: never).
pub fn token_idle_secs() -> i64 {
    TOKEN_IDLE_SECS.load(Ordering::Relaxed)
}

/// Whether a token last used (or created) at `last_use` has expired.
pub fn token_expired(last_use: i64, now: i64) -> bool {
    let idle = token_idle_secs();
    idle > 0 && now - last_use > idle
}

/// Deletes what has expired; logs what it removed. Runs its own
/// transactions, so only between the writer's batches.
pub fn purge(conn: &Connection) {
    let now = time::now();
    let idle = token_idle_secs();
    let mut removed = (0, 0);
    for _ in 0..MAX_CHUNKS {
        let chunk = || -> rusqlite::Result<(usize, usize)> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let done = (|| {
                let records = conn.execute(
                    "DELETE FROM idempotency WHERE (principal, key) IN
                         (SELECT principal, key FROM idempotency WHERE created_at <= ?1 LIMIT ?2)",
                    (now - crate::web::idempotency::TTL_SECS, CHUNK),
                )?;
                let tokens = if idle > 0 {
                    conn.execute(
                        "DELETE FROM user_tokens WHERE digest IN
                             (SELECT digest FROM user_tokens
                              WHERE COALESCE(last_used_at, created_at) < ?1 LIMIT ?2)",
                        (now - idle, CHUNK),
                    )?
                } else {
                    0
                };
                Ok((records, tokens))
            })();
            match done {
                Ok(n) => conn.execute_batch("COMMIT").map(|_| n),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        };
        match chunk() {
            Ok((records, tokens)) => {
                removed = (removed.0 + records, removed.1 + tokens);
                if (records as i64) < CHUNK && (tokens as i64) < CHUNK {
                    break;
                }
            }
            Err(e) => {
                crate::log::warn(&format!("housekeeping failed: {e}"));
                return;
            }
        }
    }
    if removed != (0, 0) {
        crate::log::info(&format!(
            "housekeeping: {} expired idempotency records, {} idle user tokens deleted",
            removed.0, removed.1
        ));
    }
}

/// Records that the token with `digest` was used at `now` (a no-op when a
/// concurrent request recorded it already).
pub fn touch_token(conn: &Connection, digest: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE user_tokens SET last_used_at = ?2
         WHERE digest = ?1 AND COALESCE(last_used_at, created_at) <= ?3",
    )?
    .execute((digest, now, now - TOUCH_EVERY_SECS))
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_what_expired_and_keeps_the_rest() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        let now = time::now();
        let day = 86_400;
        conn.execute_batch(&format!(
            "INSERT INTO users (id, email, email_norm, password_hash, created_at, updated_at)
                 VALUES ('u', 'a@b.c', 'a@b.c', 'h', 1, 1);
             INSERT INTO user_tokens (digest, user_id, created_at, last_used_at) VALUES
                 ('old', 'u', {}, NULL),
                 ('used', 'u', {}, {}),
                 ('idle', 'u', {}, {}),
                 ('new', 'u', {now}, NULL);
             INSERT INTO idempotency (principal, key, request_hash, status, body, created_at) VALUES
                 ('p', 'old', 'h', 201, x'', {}),
                 ('p', 'new', 'h', 201, x'', {});",
            now - 91 * day,
            now - 91 * day,
            now - 89 * day,
            now - 200 * day,
            now - 91 * day,
            now - day - 1,
            now - day + 60,
        ))
        .unwrap();
        purge(&conn);
        let left = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(
            left("SELECT digest FROM user_tokens ORDER BY digest"),
            ["new", "used"]
        );
        assert_eq!(left("SELECT key FROM idempotency"), ["new"]);
    }
}
