//! Reading request fields with one error entry per problem, each naming its
//! field in `source.pointer`.

use crate::domain::money;
use crate::error::{ApiError, Problems};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Longest accepted ordinary text field, in characters.
pub const SHORT: usize = 255;
/// Longest accepted long text field (messages, instructions).
pub const LONG: usize = 10_000;

/// The fields of one request object, e.g. `{"user":{…}}` under `/user`.
///
/// Every field sent must be one the endpoint reads: `finish` refuses the
/// rest by name, so a misplaced or misspelled field (an amount beside the
/// envelope instead of in it) is never silently dropped.
pub struct Fields {
    obj: Map<String, Value>,
    base: String,
    pub problems: Problems,
    /// The names the endpoint has read.
    read: RefCell<BTreeSet<String>>,
    /// For an update: the stored resource as rendered, whose fields may be
    /// sent back unchanged (a client that reads, edits and sends it all).
    current: Option<Map<String, Value>>,
    /// For an update: the names the request itself sent.
    sent: Option<BTreeSet<String>>,
}

impl Fields {
    /// Takes `body[root]` (or, when `flat_ok`, the body itself if `root` is
    /// absent) as the object to read.
    pub fn new(body: &Value, root: &str, flat_ok: bool, title: &str) -> Result<Fields, ApiError> {
        let (obj, base) = match body.get(root) {
            Some(Value::Object(o)) => (o.clone(), format!("/{root}")),
            Some(_) => {
                return Err(ApiError::invalid(
                    title,
                    &format!("/{root}"),
                    format!("{root} must be an object"),
                ))
            }
            None if flat_ok => (body.as_object().cloned().unwrap_or_default(), String::new()),
            None => {
                return Err(ApiError::invalid(
                    title,
                    &format!("/{root}"),
                    format!("{root} is required"),
                ))
            }
        };
        let mut problems = Problems::new(title);
        if !base.is_empty() {
            for name in body.as_object().into_iter().flat_map(Map::keys) {
                if name != root {
                    problems.add(
                        &format!("/{name}"),
                        format!("{name} is not read here: fields go inside {root}"),
                    );
                }
            }
        }
        Ok(Fields {
            obj,
            base,
            problems,
            read: RefCell::default(),
            current: None,
            sent: None,
        })
    }

    /// The fields of an update: `patch[root]` laid over the stored resource
    /// as rendered, so an update is validated exactly like a create of the
    /// merged whole. Rendered fields sent back unchanged are accepted; sent
    /// with another value, they are refused as read-only.
    pub fn for_update(
        current: Value,
        patch: &Value,
        root: &str,
        title: &str,
    ) -> Result<Fields, ApiError> {
        let changes = Fields::new(patch, root, false, title)?;
        changes.problems.clone().finish()?;
        let current = match current {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut obj = current.clone();
        let sent = changes.obj.keys().cloned().collect();
        for (k, v) in changes.obj {
            obj.insert(k, v);
        }
        Ok(Fields {
            obj,
            base: format!("/{root}"),
            problems: Problems::new(title),
            read: RefCell::default(),
            current: Some(current),
            sent: Some(sent),
        })
    }

    /// True when the request names `name`, even as null.
    pub fn present(&self, name: &str) -> bool {
        self.read.borrow_mut().insert(name.to_string());
        self.obj.contains_key(name)
    }

    /// The field as sent, null included.
    fn sent_value(&self, name: &str) -> Option<&Value> {
        self.read.borrow_mut().insert(name.to_string());
        self.obj.get(name)
    }

    /// The JSON pointer of a field.
    pub fn pointer(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Records a problem with `name`.
    pub fn fail(&mut self, name: &str, details: impl Into<String>) {
        let ptr = self.pointer(name);
        self.problems.add(&ptr, details);
    }

    /// The raw value, treating null as absent.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.sent_value(name).filter(|v| !v.is_null())
    }

    /// An optional string (trimmed; empty counts as absent), at most `max` chars.
    pub fn text(&mut self, name: &str, max: usize) -> Option<String> {
        match self.raw(name).cloned() {
            None => None,
            Some(Value::String(s)) => {
                let s = s.trim().to_string();
                if s.chars().count() > max {
                    self.fail(name, format!("{name} must be at most {max} characters"));
                    None
                } else if s
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
                {
                    self.fail(name, format!("{name} must not contain control characters"));
                    None
                } else if s.is_empty() {
                    None
                } else {
                    Some(s)
                }
            }
            Some(_) => {
                self.fail(name, format!("{name} must be a string"));
                None
            }
        }
    }

    /// A required string: missing or blank is a problem.
    pub fn required_text(&mut self, name: &str, max: usize) -> String {
        let present = self.raw(name).is_some();
        match self.text(name, max) {
            Some(s) => s,
            None => {
                if !present {
                    self.fail(name, format!("{name} is required"));
                } else if self
                    .raw(name)
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.trim().is_empty())
                {
                    self.fail(name, format!("{name} can't be blank"));
                }
                String::new()
            }
        }
    }

    /// A single-line string: like `text`, refusing line breaks (names go into
    /// email headers).
    pub fn line(&mut self, name: &str, max: usize) -> Option<String> {
        let s = self.text(name, max)?;
        if s.contains(['\n', '\r']) {
            self.fail(name, format!("{name} must be a single line"));
            return None;
        }
        Some(s)
    }

    /// A required single-line string.
    pub fn required_line(&mut self, name: &str, max: usize) -> String {
        let s = self.required_text(name, max);
        if s.contains(['\n', '\r']) {
            self.fail(name, format!("{name} must be a single line"));
            return String::new();
        }
        s
    }

    /// An optional email address, lightly validated.
    pub fn email(&mut self, name: &str) -> Option<String> {
        let s = self.line(name, 254)?;
        if is_email(&s) {
            Some(s)
        } else {
            self.fail(name, format!("{name} is not a valid email address"));
            None
        }
    }

    /// A required email address; missing or blank is a problem.
    pub fn required_email(&mut self, name: &str) -> String {
        match self.raw(name).and_then(Value::as_str).map(str::trim) {
            None if self.raw(name).is_none() => {
                self.fail(name, format!("{name} is required"));
                String::new()
            }
            Some("") => {
                self.fail(name, format!("{name} can't be blank"));
                String::new()
            }
            _ => self.email(name).unwrap_or_default(),
        }
    }

    /// An optional boolean (`true`/`false`, or the strings of them).
    pub fn flag(&mut self, name: &str) -> Option<bool> {
        match self.raw(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "true" => Some(true),
            Some(Value::String(s)) if s == "false" => Some(false),
            Some(_) => {
                self.fail(name, format!("{name} must be true or false"));
                None
            }
        }
    }

    /// An optional amount in cents (integer or digit string, 0 allowed).
    /// Null is not an amount: a present amount must be valid.
    pub fn cents(&mut self, name: &str) -> Option<i64> {
        let v = self.sent_value(name)?.clone();
        match money::parse_cents(&v) {
            Ok(n) => Some(n),
            Err(why) => {
                self.fail(name, format!("{name} {why}"));
                None
            }
        }
    }

    /// A required amount in cents greater than zero (null is refused).
    pub fn required_positive_cents(&mut self, name: &str) -> i64 {
        let Some(v) = self.sent_value(name).cloned() else {
            self.fail(name, format!("{name} is required"));
            return 0;
        };
        match money::parse_positive_cents(&v) {
            Ok(n) => n,
            Err(why) => {
                self.fail(name, format!("{name} {why}"));
                0
            }
        }
    }

    /// An optional whole number within `min..=max` (integer or digit string).
    pub fn int(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.raw(name)?.clone();
        let n = match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.fail(
                    name,
                    format!("{name} must be a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    /// An optional number within `min..=max` (coordinates).
    pub fn number(&mut self, name: &str, min: f64, max: f64) -> Option<f64> {
        let v = self.raw(name)?.clone();
        let n = match &v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() && (min..=max).contains(&n) => Some(n),
            _ => {
                self.fail(name, format!("{name} must be a number from {min} to {max}"));
                None
            }
        }
    }

    /// An optional list of at most 100 strings, each at most `max`
    /// characters; a longer list is refused, never cut.
    pub fn text_list(&mut self, name: &str, max: usize) -> Option<Vec<String>> {
        let v = self.raw(name)?.clone();
        let list = v.as_array().and_then(|items| {
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .filter(|s| s.chars().count() <= max)
                })
                .collect::<Option<Vec<String>>>()
        });
        if list.is_none() {
            self.fail(
                name,
                format!("{name} must be a list of strings of at most {max} characters"),
            );
        }
        match list {
            Some(l) if l.len() > 100 => {
                self.fail(name, format!("{name} must have at most 100 items"));
                None
            }
            other => other,
        }
    }

    /// Ok when no problem was recorded and every field sent was read,
    /// else a 400 listing them all.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let read = self.read.take();
        let names: Vec<String> = match &self.sent {
            Some(sent) => sent.iter().cloned().collect(),
            None => self.obj.keys().cloned().collect(),
        };
        for name in names.iter().filter(|n| !read.contains(*n)) {
            match self.current.as_ref().and_then(|c| c.get(name)) {
                Some(stored) if Some(stored) == self.obj.get(name) => {}
                Some(_) => self.fail(name, format!("{name} cannot be changed")),
                None => self.fail(name, format!("{name} is not a field of this request")),
            }
        }
        self.problems.finish()
    }
}

/// Refuses any field in a body the endpoint reads nothing from (`{}`, or
/// `{"<root>": {}}`, or no body at all): a field it would ignore is a 400.
pub fn no_fields(body: &Value, root: &str, title: &str) -> Result<(), ApiError> {
    Fields::new(body, root, true, title)?.finish()
}

/// A light, strict-enough email check: one `@`, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    // ASCII only: an account's address is its key, case-folded in ASCII
    // alone, so no two spellings can name one account (users::email_key).
    s.is_ascii()
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',')
        && !domain.contains('@')
}
