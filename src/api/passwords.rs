//! Password resets: request one (`POST`) and complete it (`PUT`).

use crate::api::input::Fields;
use crate::api::users::{document, new_password, render};
use crate::domain::{ids, password, users};
use crate::error::ApiError;
use crate::web::{Ctx, Response};
use serde_json::json;

/// `POST /v2/passwords`: the same 201 whether or not the email is known;
/// a known one gets a reset email through the outbox.
pub fn request(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "user", true, "Unable to reset password")?;
    let email = f.required_email("email");
    f.finish()?;
    // Reset requests have a small budget per client IP and per address, so
    // the endpoint cannot be used to flood someone's mailbox.
    let limiter = &ctx.app.limiter;
    let _charged = limiter.take(
        &limiter.resets(&ctx.req.remote_ip, &email),
        "Too many password reset requests; try again later",
    )?;
    let token = ids::new_secret();
    let public_url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        users::request_reset(db, &email, &token, &public_url)?;
        Ok(Response::json(
            201,
            &json!({ "data": { "title": "Password reset sent", "email": email } }),
        ))
    })
}

/// `PUT /v2/passwords`: reset token and new password → 200 with a fresh
/// token; every older token of the user is revoked.
pub fn reset(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "user", true, "Unable to reset password")?;
    let reset_token = f.required_text("reset_token", 255);
    let pass = new_password(&mut f);
    f.finish()?;
    let hash = password::hash(&pass);
    let token = ids::new_secret();
    let token_digest = ids::digest(token.as_bytes());
    ctx.write_unrecorded(move |db| {
        let user = users::complete_reset(db, &reset_token, &hash, &token_digest)?;
        Ok(document(vec![render(&user, true, Some(&token))]).respond(200))
    })
}
