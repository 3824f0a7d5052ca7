//! Products: public reads, merchant writes.

use crate::api::input::{Fields, LONG, SHORT};
use crate::api::{locations, product_options};
use crate::domain::catalog::{self, Product, PRODUCT_TYPES};
use crate::domain::time;
use crate::error::{refused_under, ApiError};
use crate::web::{Ctx, Document, Page, Response};
use rusqlite::Connection;
use serde_json::{json, Value};

/// The product as JSON with the ids of its locations and options.
pub fn render(p: &Product, location_ids: &[String], option_ids: &[String]) -> Value {
    json!({
        "id": p.id,
        "href": format!("/v2/products/{}", p.id),
        "type": p.kind,
        "discount_sale_name": p.discount_sale_name,
        "is_giveaway": p.is_giveaway,
        "is_print_only": p.is_print_only,
        "can_split_value": p.can_split_value,
        "gift_card_image": p.gift_card_image,
        "photos": p.photos,
        "headline": p.headline,
        "tagline": p.tagline,
        "terms": p.terms,
        "expiration_instructions": p.expiration_instructions,
        "redemption_instructions": p.redemption_instructions,
        "merchant_instructions": p.merchant_instructions,
        "links": {
            "merchant": p.merchant_id,
            "redemption_locations": location_ids,
            "product_options": option_ids,
        },
        "created_at": time::rfc3339(p.created_at),
        "updated_at": time::rfc3339(p.updated_at),
    })
}

/// `render`, reading the related ids.
pub fn render_with_links(db: &Connection, p: &Product) -> Result<Value, ApiError> {
    let location_ids = catalog::product_location_ids(db, &p.id)?;
    let (options, _) = catalog::product_options(db, &p.id, 1000, 0)?;
    let option_ids: Vec<String> = options.into_iter().map(|o| o.id).collect();
    Ok(render(p, &location_ids, &option_ids))
}

/// A `products[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("products", items)
        .link("products.merchant", "/v2/merchants/{products.merchant}")
        .link(
            "products.redemption_locations",
            "/v2/products/{products.id}/locations",
        )
        .link(
            "products.product_options",
            "/v2/products/{products.id}/product_options",
        )
}

/// Reads and validates a product's fields and its redemption location ids.
pub fn parse(
    mut f: Fields,
    merchant_id: &str,
    id: &str,
) -> Result<(Product, Option<Vec<String>>), ApiError> {
    let kind = f.required_line("type", SHORT);
    if !kind.is_empty() && !PRODUCT_TYPES.contains(&kind.as_str()) {
        f.fail(
            "type",
            format!("type must be one of {}", PRODUCT_TYPES.join(", ")),
        );
    }
    let p = Product {
        id: id.to_string(),
        merchant_id: merchant_id.to_string(),
        kind,
        discount_sale_name: f.line("discount_sale_name", SHORT),
        is_giveaway: f.flag("is_giveaway").unwrap_or(false),
        is_print_only: f.flag("is_print_only").unwrap_or(false),
        can_split_value: f.flag("can_split_value").unwrap_or(true),
        gift_card_image: f.line("gift_card_image", 2048),
        photos: f.text_list("photos", 2048).unwrap_or_default(),
        headline: f.line("headline", SHORT),
        tagline: f.required_line("tagline", SHORT),
        terms: f.text_list("terms", LONG).unwrap_or_default(),
        expiration_instructions: f.text("expiration_instructions", LONG),
        redemption_instructions: f.text("redemption_instructions", LONG),
        merchant_instructions: f.text("merchant_instructions", LONG),
        ..Product::default()
    };
    let location_ids = f.text_list("redemption_location_ids", 64);
    f.finish()?;
    Ok((p, location_ids))
}

fn find(ctx: &Ctx, id: &str) -> Result<Product, ApiError> {
    catalog::product(ctx.db, id)?.ok_or_else(ApiError::not_found)
}

/// `GET /v2/products/{id}`.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let p = find(ctx, params[0])?;
    Ok(document(vec![render_with_links(ctx.db, &p)?]).respond(200))
}

/// `GET /v2/products/{id}/locations`.
pub fn locations(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let p = find(ctx, params[0])?;
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = catalog::product_locations(ctx.db, &p.id, page.limit(), page.offset())?;
    let items = rows
        .iter()
        .map(|l| {
            let mut v = locations::render(l);
            v["links"]["product"] = json!(p.id);
            v
        })
        .collect();
    Ok(locations::document(items)
        .link("locations.product", "/v2/products/{locations.product}")
        .meta(page.meta(ctx.req, total, &[]))
        .respond(200))
}

/// `GET /v2/products/{id}/product_options`.
pub fn options(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let p = find(ctx, params[0])?;
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = catalog::product_options(ctx.db, &p.id, page.limit(), page.offset())?;
    Ok(
        product_options::document(rows.iter().map(product_options::render).collect())
            .meta(page.meta(ctx.req, total, &[]))
            .respond(200),
    )
}

/// `POST /v2/products` (merchant): `type` and `tagline` required.
pub fn create(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let body = ctx.body()?;
    let (product, location_ids) = parse(
        Fields::new(&body, "product", false, "Unable to save product")?,
        &merchant_id,
        "",
    )?;
    ctx.write(move |db| {
        let saved = catalog::save_product(db, &product, location_ids.as_deref())
            .map_err(refused_under("product"))?;
        Ok(document(vec![render_with_links(db, &saved)?]).respond(201))
    })
}

/// `PUT /v2/products/{id}` (the owning merchant).
pub fn update(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.write(move |db| {
        let saved = apply_update(db, &id, &patch, Some(&merchant_id))?;
        Ok(document(vec![render_with_links(db, &saved)?]).respond(200))
    })
}

/// Reads, merges and saves an update inside one writer job (nothing
/// written in between is overwritten with a stale copy). With `merchant`,
/// only that merchant's product is found.
pub fn apply_update(
    db: &Connection,
    id: &str,
    patch: &Value,
    merchant: Option<&str>,
) -> Result<Product, ApiError> {
    let current = catalog::product(db, id)?
        .filter(|p| merchant.is_none_or(|m| m == p.merchant_id))
        .ok_or_else(ApiError::not_found)?;
    let (product, location_ids) = parse(
        Fields::for_update(
            render_with_links(db, &current)?,
            patch,
            "product",
            "Unable to save product",
        )?,
        &current.merchant_id,
        &current.id,
    )?;
    catalog::save_product(db, &product, location_ids.as_deref()).map_err(refused_under("product"))
}
