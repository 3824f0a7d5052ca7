//! Minimal leveled logging to stderr; the level comes from `INSTAGIFT_LOG`
//! (`error`, `warn`, `info`, `debug`; default `info`).

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(2);

/// Sets the level from a name; unknown names keep `info`.
pub fn set_level(name: &str) {
    let level = match name.to_ascii_lowercase().as_str() {
        "error" => 0,
        "warn" => 1,
        "debug" => 3,
        "off" => 255,
        _ => 2,
    };
    LEVEL.store(level, Ordering::Relaxed);
}

fn emit(level: u8, tag: &str, msg: &str) {
    let current = LEVEL.load(Ordering::Relaxed);
    if current != 255 && level <= current {
        eprintln!(
            "{} {tag} {msg}",
            crate::domain::time::rfc3339(crate::domain::time::now())
        );
    }
}

/// Logs an error.
pub fn error(msg: &str) {
    emit(0, "ERROR", msg);
}

/// Logs a warning.
pub fn warn(msg: &str) {
    emit(1, "WARN", msg);
}

/// Logs an informational line (the access log uses this).
pub fn info(msg: &str) {
    emit(2, "INFO", msg);
}

/// Logs a debug line.
pub fn debug(msg: &str) {
    emit(3, "DEBUG", msg);
}
