//! Storage: opening the SQLite file with the right pragmas, migrations by
//! `PRAGMA user_version`, the single writer thread and per-worker readers.

pub mod cache;
pub mod housekeeping;
mod writer;

pub use writer::Writer;

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// The schema this build writes; `schema.sql` is version 1.
pub const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;
/// The schema of version 1; every later version is a step of `MIGRATIONS`,
/// applied to new files and old files alike, so there is one path to each
/// version.
const SCHEMA: &str = include_str!("../../schema.sql");
/// Step `i` brings version `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] = &[
    // 2: the face and price a certificate's paid share is reckoned against
    // (see domain::money::paid_left); until now that was the certificate's
    // own figures, which is what an existing row gets.
    "ALTER TABLE certificates ADD COLUMN basis_face_cents INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE certificates ADD COLUMN basis_price_cents INTEGER NOT NULL DEFAULT 0;
     UPDATE certificates SET basis_face_cents = face_value_cents, basis_price_cents = price_cents;",
    // 3: email addresses proven by their owners. Accounts made before have
    // proven nothing: certificates issued to them go out as gift emails
    // with the code until they confirm (see domain::users).
    "ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
     CREATE TABLE email_verifications (
         digest     TEXT PRIMARY KEY,
         user_id    TEXT NOT NULL REFERENCES users(id),
         expires_at INTEGER NOT NULL,
         used_at    INTEGER,
         created_at INTEGER NOT NULL
     );
     CREATE INDEX email_verifications_user ON email_verifications(user_id);",
    // 4: when each user token was last used (idle expiry; NULL: not used
    // since created), and an index for purging expired idempotency records.
    "ALTER TABLE user_tokens ADD COLUMN last_used_at INTEGER;
     CREATE INDEX idempotency_created ON idempotency(created_at);",
];

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
    // SQLite opens a file it may not write read-only, silently: the server
    // would start and answer every change with a 500.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(unwritable(path, "the file is read-only"));
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| format!("cannot enable WAL on {}: {e}", path.display()))?;
    pragmas(&conn).map_err(|e| e.to_string())?;
    // Savepoint journals (one per write job) stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| e.to_string())?;
    migrate(&conn)?;
    probe_write(&conn).map_err(|e| unwritable(path, &e.to_string()))?;
    Ok(conn)
}

fn unwritable(path: &Path, why: &str) -> String {
    format!(
        "cannot write to the database {} ({why}): the server must be able to write the file, \
         its -wal and -shm files and their directory",
        path.display()
    )
}

/// One real committed write (the schema version, unchanged), which fails
/// when the file, its WAL or their directory cannot be written.
fn probe_write(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; PRAGMA user_version = {version}; COMMIT;"
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
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
    let steps = std::iter::once((0, SCHEMA))
        .chain((1..).zip(MIGRATIONS.iter().copied()))
        .filter(|(from, _)| *from >= version);
    for (from, sql) in steps {
        let to = from + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}\nPRAGMA user_version = {to}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            format!("cannot bring the schema to version {to}: {e}")
        })?;
    }
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
    /// Ends the transaction however `f` ends, a panic included: a worker's
    /// connection left inside it would answer from an old snapshot forever.
    struct End<'a>(&'a Connection);
    impl Drop for End<'_> {
        fn drop(&mut self) {
            if !self.0.is_autocommit() {
                let _ = run_cached(self.0, "ROLLBACK");
            }
        }
    }
    let end = End(conn);
    if !conn.is_autocommit() {
        // Left over from an earlier failure: start from a fresh snapshot.
        let _ = run_cached(conn, "ROLLBACK");
    }
    let _ = run_cached(conn, "BEGIN");
    let out = f();
    drop(end);
    out
}

/// Runs one statement without parameters through the statement cache.
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_read_leaves_no_transaction_behind() {
        let path = std::env::temp_dir().join(format!("instagift-read-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        drop(open_writer(&path).unwrap());
        let reader = open_reader(&path).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_read_transaction(&reader, || {
                assert!(!reader.is_autocommit(), "inside a transaction");
                panic!("a handler bug");
            })
        }));
        assert!(caught.is_err());
        assert!(
            reader.is_autocommit(),
            "the transaction ended with the panic"
        );
        let n: i64 = in_read_transaction(&reader, || {
            reader.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
        })
        .unwrap();
        assert_eq!(n, 0);
        assert!(reader.is_autocommit());
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn a_version_1_file_is_migrated() {
        let conn = Connection::open_in_memory().unwrap();
        // A file as version 1 shipped it, with a user and a token.
        conn.execute_batch(&format!(
            "{SCHEMA}
             INSERT INTO users (id, email, email_norm, password_hash, first_name, last_name, created_at, updated_at)
                 VALUES ('u', 'a@b.c', 'a@b.c', 'h', 'A', 'B', 1, 1);
             INSERT INTO user_tokens (digest, user_id, created_at) VALUES ('d', 'u', 5);
             PRAGMA user_version = 1;"
        ))
        .unwrap();
        migrate(&conn).unwrap();
        assert_eq!(schema_version(&conn), SCHEMA_VERSION);
        let (created, used): (i64, Option<i64>) = conn
            .query_row(
                "SELECT created_at, last_used_at FROM user_tokens",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((created, used), (5, None));
        let verified: Option<i64> = conn
            .query_row("SELECT email_verified_at FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(verified, None);
        let indexed: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE name = 'idempotency_created')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(indexed);
        migrate(&conn).unwrap();
    }
}
