//! Minimal leveled logging to stderr; the level comes from `INSTAGIFT_LOG`
//! (`error`, `warn`, `info`, `debug`; default `info`).

use std::cell::RefCell;
use std::io::Write;
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
    if current == 255 || level > current {
        return;
    }
    // One write per line (stderr is unbuffered: formatting straight into it
    // would cost a system call per piece), and the timestamp formatted once
    // a second per thread.
    thread_local! {
        static STAMP: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = crate::domain::time::now();
    let mut line = STAMP.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 != now {
            *s = (now, crate::domain::time::rfc3339(now));
        }
        s.1.clone()
    });
    line.reserve(tag.len() + msg.len() + 3);
    line.push(' ');
    line.push_str(tag);
    line.push(' ');
    line.push_str(msg);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
