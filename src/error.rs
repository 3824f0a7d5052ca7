//! The one error type: an HTTP status from the contract plus its `errors[]`
//! entries. Domain code uses it too, because the contract's refusals
//! ("This item has previously been redeemed") are part of the money rules.

use crate::domain::refusal::Refusal;
use serde_json::{json, Value};

/// One entry of the contract's `errors[]` array.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub title: String,
    pub details: String,
    pub pointer: Option<String>,
}

/// An error answer: status, one or more problems, and extra headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub problems: Vec<Problem>,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with a single problem.
    pub fn new(status: u16, title: &str, details: impl Into<String>) -> Self {
        ApiError {
            status,
            problems: vec![Problem {
                title: title.to_string(),
                details: details.into(),
                pointer: None,
            }],
            headers: Vec::new(),
        }
    }

    /// 400 with a title and details.
    pub fn bad_request(title: &str, details: impl Into<String>) -> Self {
        Self::new(400, title, details)
    }

    /// 400 about one field, named by its JSON pointer.
    pub fn invalid(title: &str, pointer: &str, details: impl Into<String>) -> Self {
        let mut e = Self::new(400, title, details);
        e.problems[0].pointer = Some(pointer.to_string());
        e
    }

    /// 401: credentials missing or wrong.
    pub fn unauthorized() -> Self {
        Self::new(401, "Permission denied", "Credentials are missing or wrong")
    }

    /// 403: authenticated, but this endpoint is for the other kind of account.
    pub fn forbidden(details: &str) -> Self {
        Self::new(403, "Forbidden", details)
    }

    /// 404 in the reference's words (its `title`); also used for other
    /// principals' resources.
    pub fn not_found() -> Self {
        Self::new(
            404,
            "Resource with that ID not found",
            "Resource with that ID not found",
        )
    }

    /// 409: an idempotency key reused with a different request.
    pub fn conflict(details: &str) -> Self {
        Self::new(409, "Conflict", details)
    }

    /// 503: the server is shutting down.
    pub fn unavailable() -> Self {
        Self::new(503, "Service Unavailable", "The server is shutting down")
    }

    /// 500: logs the internal message; the body says nothing of it.
    pub fn internal(log_message: impl std::fmt::Display) -> Self {
        crate::log::error(&format!("internal error: {log_message}"));
        Self::new(
            500,
            "Internal Server Error",
            "Something went wrong on our side",
        )
    }

    /// Adds a response header (e.g. `Allow`, `Retry-After`).
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `{"errors":[…]}` body.
    pub fn body(&self) -> Value {
        let reason = reason_phrase(self.status);
        let errors: Vec<Value> = self
            .problems
            .iter()
            .map(|p| {
                let mut e = json!({
                    "code": self.status.to_string(),
                    "status": reason,
                    "title": p.title,
                    "details": p.details,
                });
                if let Some(ptr) = &p.pointer {
                    e["source"] = json!({ "pointer": ptr });
                }
                e
            })
            .collect();
        json!({ "errors": errors })
    }
}

/// The domain's refusals in HTTP terms: not found 404, credentials 401, a
/// wrong field 400 with its pointer at the top level of the body (see
/// `refused_under` for a field inside an envelope), a refusal of state 400,
/// our failures 500.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        refused_at(r, "")
    }
}

/// Maps a refusal whose field sits under `{"<root>": {…}}` in the request.
pub fn refused_under(root: &'static str) -> impl Fn(Refusal) -> ApiError {
    move |r| refused_at(r, &format!("/{root}"))
}

fn refused_at(r: Refusal, base: &str) -> ApiError {
    match r {
        Refusal::NotFound => ApiError::not_found(),
        Refusal::Unauthorized => ApiError::unauthorized(),
        Refusal::Field {
            title,
            field,
            details,
        } => ApiError::invalid(title, &format!("{base}/{field}"), details),
        Refusal::Refused { title, details } => ApiError::bad_request(title, details),
        Refusal::Internal(why) => ApiError::internal(why),
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("database: {e}"))
    }
}

/// Collects validation problems so one answer lists all of them.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    title: String,
    list: Vec<Problem>,
}

impl Problems {
    /// Starts a collection whose entries share `title` ("Unable to create user").
    pub fn new(title: &str) -> Self {
        Problems {
            title: title.to_string(),
            list: Vec::new(),
        }
    }

    /// Records one problem with the field it concerns.
    pub fn add(&mut self, pointer: &str, details: impl Into<String>) {
        self.list.push(Problem {
            title: self.title.clone(),
            details: details.into(),
            pointer: Some(pointer.to_string()),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Ok when empty, else a 400 listing every problem.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(ApiError {
                status: 400,
                problems: self.list,
                headers: Vec::new(),
            })
        }
    }
}

/// The reason phrase the contract prints in `errors[].status`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}
