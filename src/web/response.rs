//! Our own response type, and the contract's JSON envelope.

use crate::error::ApiError;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
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
    pub fn json(status: u16, body: &impl Serialize) -> Response {
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

/// A JSON object written as `base` with the `extra` entries added in key
/// order (an extra entry replaces a base entry of the same key), without
/// copying either: how cached pieces join a freshly rendered object.
pub struct Merged<'a, T> {
    base: &'a Map<String, Value>,
    extra: Vec<(&'a str, T)>,
}

impl<'a, T: Serialize> Merged<'a, T> {
    /// `base` with `extra` merged in.
    pub fn new(base: &'a Map<String, Value>, mut extra: Vec<(&'a str, T)>) -> Self {
        extra.sort_by(|a, b| a.0.cmp(b.0));
        Merged { base, extra }
    }
}

impl<T: Serialize> Serialize for Merged<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The base map iterates in key order (serde_json's default Map),
        // so one pass keeps the whole object in key order, as `Value` does.
        let mut extra = self.extra.iter().peekable();
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.base {
            while let Some((ek, ev)) = extra.next_if(|(ek, _)| *ek <= k.as_str()) {
                map.serialize_entry(ek, ev)?;
            }
            if !self.extra.iter().any(|(ek, _)| *ek == k) {
                map.serialize_entry(k, v)?;
            }
        }
        for (ek, ev) in extra {
            map.serialize_entry(ek, ev)?;
        }
        map.end()
    }
}

/// A JSON-API document: top-level `links`, the primary data as an array
/// under its plural type name, optional `meta` and `linked`.
pub struct Document {
    body: Map<String, Value>,
    /// Primary data already serialized (`new_raw`), under its type name.
    raw: Option<(String, Vec<Box<RawValue>>)>,
}

impl Document {
    /// A document of `kind` (plural type name) holding `items`.
    pub fn new(kind: &str, items: Vec<Value>) -> Document {
        let mut body = Map::new();
        body.insert("links".into(), json!({}));
        body.insert(kind.into(), Value::Array(items));
        Document { body, raw: None }
    }

    /// A document of `kind` whose items are already serialized.
    pub fn new_raw(kind: &str, items: Vec<Box<RawValue>>) -> Document {
        let mut body = Map::new();
        body.insert("links".into(), json!({}));
        Document {
            body,
            raw: Some((kind.to_string(), items)),
        }
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
        match &self.raw {
            None => Response::json(status, &self.body),
            Some((kind, items)) => Response::json(
                status,
                &Merged::new(&self.body, vec![(kind.as_str(), items)]),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_writes_what_the_merged_value_would() {
        let base = json!({"b": 1, "d": {"x": [1, 2]}, "f": "é\"\n", "links": {}, "z": null});
        let Value::Object(base) = base else {
            unreachable!()
        };
        let extra = [
            ("a", json!(0)),
            ("e", json!({"k": "v"})),
            ("d", json!("replaced")),
            ("zz", json!([])),
        ];
        let merged = Merged::new(&base, extra.iter().map(|(k, v)| (*k, v)).collect());
        let mut expected = base.clone();
        for (k, v) in &extra {
            expected.insert((*k).to_string(), v.clone());
        }
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }

    #[test]
    fn a_raw_document_is_byte_identical_to_a_value_one() {
        let item = json!({"id": "c1", "face_value_cents": 10000});
        let raw = serde_json::value::to_raw_value(&item).unwrap();
        let a =
            Document::new("certificates", vec![item]).link("certificates.user", "/v2/users/{x}");
        let b =
            Document::new_raw("certificates", vec![raw]).link("certificates.user", "/v2/users/{x}");
        assert_eq!(a.respond(200).body, b.respond(200).body);
    }
}
