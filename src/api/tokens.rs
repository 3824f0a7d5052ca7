//! Tokens: log in (`POST /v2/tokens`) and log out (`DELETE /v2/tokens`).

use crate::api::input::Fields;
use crate::api::users::{document, render};
use crate::domain::{ids, password, users};
use crate::error::ApiError;
use crate::web::{Ctx, Principal, Response};
use serde_json::Value;

/// `POST /v2/tokens`: email and password → 201 with a new token. A wrong
/// email and a wrong password get the same 401 after the same work.
pub fn create(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "user", false, "Unable to log in")?;
    let email = f.required_text("email", 254);
    let pass = match f.raw("password") {
        Some(Value::String(p)) => p.clone(),
        Some(_) => {
            f.fail("password", "password must be a string");
            String::new()
        }
        None => {
            f.fail("password", "password is required");
            String::new()
        }
    };
    f.finish()?;
    // Failed logins have a small budget per client IP and per account,
    // taken before the Argon2 work and given back when the password is right.
    let limiter = &ctx.app.limiter;
    let taken = limiter.take(
        &limiter.logins(&ctx.req.remote_ip, &email),
        "Too many failed logins; try again later",
    )?;
    let user_id = match users::find_login(ctx.db, &email)? {
        Some((user, hash)) if password::verify(&pass, &hash) => user.id,
        Some(_) => return Err(ApiError::unauthorized()),
        None => {
            password::verify_dummy(&pass);
            return Err(ApiError::unauthorized());
        }
    };
    limiter.refund(taken);
    let token = ids::new_secret();
    let token_digest = ids::digest(token.as_bytes());
    ctx.write_unrecorded(move |db| {
        let user = users::login(db, &user_id, &token_digest)?;
        Ok(document(vec![render(&user, true, Some(&token))]).respond(201))
    })
}

/// `DELETE /v2/tokens`: revokes the presented token (`?all=true`: all).
pub fn delete(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let (user_id, token) = match &ctx.principal {
        Principal::User { id, token } => (id.clone(), token.clone()),
        _ => {
            ctx.user_id()?;
            return Err(ApiError::unauthorized());
        }
    };
    let all = match ctx.req.query_param("all") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid query parameter",
                "/all",
                "all must be true or false",
            ))
        }
    };
    let token_digest = ids::digest(token.as_bytes());
    ctx.write(move |db| {
        users::revoke_tokens(db, &user_id, &token_digest, all)?;
        Ok(Response::no_content())
    })
}
