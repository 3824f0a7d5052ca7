//! Who is calling: headers → `Principal`.

use crate::db::{cache, housekeeping, Writer};
use crate::domain::ids::digest;
use crate::domain::time;
use crate::error::ApiError;
use crate::web::Request;
use rusqlite::{Connection, OptionalExtension};

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub enum Principal {
    Public,
    /// A customer, with the token presented (echoed back by `GET /v2/users/{self}`).
    User {
        id: String,
        token: String,
    },
    /// A merchant, through one of its API keys.
    Merchant {
        id: String,
        key: String,
    },
}

impl Principal {
    /// A stable name for idempotency scoping and rate limits.
    pub fn scope(&self, remote_ip: &str) -> String {
        match self {
            Principal::Public => format!("ip:{remote_ip}"),
            Principal::User { id, .. } => format!("user:{id}"),
            Principal::Merchant { id, .. } => format!("merchant:{id}"),
        }
    }
}

fn non_empty<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).map(str::trim).filter(|v| !v.is_empty())
}

/// Resolves the caller from the credential headers (see docs/reference.md,
/// Authentication). Partial, wrong or expired credentials are 401; user and
/// merchant credentials together are 400. A user token's use is recorded
/// through `writer` (at most hourly), for its idle expiry.
pub fn authenticate(
    db: &Connection,
    writer: &Writer,
    req: &Request,
) -> Result<Principal, ApiError> {
    let email = non_empty(req, "x-user-email");
    let token = non_empty(req, "x-user-token");
    let key = non_empty(req, "x-merchant-key");
    let secret =
        non_empty(req, "x-merchant-secret").or_else(|| non_empty(req, "x-merhcant-secret"));
    let as_user = email.is_some() || token.is_some();
    let as_merchant = key.is_some() || secret.is_some();
    if as_user && as_merchant {
        return Err(ApiError::bad_request(
            "Invalid credentials",
            "Send either user or merchant credentials, not both",
        ));
    }
    if as_user {
        let (Some(email), Some(token)) = (email, token) else {
            return Err(ApiError::unauthorized());
        };
        let (token_digest, email) = (
            digest(token.as_bytes()),
            crate::domain::users::email_key(email),
        );
        let found = cache::cached(db, &format!("auth:user:{token_digest}:{email}"), || {
            Ok(db
                .prepare_cached(
                    "SELECT u.id, COALESCE(t.last_used_at, t.created_at)
                     FROM user_tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.digest = ?1 AND u.email_norm = ?2",
                )?
                .query_row((&token_digest, &email), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?)
        })?;
        let now = time::now();
        return match found.as_ref() {
            // A token idle for longer than the expiry is as good as unknown
            // (the writer's housekeeping deletes it).
            Some((_, last_use)) if housekeeping::token_expired(*last_use, now) => {
                Err(ApiError::unauthorized())
            }
            Some((id, last_use)) => {
                if now - last_use > housekeeping::TOUCH_EVERY_SECS {
                    writer.submit(move |db| housekeeping::touch_token(db, &token_digest, now));
                }
                Ok(Principal::User {
                    id: id.clone(),
                    token: token.to_string(),
                })
            }
            None => Err(ApiError::unauthorized()),
        };
    }
    if as_merchant {
        let (Some(key), Some(secret)) = (key, secret) else {
            return Err(ApiError::unauthorized());
        };
        let secret_digest = digest(secret.as_bytes());
        let id = lookup(db, &format!("auth:merchant:{key}:{secret_digest}"), |db| {
            db.prepare_cached(
                "SELECT merchant_id FROM merchant_keys
                 WHERE key = ?1 AND secret_digest = ?2 AND revoked_at IS NULL",
            )?
            .query_row((key, &secret_digest), |r| r.get(0))
            .optional()
        })?;
        return match id {
            Some(id) => Ok(Principal::Merchant {
                id,
                key: key.to_string(),
            }),
            None => Err(ApiError::unauthorized()),
        };
    }
    Ok(Principal::Public)
}

/// A credential lookup through the worker's cache, which holds answers only
/// while the database is unchanged: a revoked token or key is a commit, and
/// any commit empties the cache (see `db::cache`).
fn lookup(
    db: &Connection,
    key: &str,
    query: impl FnOnce(&Connection) -> rusqlite::Result<Option<String>>,
) -> Result<Option<String>, ApiError> {
    let found = cache::cached(db, key, || Ok(query(db)?))?;
    Ok(found.as_ref().clone())
}
