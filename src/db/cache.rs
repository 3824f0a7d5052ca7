//! A per-worker cache of rendered catalog pieces (a merchant with its
//! locations, a product with its options), for the expanded certificate.
//!
//! It is valid exactly as long as the database is unchanged: every use
//! compares SQLite's `PRAGMA data_version` of this worker's read-only
//! connection, which changes whenever any other connection commits, and
//! drops everything when it moved. Write connections never use it (their
//! own commits do not move their `data_version`).

use crate::error::ApiError;
use rusqlite::Connection;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Entries kept before the cache starts afresh.
const MAX_ENTRIES: usize = 4096;

struct Cache {
    connection: usize,
    version: i64,
    // Shared, not copied, on a hit: the entries are read-only.
    entries: HashMap<String, Rc<dyn Any>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache { connection: 0, version: -1, entries: HashMap::new() });
}

/// The value for `key`: from the cache while the database is unchanged,
/// otherwise from `fill` (then kept).
pub fn cached<T: 'static>(
    db: &Connection,
    key: &str,
    fill: impl FnOnce() -> Result<T, ApiError>,
) -> Result<Rc<T>, ApiError> {
    if !db.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return fill().map(Rc::new);
    }
    let version: i64 = db
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?;
    let connection = db as *const Connection as usize;
    let hit = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.connection != connection || c.version != version || c.entries.len() >= MAX_ENTRIES {
            c.connection = connection;
            c.version = version;
            c.entries.clear();
        }
        c.entries.get(key).cloned()
    });
    if let Some(v) = hit.and_then(|v| v.downcast::<T>().ok()) {
        return Ok(v);
    }
    let value = Rc::new(fill()?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.connection == connection && c.version == version {
            c.entries.insert(key.to_string(), value.clone());
        }
    });
    Ok(value)
}
