//! The HTTP layer without sockets: request and response types, router,
//! authentication, idempotency, and `handle`, which turns one request into
//! one response.

pub mod auth;
pub mod idempotency;
pub mod page;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;

pub use auth::Principal;
pub use page::Page;
pub use request::Request;
pub use response::{Document, Response};

use crate::db::Writer;
use crate::error::ApiError;
use ratelimit::{Limiter, Standing};
use rusqlite::Connection;
use serde_json::Value;
use std::sync::Arc;

/// What every handler can reach: the writer and the settings.
pub struct App {
    pub writer: Arc<Writer>,
    /// Rate limits (see docs/reference.md, Rate limits).
    pub limiter: Limiter,
    /// The public base URL used in emails and QR links.
    pub public_url: String,
}

/// One request in flight: the app, this worker's read connection, the
/// request and its authenticated caller.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub db: &'a Connection,
    pub req: &'a Request,
    pub principal: Principal,
    /// The request's validated `Idempotency-Key`, if it carries one.
    pub idempotency: Option<idempotency::Key>,
}

impl Ctx<'_> {
    /// The calling user's id: 401 without credentials, 403 for a merchant.
    pub fn user_id(&self) -> Result<&str, ApiError> {
        match &self.principal {
            Principal::User { id, .. } => Ok(id),
            Principal::Merchant { .. } => {
                Err(ApiError::forbidden("This endpoint is for user accounts"))
            }
            Principal::Public => Err(ApiError::unauthorized()),
        }
    }

    /// The calling merchant's id: 401 without credentials, 403 for a user.
    pub fn merchant_id(&self) -> Result<&str, ApiError> {
        match &self.principal {
            Principal::Merchant { id, .. } => Ok(id),
            Principal::User { .. } => Err(ApiError::forbidden(
                "This endpoint is for merchant accounts",
            )),
            Principal::Public => Err(ApiError::unauthorized()),
        }
    }

    /// The request body as a JSON object (406/400 otherwise).
    pub fn body(&self) -> Result<Value, ApiError> {
        self.req.json()
    }

    /// Runs a change in the write transaction. With an `Idempotency-Key`,
    /// the first answer is recorded in the same transaction and replayed to
    /// repeats (see `idempotency`).
    pub fn write<F>(&self, f: F) -> Result<Response, ApiError>
    where
        F: FnOnce(&Connection) -> Result<Response, ApiError> + Send + 'static,
    {
        match self.idempotency.clone() {
            Some(key) => self.app.writer.run(move |conn| key.once(conn, f)),
            None => self.app.writer.run(f),
        }
    }

    /// Runs a change whose answer carries a freshly issued secret (a token):
    /// such answers are never stored, so `Idempotency-Key` is not replayed.
    pub fn write_unrecorded<F>(&self, f: F) -> Result<Response, ApiError>
    where
        F: FnOnce(&Connection) -> Result<Response, ApiError> + Send + 'static,
    {
        self.app.writer.run(f)
    }
}

/// Answers one request. Never panics into the caller's thread: a panicking
/// handler becomes a 500. Every answer carries the caller's rate-limit
/// standing.
pub fn handle(app: &App, db: &Connection, req: &Request) -> Response {
    let mut standing = None;
    // API reads never wait on the writer: one snapshot for the whole request.
    let read_only = req.is_read() && req.segments.first().map(String::as_str) == Some("v2");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if read_only {
            crate::db::in_read_transaction(db, || dispatch(app, db, req, &mut standing))
        } else {
            dispatch(app, db, req, &mut standing)
        }
    }))
    .unwrap_or_else(|_| {
        Err(ApiError::internal(format!(
            "handler panicked on {} {}",
            req.method, req.path
        )))
    });
    let mut response = result.unwrap_or_else(Response::from);
    let standing = standing.unwrap_or_else(|| {
        app.limiter.hit(
            &Principal::Public.scope(&req.remote_ip),
            app.limiter.budgets.ip,
        )
    });
    // A refusal by a small budget already describes that budget.
    let described = response
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("RateLimit-Limit"));
    if !described {
        for (k, v) in standing.headers() {
            response.headers.push((k.to_string(), v));
        }
    }
    if req.method == "HEAD" {
        response.body.clear();
    }
    response
}

fn dispatch(
    app: &App,
    db: &Connection,
    req: &Request,
    standing: &mut Option<Standing>,
) -> Result<Response, ApiError> {
    // The admin page and the QR images answer in their own media types.
    let admin = req.segments.first().map(String::as_str) == Some("admin");
    let image = req.segments.last().map(String::as_str) == Some("qrcode");
    if !admin && !image && !req.accepts_json() {
        return Err(ApiError::new(
            406,
            "Not Acceptable",
            "This API only answers with JSON",
        ));
    }
    let Some((methods, params)) = router::resolve(&req.segments) else {
        return Err(ApiError::new(
            404,
            "Not Found",
            format!("No route for {}", req.path),
        ));
    };
    // HEAD is GET without the body (`handle` drops it).
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    let Some(&(_, handler)) = methods.iter().find(|(m, _)| *m == method) else {
        let mut allow: Vec<&str> = methods.iter().map(|(m, _)| *m).collect();
        if allow.contains(&"GET") {
            allow.push("HEAD");
        }
        return Err(ApiError::new(
            405,
            "Method Not Allowed",
            format!("{} is not allowed here", req.method),
        )
        .with_header("Allow", allow.join(", ")));
    };
    let principal = match auth::authenticate(db, &app.writer, req) {
        Ok(p) => p,
        // Wrong credentials are charged to the client IP's budget, and
        // refused once it is spent, so guessing keys runs into a 429 too.
        Err(e) => {
            let charged = app.limiter.hit(
                &Principal::Public.scope(&req.remote_ip),
                app.limiter.budgets.ip,
            );
            *standing = Some(charged);
            if charged.exceeded {
                return Err(charged.refusal(
                    "Too many requests; slow down and retry after the time in Retry-After",
                ));
            }
            return Err(e);
        }
    };
    let budget = match principal {
        Principal::Public => app.limiter.budgets.ip,
        Principal::User { .. } => app.limiter.budgets.user,
        Principal::Merchant { .. } => app.limiter.budgets.merchant,
    };
    let charged = app.limiter.hit(&principal.scope(&req.remote_ip), budget);
    *standing = Some(charged);
    if charged.exceeded {
        return Err(
            charged.refusal("Too many requests; slow down and retry after the time in Retry-After")
        );
    }
    // A repeat of a keyed request is answered before the handler looks at
    // it, so checks that depend on the clock cannot change the answer.
    let idempotency = idempotency::Key::from_request(req, &principal)?;
    if let Some(key) = &idempotency {
        if let Some(replayed) = key.replay(db)? {
            return Ok(replayed);
        }
    }
    let ctx = Ctx {
        app,
        db,
        req,
        principal,
        idempotency,
    };
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    handler(&ctx, &params)
}
