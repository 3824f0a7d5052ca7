//! Our own response type, and the contract's JSON envelope.

use crate::error::ApiError;
use serde_json::{json, Map, Value};

/// `Content-Type` of every API answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: JSON.to_string(),
            headers: Vec::new(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// 204 with an empty body (and no Content-Type).
    pub fn no_content() -> Response {
        Response {
            status: 204,
            content_type: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Raw bytes with their own content type (the admin page, QR images).
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The body parsed as JSON (Null when it is not).
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        let mut r = Response::json(e.status, &e.body());
        for (k, v) in e.headers {
            r.headers.push((k.to_string(), v));
        }
        r
    }
}

/// A JSON-API document: top-level `links`, the primary data as an array
/// under its plural type name, optional `meta` and `linked`.
pub struct Document {
    body: Map<String, Value>,
}

impl Document {
    /// A document of `kind` (plural type name) holding `items`.
    pub fn new(kind: &str, items: Vec<Value>) -> Document {
        let mut body = Map::new();
        body.insert("links".into(), json!({}));
        body.insert(kind.into(), Value::Array(items));
        Document { body }
    }

    /// Adds a URL template to the top-level `links`.
    pub fn link(mut self, name: &str, template: &str) -> Document {
        if let Some(Value::Object(links)) = self.body.get_mut("links") {
            links.insert(name.into(), Value::String(template.into()));
        }
        self
    }

    /// Sets `meta` (pagination).
    pub fn meta(mut self, meta: Value) -> Document {
        self.body.insert("meta".into(), meta);
        self
    }

    /// Adds related resources under `linked.<kind>`.
    pub fn linked(mut self, kind: &str, items: Vec<Value>) -> Document {
        let linked = self.body.entry("linked").or_insert_with(|| json!({}));
        if let Value::Object(map) = linked {
            map.insert(kind.into(), Value::Array(items));
        }
        self
    }

    /// The finished response.
    pub fn respond(self, status: u16) -> Response {
        Response::json(status, &Value::Object(self.body))
    }
}
