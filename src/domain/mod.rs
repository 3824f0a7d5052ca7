//! Business rules and the SQL that keeps them: plain functions over a
//! database connection (inside the writer's transaction for changes), with
//! no HTTP types.

pub mod catalog;
pub mod certificates;
pub mod claim_code;
pub mod gifts;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod outbox;
pub mod password;
pub mod redemptions;
pub mod refusal;
pub mod status;
pub mod tickets;
pub mod time;
pub mod users;
