//! Users: sign-up and profile (`/v2/users`).

use crate::api::input::{Fields, SHORT};
use crate::domain::{ids, password, time, users};
use crate::error::{refused_under, ApiError};
use crate::web::{Ctx, Document, Page, Principal, Response};
use serde_json::{json, Value};

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password (hashing cost is bounded).
pub const MAX_PASSWORD: usize = 1024;

/// The user as JSON; `email` and `token` only for the user themself.
pub fn render(u: &users::User, email: bool, token: Option<&str>) -> Value {
    let mut v = json!({
        "id": u.id,
        "href": format!("/v2/users/{}", u.id),
        "name": format!("{} {}", u.first_name, u.last_name).trim().to_string(),
        "first_name": u.first_name,
        "last_name": u.last_name,
        "last_login_at": time::rfc3339_opt(u.last_login_at),
        "links": {},
        "created_at": time::rfc3339(u.created_at),
        "updated_at": time::rfc3339(u.updated_at),
    });
    if email {
        v["email"] = json!(u.email);
        v["email_verified"] = json!(u.email_verified_at.is_some());
    }
    if let Some(t) = token {
        v["authentication_token"] = json!(t);
    }
    v
}

/// A `users[]` document with the relationship templates.
pub fn document(items: Vec<Value>) -> Document {
    Document::new("users", items)
        .link("users.certificates", "/v2/users/{users.id}/certificates")
        .link("users.redemptions", "/v2/users/{users.id}/redemptions")
        .link("users.gifts", "/v2/users/{users.id}/gifts")
        .link("users.sent_gifts", "/v2/users/{users.id}/sent_gifts")
        // The original reference's keys, which its clients look up.
        .link("user.certificates", "/v2/users/{users.id}/certificates")
        .link("user.redemptions", "/v2/users/{users.id}/redemptions")
        .link("user.gifts", "/v2/users/{users.id}/gifts")
        .link("user.sent_gifts", "/v2/users/{users.id}/sent_gifts")
}

/// Reads `password` and `password_confirmation` and checks them.
pub fn new_password(f: &mut Fields) -> String {
    let password = match f.raw("password") {
        None => {
            f.fail("password", "password is required");
            String::new()
        }
        Some(Value::String(p)) => p.clone(),
        Some(_) => {
            f.fail("password", "password must be a string");
            String::new()
        }
    };
    let chars = password.chars().count();
    if f.raw("password").is_some_and(Value::is_string) {
        if chars < MIN_PASSWORD {
            f.fail(
                "password",
                format!("password is too short (minimum is {MIN_PASSWORD} characters)"),
            );
        } else if chars > MAX_PASSWORD {
            f.fail(
                "password",
                format!("password is too long (maximum is {MAX_PASSWORD} characters)"),
            );
        }
    }
    if f.raw("password_confirmation").and_then(Value::as_str) != Some(password.as_str()) {
        f.fail(
            "password_confirmation",
            "password_confirmation doesn't match password",
        );
    }
    password
}

/// `POST /v2/users`: sign up; 201 with the first token.
pub fn create(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "user", false, "Unable to create user")?;
    let email = f.required_email("email");
    let pass = new_password(&mut f);
    let first_name = f.line("first_name", SHORT).unwrap_or_default();
    let last_name = f.line("last_name", SHORT).unwrap_or_default();
    if !email.is_empty() && users::find_login(ctx.db, &email)?.is_some() {
        f.fail("email", "email has already been taken");
    }
    f.finish()?;
    let new = users::NewUser {
        email,
        password_hash: password::hash(&pass),
        first_name,
        last_name,
    };
    let token = ids::new_secret();
    let token_digest = ids::digest(token.as_bytes());
    let confirm = ids::new_secret();
    let public_url = ctx.app.public_url.clone();
    ctx.write_unrecorded(move |db| {
        let user = users::create(db, &new, &token_digest).map_err(refused_under("user"))?;
        users::request_verification(db, &user, &confirm, &public_url)?;
        Ok(document(vec![render(&user, true, Some(&token))]).respond(201))
    })
}

/// `POST /v2/email_verifications`: with `verification_token` (from the
/// confirmation email), confirms the address: 200 with the user. Without
/// one, a signed-in user whose address is unconfirmed gets a new
/// confirmation email (202), within the reset budget of the address.
pub fn verify(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let title = "Unable to confirm email";
    let body = ctx.body()?;
    let mut f = Fields::new(&body, "user", true, title)?;
    let token = f.text("verification_token", 255);
    f.finish()?;
    if let Some(token) = token {
        return ctx.write(move |db| {
            let user = users::verify_email(db, &token)?;
            Ok(document(vec![render(&user, true, None)]).respond(200))
        });
    }
    let user_id = ctx.user_id()?.to_string();
    let user = users::get(ctx.db, &user_id)?.ok_or_else(ApiError::unauthorized)?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::bad_request(
            title,
            "This email address is already confirmed",
        ));
    }
    let limiter = &ctx.app.limiter;
    let _charged = limiter.take(
        &limiter.resets(&ctx.req.remote_ip, &user.email),
        "Too many confirmation emails; try again later",
    )?;
    let confirm = ids::new_secret();
    let public_url = ctx.app.public_url.clone();
    ctx.write(move |db| {
        users::request_verification(db, &user, &confirm, &public_url)?;
        Ok(Response::json(
            202,
            &json!({ "data": { "title": "Confirmation email sent", "email": user.email } }),
        ))
    })
}

/// `GET /v2/users/{id}`: oneself (with email and the presented token), or
/// for a merchant a holder of its certificates (no email, no token).
pub fn show(ctx: &Ctx, params: &[&str]) -> Result<Response, ApiError> {
    match &ctx.principal {
        Principal::User { id, token } if id == params[0] => {
            let user = users::get(ctx.db, id)?.ok_or_else(ApiError::not_found)?;
            Ok(document(vec![render(&user, true, Some(token))]).respond(200))
        }
        Principal::Merchant { id, .. } if users::holds(ctx.db, params[0], id)? => {
            let user = users::get(ctx.db, params[0])?.ok_or_else(ApiError::not_found)?;
            Ok(document(vec![render(&user, false, None)]).respond(200))
        }
        Principal::User { .. } | Principal::Merchant { .. } => Err(ApiError::not_found()),
        Principal::Public => Err(ApiError::unauthorized()),
    }
}

/// `GET /v2/users` (merchant): the users holding its certificates.
pub fn index(ctx: &Ctx, _: &[&str]) -> Result<Response, ApiError> {
    let merchant_id = ctx.merchant_id()?;
    let page = Page::from_request(ctx.req)?;
    let (rows, total) = users::holders(ctx.db, merchant_id, page.limit(), page.offset())?;
    Ok(
        document(rows.iter().map(|u| render(u, false, None)).collect())
            .meta(page.meta(ctx.req, total, &[]))
            .respond(200),
    )
}
