//! `GET /healthz`: 200 when the database answers, 503 otherwise.

use crate::error::ApiError;
use crate::web::{Ctx, Response};
use serde_json::json;

/// Touches the database through this worker's read connection.
pub fn get(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    match ctx
        .db
        .query_row("SELECT COUNT(*) FROM merchants", [], |r| r.get::<_, i64>(0))
    {
        Ok(_) => Ok(Response::json(200, &json!({ "status": "ok" }))),
        Err(e) => {
            crate::log::error(&format!("health check failed: {e}"));
            Ok(Response::json(503, &json!({ "status": "unavailable" })))
        }
    }
}
