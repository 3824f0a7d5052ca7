//! The operator's admin page (see docs/reference.md, Admin API): the page
//! itself, embedded from `static/`, at `/admin/`, and the JSON API it talks to
//! at `/admin/api/…`.
//!
//! The web router hands every path under `/admin` to [`handle`], which
//! routes the rest here, so the whole admin surface lives in this module.
//! Every API call except `/admin/api/session` needs a session cookie (401
//! without one); every call that changes something also needs an
//! `X-Requested-With` header (403 without it), which a cross-site form
//! cannot send. Answers use the contract's envelope and `errors[]`.
//!
//! Changes run on the writer directly, never through `Ctx::write`: an
//! `Idempotency-Key` replay is answered before any handler runs, so a
//! recorded admin answer could be replayed without the session check. The
//! page guards against double submits itself.
//!
//! ```text
//! GET                 /admin/api/session                     logged in? (200 either way)
//! POST, DELETE        /admin/api/session                     log in {"password"} / log out
//! GET                 /admin/api/dashboard                   liability and flows per merchant
//! GET, POST           /admin/api/merchants                   ?q= ; {"merchant":{name,url,time_zone,logo}}
//! GET, PUT            /admin/api/merchants/{id}
//! GET, POST           /admin/api/merchants/{id}/keys         POST shows the secret once
//! DELETE              /admin/api/merchants/{id}/keys/{key}   revoke
//! GET, POST           /admin/api/merchants/{id}/locations    PUT /admin/api/locations/{id}
//! GET, POST           /admin/api/merchants/{id}/products     PUT /admin/api/products/{id}
//! POST                /admin/api/products/{id}/product_options  PUT /admin/api/product_options/{id}
//! GET, POST           /admin/api/certificates                ?merchant_id,user_id,status,product_type,q ; issue
//! GET                 /admin/api/certificates/{id}           expanded, with ledger, redemptions, gifts
//! POST                /admin/api/certificates/{id}/cancellations, …/returns
//! GET                 /admin/api/claim_codes/{code}          point of sale: look up
//! POST                /admin/api/claim_codes/{code}/redemptions  point of sale: redeem (source "admin")
//! GET                 /admin/api/redemptions                 ?merchant_id ; POST …/{id}/reversals
//! GET                 /admin/api/users, /gifts               ?q / ?merchant_id
//! GET, PUT            /admin/api/support_tickets[/{id}]      ?status ; {"support_ticket":{"status"}}
//! GET                 /admin/api/outbox                      ?status,kind ; POST …/{id}/resend
//! GET                 /admin/api/exports/certificates.csv, /exports/redemptions.csv, /backup
//! ```

mod catalog;
mod certificates;
pub mod commands;
mod people;
mod reports;
mod session;

pub use session::ensure_operator;

use crate::error::ApiError;
use crate::web::router::Handler;
use crate::web::{Ctx, Response};
use rust_embed::RustEmbed;

/// The page's files, embedded in the binary (read from disk in debug builds).
#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// The methods the web router sends here; `handle` routes further itself.
pub const METHODS: &[(&str, Handler)] = &[
    ("GET", handle),
    ("POST", handle),
    ("PUT", handle),
    ("DELETE", handle),
];

/// No inline script or style, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

type Methods = &'static [(&'static str, Handler)];

/// Answers a request under `/admin` (`params` are the segments after it).
pub fn handle(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    let response = match params {
        [] => only_get(ctx).and_then(|_| asset("index.html")),
        ["api", rest @ ..] => api(ctx, rest),
        [name] => only_get(ctx).and_then(|_| asset(name)),
        _ => Err(not_found(ctx)),
    }
    .unwrap_or_else(Response::from);
    Ok(secured(response))
}

/// Security headers on every admin answer, page and API alike.
fn secured(r: Response) -> Response {
    let cache = if r.content_type.starts_with("application/json") {
        "no-store"
    } else {
        "no-cache"
    };
    let r = if r.headers.iter().any(|(k, _)| k == "Cache-Control") {
        r
    } else {
        r.with_header("Cache-Control", cache)
    };
    r.with_header("Content-Security-Policy", CSP)
        .with_header("X-Frame-Options", "DENY")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
}

fn not_found(ctx: &Ctx) -> ApiError {
    ApiError::new(404, "Not Found", format!("No route for {}", ctx.req.path))
}

fn method_not_allowed(ctx: &Ctx, allow: &str) -> ApiError {
    ApiError::new(
        405,
        "Method Not Allowed",
        format!("{} is not allowed here", ctx.req.method),
    )
    .with_header("Allow", allow.to_string())
}

fn only_get(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.req.method == "GET" {
        Ok(())
    } else {
        Err(method_not_allowed(ctx, "GET"))
    }
}

/// An embedded file by name; names are one plain path segment.
fn asset(name: &str) -> Result<Response, ApiError> {
    let plain = !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let file = if plain { Assets::get(name) } else { None };
    let file = file.ok_or_else(|| {
        ApiError::new(
            404,
            "Not Found",
            format!("No file {name} in the admin page"),
        )
    })?;
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json; charset=utf-8",
        _ => "application/octet-stream",
    };
    Ok(Response::bytes(200, content_type, file.data.into_owned()))
}

/// The admin API: route, then the session (401) and CSRF (403) checks.
fn api(ctx: &Ctx, segs: &[&str]) -> Result<Response, ApiError> {
    let (methods, params) = resolve(segs).ok_or_else(|| not_found(ctx))?;
    let Some(&(_, handler)) = methods.iter().find(|(m, _)| *m == ctx.req.method) else {
        let allow: Vec<&str> = methods.iter().map(|(m, _)| *m).collect();
        return Err(method_not_allowed(ctx, &allow.join(", ")));
    };
    if segs != ["session"] && session::current(ctx)?.is_none() {
        return Err(ApiError::new(
            401,
            "Permission denied",
            "Log in to the admin page first (no valid session)",
        ));
    }
    let declared = ctx
        .req
        .header("x-requested-with")
        .is_some_and(|v| !v.trim().is_empty());
    if ctx.req.method != "GET" && !declared {
        return Err(ApiError::forbidden(
            "Admin changes must be sent by the admin page (X-Requested-With header missing)",
        ));
    }
    handler(ctx, &params)
}

/// The admin API's route table: the methods served at `segs`, and the
/// path parameters.
fn resolve<'a>(segs: &[&'a str]) -> Option<(Methods, Vec<&'a str>)> {
    use self::{catalog as cat, certificates as cert, people as ppl, reports as rep};
    let found: (Methods, Vec<&str>) = match segs {
        ["session"] => (
            &[
                ("GET", session::show),
                ("POST", session::login),
                ("DELETE", session::logout),
            ],
            vec![],
        ),
        ["dashboard"] => (&[("GET", rep::dashboard)], vec![]),
        ["merchants"] => (
            &[("GET", cat::merchants), ("POST", cat::create_merchant)],
            vec![],
        ),
        ["merchants", id] => (
            &[("GET", cat::merchant), ("PUT", cat::update_merchant)],
            vec![id],
        ),
        ["merchants", id, "keys"] => (&[("GET", cat::keys), ("POST", cat::create_key)], vec![id]),
        ["merchants", id, "keys", key] => (&[("DELETE", cat::revoke_key)], vec![id, key]),
        ["merchants", id, "locations"] => (
            &[("GET", cat::locations), ("POST", cat::create_location)],
            vec![id],
        ),
        ["merchants", id, "products"] => (
            &[("GET", cat::products), ("POST", cat::create_product)],
            vec![id],
        ),
        ["locations", id] => (&[("PUT", cat::update_location)], vec![id]),
        ["products", id] => (&[("PUT", cat::update_product)], vec![id]),
        ["products", id, "product_options"] => (&[("POST", cat::create_option)], vec![id]),
        ["product_options", id] => (&[("PUT", cat::update_option)], vec![id]),
        ["certificates"] => (&[("GET", cert::index), ("POST", cert::issue)], vec![]),
        ["certificates", id] => (&[("GET", cert::show)], vec![id]),
        ["certificates", id, "cancellations"] => (&[("POST", cert::cancel)], vec![id]),
        ["certificates", id, "returns"] => (&[("POST", cert::refund)], vec![id]),
        ["claim_codes", code] => (&[("GET", cert::lookup)], vec![code]),
        ["claim_codes", code, "redemptions"] => (&[("POST", cert::redeem)], vec![code]),
        ["redemptions"] => (&[("GET", cert::redemptions)], vec![]),
        ["redemptions", id, "reversals"] => (&[("POST", cert::reverse)], vec![id]),
        ["users"] => (&[("GET", ppl::users)], vec![]),
        ["gifts"] => (&[("GET", ppl::gifts)], vec![]),
        ["support_tickets"] => (&[("GET", ppl::tickets)], vec![]),
        ["support_tickets", id] => (&[("PUT", ppl::update_ticket)], vec![id]),
        ["outbox"] => (&[("GET", ppl::outbox)], vec![]),
        ["outbox", id, "resend"] => (&[("POST", ppl::resend)], vec![id]),
        ["exports", "certificates.csv"] => (&[("GET", rep::certificates_csv)], vec![]),
        ["exports", "redemptions.csv"] => (&[("GET", rep::redemptions_csv)], vec![]),
        ["backup"] => (&[("GET", rep::backup)], vec![]),
        _ => return None,
    };
    Some(found)
}

/// Filters of a list: read from the query, and repeated (URL-encoded) in
/// the page links of `meta`.
struct Filters<'a> {
    ctx: &'a Ctx<'a>,
    shown: Vec<(&'static str, String)>,
}

impl<'a> Filters<'a> {
    fn new(ctx: &'a Ctx<'a>) -> Self {
        Filters {
            ctx,
            shown: Vec::new(),
        }
    }

    /// A free-text filter (trimmed; empty means none; at most 255 characters).
    fn text(&mut self, name: &'static str) -> Result<Option<String>, ApiError> {
        let value = self.ctx.req.query_param(name).map(str::trim).unwrap_or("");
        if value.is_empty() {
            return Ok(None);
        }
        if value.chars().count() > 255 || value.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "Invalid query parameter",
                &format!("/{name}"),
                format!("{name} must be at most 255 characters of text"),
            ));
        }
        self.shown.push((name, encode(value)));
        Ok(Some(value.to_string()))
    }

    /// A filter that must be one of `allowed` (400 otherwise).
    fn one_of(&mut self, name: &'static str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.ctx.req.query_param(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if allowed.contains(&v) => {
                self.shown.push((name, v.to_string()));
                Ok(Some(v.to_string()))
            }
            Some(_) => Err(ApiError::invalid(
                "Invalid query parameter",
                &format!("/{name}"),
                format!("{name} must be one of {}", allowed.join(", ")),
            )),
        }
    }

    /// The `meta` of a page of `total` items.
    fn meta(&self, page: &crate::web::Page, total: i64) -> serde_json::Value {
        page.meta(self.ctx.req, total, &self.shown)
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A LIKE pattern matching `text` anywhere (with `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode("ann@example.com"), "ann%40example.com");
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn every_file_of_the_page_is_embedded() {
        for name in ["index.html", "app.js", "app.css", "favicon.svg"] {
            assert!(asset(name).is_ok(), "{name}");
        }
        assert!(asset("../Cargo.toml").is_err());
        assert!(asset(".hidden").is_err());
    }
}
