//! A certificate's status: the states of its value, stored by name.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use std::fmt;

/// Where a certificate's value stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Open; whoever holds the code may claim it (printed, or a balance
    /// spent at the till).
    Pending,
    /// Open; in a user's account.
    Assigned,
    /// Open; on its way to a recipient by email.
    Gifted,
    /// Spent.
    Redeemed,
    /// Voided by the merchant.
    Cancelled,
    /// Refunded to the customer.
    Returned,
}

/// Every status by name, as the API's filters spell them.
pub const STATUSES: [&str; 6] = [
    "pending",
    "assigned",
    "gifted",
    "redeemed",
    "cancelled",
    "returned",
];

impl Status {
    /// Every status, in the order of `STATUSES`.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Assigned,
        Status::Gifted,
        Status::Redeemed,
        Status::Cancelled,
        Status::Returned,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Assigned => "assigned",
            Status::Gifted => "gifted",
            Status::Redeemed => "redeemed",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
        }
    }

    /// The status of that name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True while it carries open value.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Assigned | Status::Gifted)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for Status {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Status {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Status::parse(name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown status {name}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_order() {
        for (s, name) in Status::ALL.into_iter().zip(STATUSES) {
            assert_eq!(s.as_str(), name);
            assert_eq!(Status::parse(name), Some(s));
        }
        assert_eq!(Status::parse("expired"), None);
    }
}
