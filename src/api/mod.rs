//! HTTP glue, one file per resource: read and validate input, call the
//! domain, render the contract's JSON. No business rule lives here.

pub mod certificates;
pub mod gifts;
pub mod health;
pub mod input;
pub mod locations;
pub mod merchants;
pub mod openapi;
pub mod passwords;
pub mod product_options;
pub mod products;
pub mod redemptions;
pub mod support_tickets;
pub mod tokens;
pub mod users;

use crate::error::ApiError;
use serde_json::{Map, Value};

/// Overlays the fields of `patch[root]` on `current` (a rendered resource),
/// so an update is validated exactly like a create of the merged whole.
pub fn merge_update(
    current: Value,
    patch: &Value,
    root: &str,
) -> Result<Map<String, Value>, ApiError> {
    let mut merged = match current {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    match patch.get(root) {
        Some(Value::Object(changes)) => {
            for (k, v) in changes {
                merged.insert(k.clone(), v.clone());
            }
            Ok(merged)
        }
        Some(_) => Err(ApiError::invalid(
            "Invalid request",
            &format!("/{root}"),
            format!("{root} must be an object"),
        )),
        None => Err(ApiError::invalid(
            "Invalid request",
            &format!("/{root}"),
            format!("{root} is required"),
        )),
    }
}
