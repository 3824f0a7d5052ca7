//! Our own request type: handlers never touch tiny_http, so the whole web
//! layer can be driven without a socket.

use crate::error::ApiError;
use serde_json::Value;

/// Request bodies larger than this get 413.
pub const MAX_BODY: usize = 64 * 1024;

/// One HTTP request, fully read.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path as sent, without the query string.
    pub path: String,
    /// Percent-decoded path segments.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote_ip: String,
}

impl Request {
    /// Builds a request from its parts, splitting and decoding the URL.
    pub fn new(
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        remote_ip: String,
    ) -> Request {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url, ""),
        };
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            segments: canonical_segments(path),
            query: parse_query(query),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body,
            remote_ip,
        }
    }

    /// The path with the original API's alias spellings folded onto ours
    /// (`/v2/merchant/x/locations` → `/v2/merchants/x/locations`).
    pub fn canonical_path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter of that name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this request only reads (see `is_read`).
    pub fn is_read(&self) -> bool {
        is_read(&self.method)
    }

    /// False when an `Accept` header is present and rules JSON out.
    pub fn accepts_json(&self) -> bool {
        let Some(accept) = self.header("accept") else {
            return true;
        };
        if accept.trim().is_empty() {
            return true;
        }
        accept.split(',').any(|part| {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == "*/*"
                || media == "application/*"
                || media == "application/json"
                || media.ends_with("+json")
        })
    }

    /// The body as a JSON object: 406 if it is not JSON, 400 if it is JSON
    /// but not an object.
    pub fn json(&self) -> Result<Value, ApiError> {
        // No body at all (`curl -X PUT`) reads as `{}`: writes whose fields
        // are all optional work without one, and a required field is then
        // named as missing.
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        let content_type = self.header("content-type").unwrap_or("");
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(not_json(
                "The request isn't JSON: send Content-Type: application/json",
            ));
        }
        let value: Value = serde_json::from_slice(&self.body)
            .map_err(|e| not_json(&format!("The request isn't JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "Invalid request",
                "The request body must be a JSON object",
            ));
        }
        Ok(value)
    }
}

/// Decoded path segments, with the resource after `v2` spelled our way.
fn canonical_segments(path: &str) -> Vec<String> {
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if segments.len() >= 2 && segments[0] == "v2" {
        let folded = match segments[1].as_str() {
            "user" => "users",
            "certficates" => "certificates",
            "claim_code" => "claim_codes",
            "merchant" => "merchants",
            "product" => "products",
            _ => "",
        };
        if !folded.is_empty() {
            segments[1] = folded.to_string();
        }
    }
    segments
}

fn not_json(details: &str) -> ApiError {
    ApiError::new(406, "Not Acceptable", details)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%XX` escapes (and `+` when `plus_is_space`); invalid UTF-8 is
/// replaced rather than refused, so lookups simply miss.
fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a request of `method` only reads: GET, HEAD and OPTIONS. Any
/// other method may change data: it is answered on a change thread, runs
/// through the writer, and may carry an `Idempotency-Key`.
pub fn is_read(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Decodes one path segment.
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k, true), decode(v, true)),
            None => (decode(pair, true), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_head_and_options_are_reads() {
        for m in ["GET", "HEAD", "OPTIONS", "get"] {
            assert!(is_read(m), "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", ""] {
            assert!(!is_read(m), "{m}");
        }
    }

    #[test]
    fn splits_url() {
        let r = Request::new(
            "get",
            "/v2/claim_codes/AB%20CD?page=2&x=a+b&%ZZ",
            vec![],
            vec![],
            String::new(),
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.segments, vec!["v2", "claim_codes", "AB CD"]);
        assert_eq!(r.query_param("page"), Some("2"));
        assert_eq!(r.query_param("x"), Some("a b"));
        assert_eq!(r.query_param("%ZZ"), Some(""));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn accept_rules() {
        let with = |v: &str| {
            Request::new(
                "GET",
                "/",
                vec![("Accept".into(), v.into())],
                vec![],
                String::new(),
            )
        };
        assert!(with("application/json").accepts_json());
        assert!(with("text/html, */*;q=0.8").accepts_json());
        assert!(!with("text/html").accepts_json());
        assert!(!with("application/xml").accepts_json());
    }
}
