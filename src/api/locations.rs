//! Locations: public reads, merchant writes.

use crate::api::input::{Fields, SHORT};
use crate::domain::catalog::{self, Location};
use crate::domain::time;
use crate::error::ApiError;
use crate::web::{Ctx, Document, Response};
use rusqlite::Connection;
use serde_json::{json, Value};

/// The location as JSON.
pub fn render(l: &Location) -> Value {
    json!({
        "id": l.id,
        "href": format!("/v2/locations/{}", l.id),
        "display": l.display(),
        "name": l.name,
        "address1": l.address1,
        "address2": l.address2,
        "city": l.city,
        "state": l.state,
        "zip": l.zip,
        "phone": l.phone,
        "lat": l.lat,
        "lng": l.lng,
        "links": { "merchant": l.merchant_id },
        "created_at": time::rfc3339(l.created_at),
        "updated_at": time::rfc3339(l.updated_at),
    })
}

/// A `locations[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("locations", items)
        .link("locations.merchant", "/v2/merchants/{locations.merchant}")
}

/// Reads and validates a location's fields (`address1` and `city` required).
pub fn parse(mut f: Fields, merchant_id: &str, id: &str) -> Result<Location, ApiError> {
    let loc = Location {
        id: id.to_string(),
        merchant_id: merchant_id.to_string(),
        name: f.line("name", SHORT).unwrap_or_default(),
        address1: f.required_line("address1", SHORT),
        address2: f.line("address2", SHORT),
        city: f.required_line("city", SHORT),
        state: f.line("state", SHORT),
        zip: f.line("zip", 32),
        phone: f.line("phone", 64),
        lat: f.number("lat", -90.0, 90.0),
        lng: f.number("lng", -180.0, 180.0),
        ..Location::default()
    };
    f.finish()?;
    Ok(loc)
}

/// `GET /v2/locations/{id}`.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let l = catalog::location(ctx.db, params[0])?.ok_or_else(ApiError::not_found)?;
    Ok(document(vec![render(&l)]).respond(200))
}

/// `POST /v2/locations` (merchant): `address1` and `city` required.
pub fn create(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let body = ctx.body()?;
    let loc = parse(
        Fields::new(&body, "location", false, "Unable to save location")?,
        &merchant_id,
        "",
    )?;
    ctx.write(move |db| {
        let saved = catalog::save_location(db, &loc)?;
        Ok(document(vec![render(&saved)]).respond(201))
    })
}

/// `PUT /v2/locations/{id}` (the owning merchant): fields given replace.
pub fn update(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.write(move |db| {
        let saved = apply_update(db, &id, &patch, Some(&merchant_id))?;
        Ok(document(vec![render(&saved)]).respond(200))
    })
}

/// Reads, merges and saves an update inside one writer job (nothing
/// written in between is overwritten with a stale copy). With `merchant`,
/// only that merchant's location is found.
pub fn apply_update(
    db: &Connection,
    id: &str,
    patch: &Value,
    merchant: Option<&str>,
) -> Result<Location, ApiError> {
    let current = catalog::location(db, id)?
        .filter(|l| merchant.is_none_or(|m| m == l.merchant_id))
        .ok_or_else(ApiError::not_found)?;
    let loc = parse(
        Fields::for_update(
            render(&current),
            patch,
            "location",
            "Unable to save location",
        )?,
        &current.merchant_id,
        &current.id,
    )?;
    Ok(catalog::save_location(db, &loc)?)
}
