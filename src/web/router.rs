//! The route table: one match on path segments, giving each method's
//! handler. The original API's alias spellings are already folded by
//! `Request::new`.

use crate::api::{
    certificates, gifts, health, locations, merchants, passwords, product_options, products,
    redemptions, support_tickets, tokens, users,
};
use crate::error::ApiError;
use crate::web::{Ctx, Response};

/// A handler: the request context and the path's parameters.
pub type Handler = fn(&Ctx, &[&str]) -> Result<Response, ApiError>;

type Methods = &'static [(&'static str, Handler)];

/// The methods served at `segments`, with the path parameters; None for an
/// unknown path.
pub fn resolve(segments: &[String]) -> Option<(Methods, Vec<String>)> {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let p = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let found: (Methods, Vec<String>) = match segs.as_slice() {
        ["admin", rest @ ..] => (crate::admin::METHODS, p(rest)),
        ["healthz"] => (&[("GET", health::get)], vec![]),
        ["v2", "openapi.json"] => (&[("GET", crate::api::openapi::get)], vec![]),
        ["v2", "users"] => (&[("POST", users::create), ("GET", users::index)], vec![]),
        ["v2", "users", id] => (&[("GET", users::show)], p(&[id])),
        ["v2", "users", id, "certificates"] => (&[("GET", certificates::of_user)], p(&[id])),
        ["v2", "users", id, "redemptions"] => (&[("GET", redemptions::of_user)], p(&[id])),
        ["v2", "users", id, "gifts"] => (&[("GET", gifts::of_user)], p(&[id])),
        ["v2", "users", id, "sent_gifts"] => (&[("GET", gifts::sent_by_user)], p(&[id])),
        ["v2", "certificates"] => (
            &[("GET", certificates::index), ("POST", certificates::issue)],
            vec![],
        ),
        ["v2", "certificates", id] => (
            &[
                ("GET", certificates::show),
                ("PUT", certificates::update_or_claim),
            ],
            p(&[id]),
        ),
        ["v2", "certificates", id, "certificates"] => (&[("POST", certificates::split)], p(&[id])),
        ["v2", "certificates", id, "redemptions"] => {
            (&[("POST", redemptions::create_by_id)], p(&[id]))
        }
        ["v2", "certificates", id, "gifts"] => (&[("POST", gifts::create)], p(&[id])),
        ["v2", "certificates", id, "cancellations"] => {
            (&[("POST", certificates::cancel)], p(&[id]))
        }
        ["v2", "certificates", id, "returns"] => (&[("POST", certificates::refund)], p(&[id])),
        ["v2", "claim_codes", code] => (&[("GET", certificates::by_code)], p(&[code])),
        ["v2", "claim_codes", code, "redemptions"] => {
            (&[("POST", redemptions::create_by_code)], p(&[code]))
        }
        ["v2", "claim_codes", code, "qrcode"] => (&[("GET", certificates::qrcode)], p(&[code])),
        ["v2", "redemptions"] => (&[("GET", redemptions::index)], vec![]),
        ["v2", "redemptions", id] => (&[("GET", redemptions::show)], p(&[id])),
        ["v2", "redemptions", id, "reversals"] => (&[("POST", redemptions::reverse)], p(&[id])),
        ["v2", "gifts"] => (&[("GET", gifts::index)], vec![]),
        ["v2", "gifts", id] => (&[("GET", gifts::show), ("DELETE", gifts::cancel)], p(&[id])),
        ["v2", "tokens"] => (
            &[("POST", tokens::create), ("DELETE", tokens::delete)],
            vec![],
        ),
        ["v2", "email_verifications"] => (&[("POST", users::verify)], vec![]),
        ["v2", "passwords"] => (
            &[("POST", passwords::request), ("PUT", passwords::reset)],
            vec![],
        ),
        ["v2", "support_tickets"] => (&[("POST", support_tickets::create)], vec![]),
        ["v2", "merchants", id] => (&[("GET", merchants::show)], p(&[id])),
        ["v2", "merchants", id, "locations"] => (&[("GET", merchants::locations)], p(&[id])),
        ["v2", "merchants", id, "products"] => (&[("GET", merchants::products)], p(&[id])),
        ["v2", "merchants", id, "certificates"] => {
            (&[("GET", certificates::of_merchant)], p(&[id]))
        }
        ["v2", "merchants", id, "redemptions"] => (&[("GET", redemptions::of_merchant)], p(&[id])),
        ["v2", "locations"] => (&[("POST", locations::create)], vec![]),
        ["v2", "locations", id] => (
            &[("GET", locations::show), ("PUT", locations::update)],
            p(&[id]),
        ),
        ["v2", "products"] => (&[("POST", products::create)], vec![]),
        ["v2", "products", id] => (
            &[("GET", products::show), ("PUT", products::update)],
            p(&[id]),
        ),
        ["v2", "products", id, "locations"] => (&[("GET", products::locations)], p(&[id])),
        ["v2", "products", id, "product_options"] => (
            &[
                ("GET", products::options),
                ("POST", product_options::create),
            ],
            p(&[id]),
        ),
        ["v2", "product_options", id] => (
            &[
                ("GET", product_options::show),
                ("PUT", product_options::update),
            ],
            p(&[id]),
        ),
        _ => return None,
    };
    Some(found)
}
