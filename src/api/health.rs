//! `GET /healthz`: 200 when the database answers reads and the writer
//! commits, 503 otherwise.

use crate::error::ApiError;
use crate::web::{Ctx, Response};
use serde_json::json;
use std::time::Duration;

/// How long the writer may take to answer: more means it is stuck (a lock
/// held elsewhere, storage that does not answer).
const WRITER_TIMEOUT: Duration = Duration::from_secs(2);

/// Touches the database through this worker's read connection, then makes
/// a round trip through the writer: an empty transaction, which takes the
/// write lock and commits without writing (no fsync), so it is cheap; under
/// load it waits for the batch being committed.
pub fn get(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let read = ctx
        .db
        .query_row("SELECT COUNT(*) FROM merchants", [], |r| r.get::<_, i64>(0))
        .map(|_| ())
        .map_err(|e| format!("cannot read: {e}"));
    match read.and_then(|()| ctx.app.writer.ping(WRITER_TIMEOUT)) {
        Ok(()) => Ok(Response::json(200, &json!({ "status": "ok" }))),
        Err(e) => {
            crate::log::error(&format!("health check failed: {e}"));
            Ok(Response::json(503, &json!({ "status": "unavailable" })))
        }
    }
}
