//! HTTP glue, one file per resource: read and validate input, call the
//! domain, render the contract's JSON. No business rule lives here.

pub mod certificates;
pub mod gifts;
pub mod health;
pub mod input;
pub mod locations;
pub mod merchants;
pub mod openapi;
pub mod passwords;
pub mod product_options;
pub mod products;
pub mod redemptions;
pub mod support_tickets;
pub mod tokens;
pub mod users;
