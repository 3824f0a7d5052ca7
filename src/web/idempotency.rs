//! `Idempotency-Key`: the first answer to a key is stored in the same
//! transaction as the work and replayed for 24 h to repeats from the same
//! caller with the same request; the same key with another request is 409.
//! Because the check runs inside the writer, concurrent repeats cannot both
//! do the work.

use crate::domain::{ids, time};
use crate::error::ApiError;
use crate::web::{Principal, Request, Response};
use rusqlite::{Connection, OptionalExtension};

const MAX_KEY_LEN: usize = 255;
/// How long an answer is replayed; older records are purged (`db::housekeeping`).
pub const TTL_SECS: i64 = 24 * 3600;

/// A validated key, scoped to its caller, with the request's fingerprint.
#[derive(Debug, Clone)]
pub struct Key {
    scope: String,
    key: String,
    hash: String,
}

impl Key {
    /// The request's key, if any; 400 when it is empty or too long.
    pub fn from_request(req: &Request, principal: &Principal) -> Result<Option<Key>, ApiError> {
        // Only changes take a key; reads ignore the header.
        if req.is_read() {
            return Ok(None);
        }
        let Some(key) = req.header("idempotency-key") else {
            return Ok(None);
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(ApiError::bad_request(
                "Invalid Idempotency-Key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"),
            ));
        }
        // Method, path, query and body: `DELETE /v2/tokens?all=true` is not
        // the request `DELETE /v2/tokens` was, and must not replay its answer.
        let mut query = req.query.clone();
        query.sort();
        let mut fingerprint = serde_json::to_vec(&(&req.method, req.canonical_path(), query))
            .map_err(ApiError::internal)?;
        fingerprint.push(b'\n');
        fingerprint.extend_from_slice(&req.body);
        Ok(Some(Key {
            scope: principal.scope(&req.remote_ip),
            key: key.to_string(),
            hash: ids::digest(&fingerprint),
        }))
    }

    /// The stored answer to this key, if any: a replay when the request is
    /// the same, 409 when it differs. Expired records are ignored.
    pub fn replay(&self, conn: &Connection) -> Result<Option<Response>, ApiError> {
        let stored: Option<(String, u16, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT request_hash, status, body FROM idempotency
                 WHERE principal = ?1 AND key = ?2 AND created_at > ?3",
            )?
            .query_row((&self.scope, &self.key, time::now() - TTL_SECS), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match stored {
            None => Ok(None),
            Some((hash, _, _)) if hash != self.hash => Err(ApiError::conflict(
                "This Idempotency-Key was already used with a different request",
            )),
            Some((_, status, body)) => Ok(Some(
                Response::bytes(status, crate::web::response::JSON, body)
                    .with_header("Idempotent-Replayed", "true"),
            )),
        }
    }

    /// Runs `f` once per key: replays a stored answer, refuses a mismatch,
    /// or runs `f` and stores its answer (errors included, 5xx excepted,
    /// whose work is rolled back and may be retried).
    pub fn once<F>(self, conn: &Connection, f: F) -> Result<Response, ApiError>
    where
        F: FnOnce(&Connection) -> Result<Response, ApiError>,
    {
        if let Some(replayed) = self.replay(conn)? {
            return Ok(replayed);
        }
        let now = time::now();
        conn.execute(
            "DELETE FROM idempotency WHERE principal = ?1 AND key = ?2",
            (&self.scope, &self.key),
        )?;
        conn.execute_batch("SAVEPOINT idem")?;
        let response = match f(conn) {
            Ok(r) => {
                conn.execute_batch("RELEASE idem")?;
                r
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO idem; RELEASE idem")?;
                if e.status >= 500 {
                    return Err(e);
                }
                Response::from(e)
            }
        };
        conn.execute(
            "INSERT INTO idempotency (principal, key, request_hash, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                &self.scope,
                &self.key,
                &self.hash,
                response.status,
                &response.body,
                now,
            ),
        )?;
        Ok(response)
    }
}
