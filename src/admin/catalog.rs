//! The shop's catalog as the operator manages it: merchants, their API
//! keys, locations, products and product options. Fields are read,
//! validated and rendered by the merchant API's own code (`crate::api`).

use super::Filters;
use crate::api::input::{Fields, SHORT};
use crate::api::{locations, merchants, product_options, products};
use crate::domain::catalog::{self, Merchant};
use crate::domain::time;
use crate::error::ApiError;
use crate::web::{Ctx, Document, Page, Response};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};

/// What the operator says about a merchant.
struct MerchantInput {
    name: String,
    url: Option<String>,
    time_zone: String,
    logo: Option<String>,
}

fn parse_merchant(mut f: Fields) -> Result<MerchantInput, ApiError> {
    let input = MerchantInput {
        name: f.required_line("name", SHORT),
        url: f.line("url", 2048),
        time_zone: f.line("time_zone", 64).unwrap_or_else(|| "UTC".into()),
        logo: f.line("logo", 2048),
    };
    if !time::is_time_zone(&input.time_zone) {
        f.fail(
            "time_zone",
            "time_zone must be an IANA time zone such as America/New_York",
        );
    }
    f.finish()?;
    Ok(input)
}

fn find_merchant(db: &Connection, id: &str) -> Result<Merchant, ApiError> {
    catalog::merchant(db, id)?.ok_or_else(ApiError::not_found)
}

fn render_merchant(db: &Connection, m: &Merchant) -> Result<Value, ApiError> {
    Ok(merchants::render(
        m,
        catalog::merchant_location_ids(db, &m.id)?,
    ))
}

/// `GET /admin/api/merchants?q=`: by name, A to Z.
pub fn merchants(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut filters = Filters::new(ctx);
    let pattern = filters.text("q")?.map(|q| super::contains_pattern(&q));
    let filter = "FROM merchants WHERE (?1 IS NULL OR name LIKE ?1 ESCAPE '\\')";
    let ids: Vec<String> = ctx
        .db
        .prepare_cached(&format!(
            "SELECT id {filter} ORDER BY name COLLATE NOCASE, rowid LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((&pattern, page.limit(), page.offset()), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let total: i64 = ctx
        .db
        .prepare_cached(&format!("SELECT COUNT(*) {filter}"))?
        .query_row([&pattern], |r| r.get(0))?;
    let items = ids
        .iter()
        .map(|id| render_merchant(ctx.db, &find_merchant(ctx.db, id)?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merchants::document(items)
        .meta(filters.meta(&page, total))
        .respond(200))
}

/// `GET /admin/api/merchants/{id}`.
pub fn merchant(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find_merchant(ctx.db, params[0])?;
    Ok(merchants::document(vec![render_merchant(ctx.db, &m)?]).respond(200))
}

/// `POST /admin/api/merchants` `{"merchant":{name*, url, time_zone, logo}}`.
pub fn create_merchant(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let input = parse_merchant(Fields::new(
        &body,
        "merchant",
        false,
        "Unable to save merchant",
    )?)?;
    ctx.app.writer.run(move |db| {
        let id = catalog::create_merchant(
            db,
            &input.name,
            input.url.as_deref(),
            &input.time_zone,
            input.logo.as_deref(),
        )?;
        let m = find_merchant(db, &id)?;
        Ok(merchants::document(vec![render_merchant(db, &m)?]).respond(201))
    })
}

/// `PUT /admin/api/merchants/{id}`: the fields given replace.
pub fn update_merchant(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.app.writer.run(move |db| {
        // Read and merged in the writer job: a concurrent edit is never
        // written back stale.
        let current = find_merchant(db, &id)?;
        let input = parse_merchant(Fields::for_update(
            merchants::render(&current, vec![]),
            &patch,
            "merchant",
            "Unable to save merchant",
        )?)?;
        let changed = db.execute(
            "UPDATE merchants SET name = ?2, url = ?3, time_zone = ?4, logo = ?5, updated_at = ?6 WHERE id = ?1",
            (&id, &input.name, &input.url, &input.time_zone, &input.logo, time::now()),
        )?;
        if changed == 0 {
            return Err(ApiError::not_found());
        }
        let m = find_merchant(db, &id)?;
        Ok(merchants::document(vec![render_merchant(db, &m)?]).respond(200))
    })
}

fn render_key(key: &str, merchant_id: &str, created_at: i64, revoked_at: Option<i64>) -> Value {
    json!({
        "key": key,
        "created_at": time::rfc3339(created_at),
        "revoked_at": time::rfc3339_opt(revoked_at),
        "links": { "merchant": merchant_id },
    })
}

/// `GET /admin/api/merchants/{id}/keys`: the keys, never their secrets.
pub fn keys(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find_merchant(ctx.db, params[0])?;
    let items = ctx
        .db
        .prepare_cached(
            "SELECT key, created_at, revoked_at FROM merchant_keys WHERE merchant_id = ?1
             ORDER BY created_at DESC, rowid DESC",
        )?
        .query_map([&m.id], |r| {
            Ok(render_key(
                &r.get::<_, String>(0)?,
                &m.id,
                r.get(1)?,
                r.get(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Document::new("merchant_keys", items).respond(200))
}

/// `POST /admin/api/merchants/{id}/keys`: a new key with its secret, shown
/// in this answer only.
pub fn create_key(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let id = find_merchant(ctx.db, params[0])?.id;
    ctx.app.writer.run(move |db| {
        let (key, secret) = catalog::create_key(db, &id)?;
        let mut v = render_key(&key, &id, time::now(), None);
        v["secret"] = json!(secret);
        Ok(Document::new("merchant_keys", vec![v]).respond(201))
    })
}

/// `DELETE /admin/api/merchants/{id}/keys/{key}`: revokes it (200 with the
/// key; revoking a revoked key changes nothing).
pub fn revoke_key(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let (merchant_id, key) = (params[0].to_string(), params[1].to_string());
    ctx.app.writer.run(move |db| {
        let read = |db: &Connection| {
            db.query_row(
                "SELECT created_at, revoked_at FROM merchant_keys WHERE key = ?1 AND merchant_id = ?2",
                (&key, &merchant_id),
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .optional()
        };
        read(db)?.ok_or_else(ApiError::not_found)?;
        catalog::revoke_key(db, &key)?;
        let (created_at, revoked_at) = read(db)?.ok_or_else(ApiError::not_found)?;
        Ok(Document::new(
            "merchant_keys",
            vec![render_key(&key, &merchant_id, created_at, revoked_at)],
        )
        .respond(200))
    })
}

/// `GET /admin/api/merchants/{id}/locations`.
/// The same list as the public `GET /v2/merchants/{id}/locations`.
pub fn locations(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    crate::api::merchants::locations(ctx, params)
}

/// `POST /admin/api/merchants/{id}/locations` `{"location":{…}}`.
pub fn create_location(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find_merchant(ctx.db, params[0])?;
    let body = ctx.body()?;
    let loc = locations::parse(
        Fields::new(&body, "location", false, "Unable to save location")?,
        &m.id,
        "",
    )?;
    ctx.app.writer.run(move |db| {
        let saved = catalog::save_location(db, &loc)?;
        Ok(locations::document(vec![locations::render(&saved)]).respond(201))
    })
}

/// `PUT /admin/api/locations/{id}`: the fields given replace.
pub fn update_location(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.app.writer.run(move |db| {
        let saved = locations::apply_update(db, &id, &patch, None)?;
        Ok(locations::document(vec![locations::render(&saved)]).respond(200))
    })
}

/// A product with its links and, embedded, its options (one call fills
/// the page's catalog screen).
fn render_product(db: &Connection, p: &catalog::Product) -> Result<Value, ApiError> {
    let mut v = products::render_with_links(db, p)?;
    let (options, _) = catalog::product_options(db, &p.id, 1000, 0)?;
    v["product_options"] = Value::Array(options.iter().map(product_options::render).collect());
    Ok(v)
}

/// `GET /admin/api/merchants/{id}/products`: with their options.
pub fn products(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find_merchant(ctx.db, params[0])?;
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = catalog::merchant_products(ctx.db, &m.id, page.limit(), page.offset())?;
    let items = rows
        .iter()
        .map(|p| render_product(ctx.db, p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(products::document(items)
        .meta(page.meta(ctx.req, total, &[]))
        .respond(200))
}

/// `POST /admin/api/merchants/{id}/products` `{"product":{…}}`.
pub fn create_product(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let m = find_merchant(ctx.db, params[0])?;
    let body = ctx.body()?;
    let (product, location_ids) = products::parse(
        Fields::new(&body, "product", false, "Unable to save product")?,
        &m.id,
        "",
    )?;
    ctx.app.writer.run(move |db| {
        let saved = catalog::save_product(db, &product, location_ids.as_deref())
            .map_err(crate::error::refused_under("product"))?;
        Ok(products::document(vec![render_product(db, &saved)?]).respond(201))
    })
}

/// `PUT /admin/api/products/{id}`: the fields given replace.
pub fn update_product(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.app.writer.run(move |db| {
        let saved = products::apply_update(db, &id, &patch, None)?;
        Ok(products::document(vec![render_product(db, &saved)?]).respond(200))
    })
}

/// `POST /admin/api/products/{id}/product_options` `{"product_option":{…}}`.
pub fn create_option(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let product = catalog::product(ctx.db, params[0])?.ok_or_else(ApiError::not_found)?;
    let body = ctx.body()?;
    let option = product_options::parse(
        Fields::new(
            &body,
            "product_option",
            false,
            "Unable to save product option",
        )?,
        &product.id,
        "",
    )?;
    ctx.app.writer.run(move |db| {
        let saved = catalog::save_product_option(db, &option)?;
        Ok(product_options::document(vec![product_options::render(&saved)]).respond(201))
    })
}

/// `PUT /admin/api/product_options/{id}`: the fields given replace.
pub fn update_option(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let patch = ctx.body()?;
    let id = params[0].to_string();
    ctx.app.writer.run(move |db| {
        let saved = product_options::apply_update(db, &id, &patch, None)?;
        Ok(product_options::document(vec![product_options::render(&saved)]).respond(200))
    })
}
