//! `GET /v2/openapi.json`: the OpenAPI 3.1 description of this API, kept in
//! `docs/openapi.json` and compiled into the binary.

use crate::error::ApiError;
use crate::web::{Ctx, Response};

/// The description, exactly as committed.
pub const SPEC: &str = include_str!("../../docs/openapi.json");

/// Serves the description as JSON.
pub fn get(_ctx: &Ctx, _params: &[&str]) -> Result<Response, ApiError> {
    Ok(Response::bytes(
        200,
        crate::web::response::JSON,
        SPEC.as_bytes().to_vec(),
    ))
}
