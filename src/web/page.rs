//! Pagination of collections: `page` and `per_page` in, `meta` out.

use crate::error::{ApiError, Problems};
use crate::web::Request;
use serde_json::{json, Value};

/// Largest `per_page` accepted.
pub const MAX_PER_PAGE: i64 = 100;

/// A requested page of a collection.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
}

impl Page {
    /// Reads `page` (default 1) and `per_page` (default 10, 1–100); anything
    /// else is a 400 naming the parameter.
    pub fn from_request(req: &Request) -> Result<Page, ApiError> {
        let mut problems = Problems::new("Invalid query parameter");
        let page = parse(
            req.query_param("page"),
            1,
            i64::MAX / MAX_PER_PAGE,
            "page",
            &mut problems,
        );
        let per_page = parse(
            req.query_param("per_page"),
            10,
            MAX_PER_PAGE,
            "per_page",
            &mut problems,
        );
        problems.finish()?;
        Ok(Page { page, per_page })
    }

    /// SQL LIMIT.
    pub fn limit(&self) -> i64 {
        self.per_page
    }

    /// SQL OFFSET.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// The `meta` object for a collection of `total` items answering `req`;
    /// `filters` are repeated in every page link.
    pub fn meta(&self, req: &Request, total: i64, filters: &[(&str, String)]) -> Value {
        let href = req.canonical_path();
        let page_count = ((total + self.per_page - 1) / self.per_page).max(1);
        let link = |p: i64| {
            let mut q = format!("?page={p}&per_page={}", self.per_page);
            for (k, v) in filters {
                q.push_str(&format!("&{k}={v}"));
            }
            Value::String(q)
        };
        json!({
            "href": href,
            "page": self.page,
            "per_page": self.per_page,
            "page_count": page_count,
            "total_count": total,
            "links": {
                "first": link(1),
                "previous": if self.page > 1 { link((self.page - 1).min(page_count)) } else { Value::Null },
                "next": if self.page < page_count { link(self.page + 1) } else { Value::Null },
                "last": link(page_count),
            }
        })
    }
}

fn parse(raw: Option<&str>, default: i64, max: i64, name: &str, problems: &mut Problems) -> i64 {
    match raw {
        None => default,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                problems.add(
                    &format!("/{name}"),
                    format!("{name} must be a whole number from 1 to {max}"),
                );
                default
            }
        },
    }
}
