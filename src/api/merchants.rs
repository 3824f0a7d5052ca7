//! Public merchant profile and its storefront collections.

use crate::api::{locations, products};
use crate::domain::{catalog, time};
use crate::error::ApiError;
use crate::web::{Ctx, Document, Page, Response};
use serde_json::{json, Value};

/// The merchant as JSON.
pub fn render(m: &catalog::Merchant, location_ids: Vec<String>) -> Value {
    json!({
        "id": m.id,
        "href": format!("/v2/merchants/{}", m.id),
        "name": m.name,
        "url": m.url,
        "time_zone": m.time_zone,
        "logo": m.logo,
        "links": { "locations": location_ids },
        "created_at": time::rfc3339(m.created_at),
        "updated_at": time::rfc3339(m.updated_at),
    })
}

/// A `merchants[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("merchants", items)
        .link(
            "merchants.locations",
            "/v2/merchants/{merchants.id}/locations",
        )
        .link(
            "merchants.products",
            "/v2/merchants/{merchants.id}/products",
        )
}

fn find(ctx: &Ctx, id: &str) -> Result<catalog::Merchant, ApiError> {
    catalog::merchant(ctx.db, id)?.ok_or_else(ApiError::not_found)
}

/// `GET /v2/merchants/{id}`.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find(ctx, params[0])?;
    let location_ids = catalog::merchant_location_ids(ctx.db, &m.id)?;
    Ok(document(vec![render(&m, location_ids)]).respond(200))
}

/// `GET /v2/merchants/{id}/locations`.
pub fn locations(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find(ctx, params[0])?;
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = catalog::merchant_locations(ctx.db, &m.id, page.limit(), page.offset())?;
    Ok(
        locations::document(rows.iter().map(locations::render).collect())
            .meta(page.meta(ctx.req, total, &[]))
            .respond(200),
    )
}

/// `GET /v2/merchants/{id}/products`.
pub fn products(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find(ctx, params[0])?;
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = catalog::merchant_products(ctx.db, &m.id, page.limit(), page.offset())?;
    let items = rows
        .iter()
        .map(|p| products::render_with_links(ctx.db, p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(products::document(items)
        .meta(page.meta(ctx.req, total, &[]))
        .respond(200))
}
