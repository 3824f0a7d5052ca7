//! Instagift: a self-hosted gift-certificate server.
//!
//! The request path is `server` (sockets, worker pool) → `web` (our own
//! request/response types, router, auth) → `api` (HTTP glue per resource) →
//! `domain` (money, statuses, claim codes, SQL) → `db` (connections, the
//! single writer thread). Business rules never see an HTTP type.

pub mod admin;
pub mod api;
pub mod args;
pub mod commands;
pub mod db;
pub mod domain;
pub mod error;
pub mod log;
pub mod mail;
pub mod server;
pub mod web;
