//! Storage: opening the SQLite file with the right pragmas, migrations by
//! `PRAGMA user_version`, the single writer thread and per-worker readers.

pub mod cache;
mod writer;

pub use writer::Writer;

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// The schema this build writes; `schema.sql` is version 1.
pub const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = include_str!("../../schema.sql");

fn pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;",
    )
}

/// Opens the read-write connection, creating and migrating the file.
pub fn open_writer(path: &Path) -> Result<Connection, String> {
    let conn =
        Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| format!("cannot enable WAL on {}: {e}", path.display()))?;
    pragmas(&conn).map_err(|e| e.to_string())?;
    // Savepoint journals (one per write job) stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| e.to_string())?;
    migrate(&conn)?;
    Ok(conn)
}

/// Opens a second read-write connection that only runs checkpoints, so
/// copying the WAL back into the database (and that file's fsync) happens
/// beside the writer instead of inside its commit path.
pub fn open_checkpointer(path: &Path) -> Result<Connection, String> {
    let conn =
        Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    pragmas(&conn).map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Opens a read-only connection (one per worker thread).
pub fn open_reader(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    pragmas(&conn).map_err(|e| e.to_string())?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings the schema to `SCHEMA_VERSION`; refuses files from a newer build.
pub fn migrate(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "database schema version {version} is newer than this build ({SCHEMA_VERSION})"
        ));
    }
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            format!("cannot create schema: {e}")
        })?;
    }
    // Later versions: `if version < 2 { … }` steps go here, each in its own transaction.
    Ok(())
}

/// The schema version stored in the file.
pub fn schema_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Runs `f` inside one read transaction on `conn`: every query of `f` sees
/// the same snapshot, and the file locks are taken once instead of once per
/// statement (which showed in profiles of the lookups). Only for work that
/// does not wait on the writer, so a snapshot is never held for long.
pub fn in_read_transaction<T>(conn: &Connection, f: impl FnOnce() -> T) -> T {
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    let began = conn.is_autocommit() && run("BEGIN").is_ok();
    let out = f();
    if began && run("COMMIT").is_err() {
        let _ = run("ROLLBACK");
    }
    out
}
