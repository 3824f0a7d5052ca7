//! Why the domain refuses a request, in its own terms. The HTTP layer
//! decides what each means on the wire (src/error.rs: `refused_under`).

use std::fmt;

/// A refusal of the money rules, the accounts or the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No such thing, or not the caller's to see (the two look the same).
    NotFound,
    /// The caller's credentials no longer hold.
    Unauthorized,
    /// One input is wrong: its field (a name, or `name/index` in a list)
    /// and why.
    Field {
        title: &'static str,
        field: String,
        details: String,
    },
    /// Not possible as things stand (already redeemed, not splittable, a
    /// typo in a claim code caught by its check character, …).
    Refused {
        title: &'static str,
        details: String,
    },
    /// A failure of ours (the database): logged, never shown to the caller.
    Internal(String),
}

impl Refusal {
    /// One field is wrong.
    pub fn field(
        title: &'static str,
        field: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        Refusal::Field {
            title,
            field: field.into(),
            details: details.into(),
        }
    }

    /// Not possible as things stand.
    pub fn refused(title: &'static str, details: impl Into<String>) -> Self {
        Refusal::Refused {
            title,
            details: details.into(),
        }
    }

    /// A failure of ours.
    pub fn internal(why: impl fmt::Display) -> Self {
        Refusal::Internal(why.to_string())
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
        Refusal::Internal(format!("database: {e}"))
    }
}
