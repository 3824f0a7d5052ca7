//! Certificates (`/v2/certificates`, `/v2/claim_codes`): lists, the
//! expanded view, issue, split, claim, printed flag, cancel and return.

use crate::api::input::{self, Fields};
use crate::api::{locations, merchants, product_options, products};
use crate::db::cache;
use crate::domain::catalog::{self, PRODUCT_TYPES};
use crate::domain::certificates::{
    self, Actor, Certificate, Filter, IssueRequest, MAX_QUANTITY, STATUSES,
};
use crate::domain::ledger::Kind;
use crate::domain::refusal::Refusal;
use crate::domain::{claim_code, ids, time};
use crate::error::{refused_under, ApiError};
use crate::web::response::Merged;
use crate::web::{Ctx, Document, Page, Principal, Response};
use rusqlite::Connection;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// The acting principal as a domain actor (401 for the public).
pub fn actor<'a>(ctx: &'a Ctx) -> Result<Actor<'a>, ApiError> {
    actor_of(&ctx.principal)
}

/// The domain actor of a principal (401 for the public); lets a write job
/// that owns a copy of the principal act as it.
pub fn actor_of(principal: &Principal) -> Result<Actor<'_>, ApiError> {
    match principal {
        Principal::User { id, .. } => Ok(Actor::User(id)),
        Principal::Merchant { id, .. } => Ok(Actor::Merchant(id)),
        Principal::Public => Err(ApiError::unauthorized()),
    }
}

/// The certificate as JSON (relationships as ids).
pub fn render(c: &Certificate, public_url: &str) -> Value {
    let code = claim_code::display(&c.claim_code);
    let now = time::now();
    json!({
        "id": c.id,
        "href": format!("/v2/certificates/{}", c.id),
        "parent_id": c.parent_id,
        "product_type": c.product_type,
        "claim_code": code,
        "merchant_code": claim_code::merchant_code(&c.claim_code),
        "status": c.status.as_str(),
        "marked_as_printed": c.marked_as_printed,
        "can_split_value": c.can_split_value,
        "qrcode_image": format!("{public_url}/v2/claim_codes/{code}/qrcode"),
        "currency": c.currency,
        "face_value_cents": c.face_value_cents,
        "price_cents": c.price_cents,
        "seller": c.seller,
        "title": c.title(),
        "thumb": c.thumb,
        "expires_at": time::rfc3339_opt(c.expires_at),
        "expired": c.is_expired(now),
        "redeemable_value_cents": c.redeemable_now(now),
        "daily_deal_store": null,
        "links": {
            "user": c.user_id,
            "parent": c.parent_id,
            "merchant": c.merchant_id,
            "product": c.product_id,
            "product_option": c.product_option_id,
        },
        "created_at": time::rfc3339(c.created_at),
        "updated_at": time::rfc3339(c.updated_at),
    })
}

/// The catalog pieces of the expanded view (`merchant` with its locations,
/// `product` with its options and redemption locations, `product_option`),
/// from the worker's render cache while the database is unchanged.
fn catalog_pieces(db: &Connection, c: &Certificate) -> Result<Rc<Map<String, Value>>, ApiError> {
    let key = format!(
        "expanded:{}:{}:{}",
        c.merchant_id, c.product_id, c.product_option_id
    );
    cache::cached(db, &key, || {
        let merchant = catalog::merchant(db, &c.merchant_id)?.ok_or_else(ApiError::not_found)?;
        let (locs, _) = catalog::merchant_locations(db, &c.merchant_id, 1000, 0)?;
        let mut m = merchants::render(&merchant, locs.iter().map(|l| l.id.clone()).collect());
        m["locations"] = Value::Array(locs.iter().map(locations::render).collect());
        let product = catalog::product(db, &c.product_id)?.ok_or_else(ApiError::not_found)?;
        let (options, _) = catalog::product_options(db, &product.id, 1000, 0)?;
        let (plocs, _) = catalog::product_locations(db, &product.id, 1000, 0)?;
        let option_ids: Vec<String> = options.iter().map(|o| o.id.clone()).collect();
        let location_ids = catalog::product_location_ids(db, &product.id)?;
        let mut p = products::render(&product, &location_ids, &option_ids);
        p["product_options"] = Value::Array(options.iter().map(product_options::render).collect());
        p["redemption_locations"] = Value::Array(plocs.iter().map(locations::render).collect());
        let option =
            catalog::product_option(db, &c.product_option_id)?.ok_or_else(ApiError::not_found)?;
        let mut pieces = Map::new();
        pieces.insert("merchant".into(), m);
        pieces.insert("product".into(), p);
        pieces.insert("product_option".into(), product_options::render(&option));
        Ok(pieces)
    })
}

/// The certificate with its merchant (and locations), product (with
/// options and redemption locations) and product option embedded.
pub fn render_expanded(
    db: &Connection,
    c: &Certificate,
    public_url: &str,
) -> Result<Value, ApiError> {
    let pieces = catalog_pieces(db, c)?;
    let mut v = render(c, public_url);
    if let Value::Object(into) = &mut v {
        into.extend(pieces.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(v)
}

/// `render_expanded`, serialized at once: the cached catalog pieces are
/// written where they are instead of being copied into the certificate
/// (the copies were a sixth of the CPU of a lookup).
pub fn render_expanded_raw(
    db: &Connection,
    c: &Certificate,
    public_url: &str,
) -> Result<Box<RawValue>, ApiError> {
    let pieces = catalog_pieces(db, c)?;
    let Value::Object(base) = render(c, public_url) else {
        return Err(ApiError::internal("a certificate renders as an object"));
    };
    let merged = Merged::new(&base, pieces.iter().map(|(k, v)| (k.as_str(), v)).collect());
    serde_json::value::to_raw_value(&merged)
        .map_err(|e| ApiError::internal(format!("cannot serialize a certificate: {e}")))
}

/// A `certificates[]` document with its relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    with_links(Document::new("certificates", items))
}

fn with_links(d: Document) -> Document {
    d.link("certificates.user", "/v2/users/{certificates.user}")
        .link(
            "certificates.parent",
            "/v2/certificates/{certificates.parent}",
        )
        .link(
            "certificates.merchant",
            "/v2/merchants/{certificates.merchant}",
        )
        .link(
            "certificates.product",
            "/v2/products/{certificates.product}",
        )
        .link(
            "certificates.product_option",
            "/v2/product_options/{certificates.product_option}",
        )
}

fn one_of(
    ctx: &Ctx,
    name: &str,
    allowed: &[&str],
    filters: &mut Vec<(&'static str, String)>,
    key: &'static str,
) -> Result<Option<String>, ApiError> {
    match ctx.req.query_param(name) {
        None | Some("") => Ok(None),
        Some(v) if allowed.contains(&v) => {
            filters.push((key, v.to_string()));
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(ApiError::invalid(
            "Invalid query parameter",
            &format!("/{name}"),
            format!("{name} must be one of {}", allowed.join(", ")),
        )),
    }
}

/// Lists certificates under `base` filter, reading `list_type`,
/// `product_type`, `status`, `page` and `per_page` from the query.
fn list(ctx: &Ctx, mut filter: Filter) -> Result<Response, ApiError> {
    let page = Page::from_request(ctx.req)?;
    let mut shown = Vec::new();
    // `status=available` is the reference's spelling of `list_type=available`.
    let statuses: Vec<&str> = STATUSES.iter().copied().chain(["available"]).collect();
    filter.status = one_of(ctx, "status", &statuses, &mut shown, "status")?;
    if filter.status.as_deref() == Some("available") {
        filter.status = None;
        filter.available_at = Some(time::now());
    }
    filter.product_type = one_of(
        ctx,
        "product_type",
        &PRODUCT_TYPES,
        &mut shown,
        "product_type",
    )?;
    if one_of(
        ctx,
        "list_type",
        &["all", "available"],
        &mut shown,
        "list_type",
    )?
    .as_deref()
        == Some("available")
    {
        filter.available_at = Some(time::now());
    }
    let (rows, total) = certificates::list(ctx.db, &filter, page.limit(), page.offset())?;
    let url = &ctx.app.public_url;
    Ok(document(rows.iter().map(|c| render(c, url)).collect())
        .meta(page.meta(ctx.req, total, &shown))
        .respond(200))
}

/// `GET /v2/certificates`: the caller's certificates (user or merchant).
pub fn index(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let filter = match actor(ctx)? {
        Actor::User(id) => Filter {
            user_id: Some(id.to_string()),
            ..Filter::default()
        },
        Actor::Merchant(id) => Filter {
            merchant_id: Some(id.to_string()),
            ..Filter::default()
        },
        Actor::Operator => Filter::default(),
    };
    list(ctx, filter)
}

/// `GET /v2/users/{id}/certificates`: self only.
pub fn of_user(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.user_id()?;
    if me != params[0] {
        return Err(ApiError::not_found());
    }
    list(
        ctx,
        Filter {
            user_id: Some(me.to_string()),
            ..Filter::default()
        },
    )
}

/// `GET /v2/merchants/{id}/certificates`: the merchant itself only.
pub fn of_merchant(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.merchant_id()?;
    if me != params[0] {
        return Err(ApiError::not_found());
    }
    list(
        ctx,
        Filter {
            merchant_id: Some(me.to_string()),
            ..Filter::default()
        },
    )
}

/// `GET /v2/certificates/{id}`: expanded.
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    // One snapshot for the certificate and its expansion: `web::handle`
    // runs every API read in one read transaction.
    let cert = certificates::find(ctx.db, params[0], actor(ctx)?)?;
    let body = render_expanded_raw(ctx.db, &cert, &ctx.app.public_url)?;
    Ok(with_links(Document::new_raw("certificates", vec![body])).respond(200))
}

/// Runs a claim-code lookup under the budget for misses: a well-formed code
/// that matches nothing is charged to the client IP and to the caller, and
/// once either budget is spent every lookup is a 429 until it resets.
/// (Typos, caught by the check character, are not charged.)
pub fn code_budget(
    ctx: &Ctx,
    lookup: impl FnOnce() -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let limiter = &ctx.app.limiter;
    let budgets = limiter.code_misses(&ctx.req.remote_ip, &ctx.principal.scope(&ctx.req.remote_ip));
    // Charged before the lookup, given back unless it missed.
    let taken = limiter.take(&budgets, "Too many unknown claim codes; try again later")?;
    let result = lookup();
    let missed = match &result {
        Ok(r) => r.status == 404,
        Err(e) => e.status == 404,
    };
    if !missed {
        limiter.refund(taken);
    }
    result
}

/// `GET /v2/claim_codes/{code}` (merchant): not expanded.
pub fn by_code(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let me = ctx.merchant_id()?;
    code_budget(ctx, || {
        let cert = certificates::find_by_code(ctx.db, params[0], Actor::Merchant(me))?;
        Ok(document(vec![render(&cert, &ctx.app.public_url)]).respond(200))
    })
}

/// `GET /v2/claim_codes/{code}/qrcode`: an SVG QR code of the claim code.
/// Public: it shows only what the URL already holds, and never touches the
/// database, so it reveals nothing about whether the code exists.
pub fn qrcode(_ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let code = certificates::parse_code(params[0])?;
    let qr = qrcode::QrCode::new(claim_code::display(&code).as_bytes())
        .map_err(|e| ApiError::internal(format!("qr: {e}")))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(Response::bytes(200, "image/svg+xml", svg.into_bytes())
        .with_header("Cache-Control", "private, max-age=86400"))
}

/// `POST /v2/certificates` (merchant): issue 1–100 certificates.
pub fn issue(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "certificate", false, "Unable to issue certificate")?;
    let product_option_id = f.required_line("product_option_id", 64);
    let quantity = f.int("quantity", 1, MAX_QUANTITY).unwrap_or(1);
    let recipient_email = f.email("recipient_email");
    let price_cents = f.cents("price_cents");
    let expires_at = match f.line("expires_at", 64) {
        None => None,
        Some(text) => match time::parse_rfc3339(&text) {
            Some(t) if t > time::now() => Some(t),
            Some(_) => {
                f.fail("expires_at", "expires_at must be in the future");
                None
            }
            None => {
                f.fail(
                    "expires_at",
                    "expires_at must be an RFC 3339 timestamp, e.g. 2027-12-31T23:59:59Z",
                );
                None
            }
        },
    };
    f.finish()?;
    let req = IssueRequest {
        product_option_id,
        quantity,
        recipient_email,
        price_cents,
        expires_at,
    };
    let url = ctx.app.public_url.clone();
    ctx.write(move |db| issued(db, &merchant_id, &req, &url))
}

/// Issues in the write transaction and answers 201 with the certificates.
pub fn issued(
    db: &Connection,
    merchant_id: &str,
    req: &IssueRequest,
    public_url: &str,
) -> Result<Response, ApiError> {
    let issued = certificates::issue(db, merchant_id, req, public_url)
        .map_err(refused_under("certificate"))?;
    Ok(document(issued.iter().map(|c| render(c, public_url)).collect()).respond(201))
}

/// `POST /v2/certificates/{id}/certificates` (owner): split off a new
/// certificate of `new_face_value_cents`.
pub fn split(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let user_id = ctx.user_id()?.to_string();
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "certificate", true, "Unable to split certificate")?;
    let name = if f.raw("new_face_value_cents").is_some() {
        "new_face_value_cents"
    } else {
        "face_value_cents"
    };
    let amount = f.required_positive_cents(name);
    // A refusal of the amount names the field as the request spelled it.
    let pointer = f.pointer(name);
    f.finish()?;
    let id = params[0].to_string();
    let url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        let (original, child) =
            certificates::split(db, &id, &user_id, amount).map_err(|r| match r {
                Refusal::Field { title, details, .. } => {
                    ApiError::invalid(title, &pointer, details)
                }
                other => other.into(),
            })?;
        Ok(document(vec![render(&original, &url), render(&child, &url)]).respond(201))
    })
}

/// `PUT /v2/certificates/{id}` with an id: the owner sets
/// `marked_as_printed`. With a claim code instead: claims it.
pub fn update_or_claim(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let user_id = ctx.user_id()?.to_string();
    let body = ctx.body()?;
    let target = params[0].to_string();
    let url = ctx.app.public_url.clone();
    if ids::looks_like_id(&target) {
        let mut f = Fields::new(&body, "certificate", false, "Unable to update certificate")?;
        let printed = f.flag("marked_as_printed");
        if printed.is_none() && f.problems.is_empty() {
            f.fail("marked_as_printed", "marked_as_printed is required");
        }
        f.finish()?;
        let printed = printed.unwrap_or(false);
        return ctx.write(move |db| {
            let cert = certificates::set_printed(db, &target, &user_id, printed)?;
            Ok(document(vec![render(&cert, &url)]).respond(200))
        });
    }
    input::no_fields(&body, "certificate", "Unable to claim certificate")?;
    certificates::parse_code(&target)?;
    code_budget(ctx, || {
        ctx.write(move |db| {
            let cert = certificates::claim(db, &target, &user_id)?;
            Ok(document(vec![render(&cert, &url)]).respond(200))
        })
    })
}

fn void(ctx: &Ctx, id: &str, kind: Kind) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?.to_string();
    let (root, title) = match kind {
        Kind::Cancel => ("cancellation", "Unable to cancel certificate"),
        _ => ("return", "Unable to return certificate"),
    };
    input::no_fields(&ctx.body()?, root, title)?;
    let id = id.to_string();
    let url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        let cert = certificates::void(db, &id, Actor::Merchant(&merchant_id), kind)?;
        Ok(document(vec![render(&cert, &url)]).respond(201))
    })
}

/// `POST /v2/certificates/{id}/cancellations` (merchant): void it.
pub fn cancel(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    void(ctx, params[0], Kind::Cancel)
}

/// `POST /v2/certificates/{id}/returns` (merchant): refund it.
pub fn refund(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    void(ctx, params[0], Kind::Return)
}
