//! Product options: public reads, merchant writes.

use crate::api::input::{Fields, SHORT};
use crate::domain::catalog::{self, ProductOption};
use crate::domain::time;
use crate::error::ApiError;
use crate::web::{Ctx, Document, Response};
use rusqlite::Connection;
use serde_json::{json, Value};

/// The option as JSON.
pub fn render(o: &ProductOption) -> Value {
    json!({
        "id": o.id,
        "href": format!("/v2/product_options/{}", o.id),
        "currency": o.currency,
        "face_value_cents": o.face_value_cents,
        "price_cents": o.price_cents,
        "tagline": o.tagline,
        "count": o.count,
        "limit_per_order": o.limit_per_order,
        "is_recommended": o.is_recommended,
        "links": { "product": o.product_id },
        "created_at": time::rfc3339(o.created_at),
        "updated_at": time::rfc3339(o.updated_at),
    })
}

/// A `product_options[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("product_options", items).link(
        "product_options.product",
        "/v2/products/{product_options.product}",
    )
}

/// Reads and validates an option's fields (price at most the face value).
pub fn parse(mut f: Fields, product_id: &str, id: &str) -> Result<ProductOption, ApiError> {
    let face = f.required_positive_cents("face_value_cents");
    let price = match f.raw("price_cents") {
        None => {
            f.fail("price_cents", "price_cents is required");
            0
        }
        Some(_) => f.cents("price_cents").unwrap_or(0),
    };
    if face > 0 && price > face {
        f.fail(
            "price_cents",
            "price_cents must not exceed face_value_cents",
        );
    }
    let currency = f.line("currency", 3).unwrap_or_else(|| "USD".to_string());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        f.fail("currency", "currency must be an ISO 4217 code such as USD");
    }
    let o = ProductOption {
        id: id.to_string(),
        product_id: product_id.to_string(),
        currency,
        face_value_cents: face,
        price_cents: price,
        tagline: f.line("tagline", SHORT),
        count: f.int("count", 0, 1_000_000_000),
        limit_per_order: f.int("limit_per_order", 1, 1_000_000),
        is_recommended: f.flag("is_recommended").unwrap_or(false),
        ..ProductOption::default()
    };
    f.finish()?;
    Ok(o)
}

/// The product, if it belongs to the calling merchant (404 otherwise).
fn own_product(ctx: &Ctx, product_id: &str) -> Result<catalog::Product, ApiError> {
    let merchant_id = ctx.merchant_id()?;
    catalog::product(ctx.db, product_id)?
        .filter(|p| p.merchant_id == merchant_id)
        .ok_or_else(ApiError::not_found)
}

/// `GET /v2/product_options/{id}`.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let o = catalog::product_option(ctx.db, params[0])?.ok_or_else(ApiError::not_found)?;
    Ok(document(vec![render(&o)]).respond(200))
}

/// `POST /v2/products/{id}/product_options` (the owning merchant).
pub fn create(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let product = own_product(ctx, params[0])?;
    let body = ctx.body()?;
    let option = parse(
        Fields::new(
            &body,
            "product_option",
            false,
            "Unable to save product option",
        )?,
        &product.id,
        "",
    )?;
    ctx.write(move |db| {
        let saved = catalog::save_product_option(db, &option)?;
        Ok(document(vec![render(&saved)]).respond(201))
    })
}

/// `PUT /v2/product_options/{id}` (the owning merchant).
pub fn update(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.write(move |db| {
        let saved = apply_update(db, &id, &patch, Some(&merchant_id))?;
        Ok(document(vec![render(&saved)]).respond(200))
    })
}

/// Reads, merges and saves an update inside one writer job, so a change
/// that lands in between (an issue taking stock) is never written back
/// stale. With `merchant`, only that merchant's option is found.
pub fn apply_update(
    db: &Connection,
    id: &str,
    patch: &Value,
    merchant: Option<&str>,
) -> Result<ProductOption, ApiError> {
    let current = catalog::product_option(db, id)?.ok_or_else(ApiError::not_found)?;
    let product = catalog::product(db, &current.product_id)?.ok_or_else(ApiError::not_found)?;
    if merchant.is_some_and(|m| m != product.merchant_id) {
        return Err(ApiError::not_found());
    }
    let option = parse(
        Fields::for_update(
            render(&current),
            patch,
            "product_option",
            "Unable to save product option",
        )?,
        &current.product_id,
        &current.id,
    )?;
    Ok(catalog::save_product_option(db, &option)?)
}
