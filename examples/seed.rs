//! Seeds a fresh database for `bench/run.sh`, through the library (the same
//! domain functions the API calls), in big transactions: one merchant with
//! an API key, a location, a product, a $100 option sold for $50, a user,
//! `--certificates` certificates (90 % pending, 10 % assigned to the user)
//! and `--pool` more pending ones reserved for the redemption runs.
//!
//! ```sh
//! cargo run --release --example seed -- --db target/bench/work/db --out target/bench/work \
//!     --certificates 1000000 --pool 100000
//! cargo run --release --example seed -- --db target/bench/work/db --count-redemptions
//! ```
//!
//! Writes to `--out`: `ids.txt` and `codes.txt` (a uniform sample of at
//! most `--sample` certificate ids and claim codes from the main set, for
//! the lookups), `pool.txt` (every pool claim code, for the redemptions,
//! each redeemable once; `--pool-only` adds a pool to an existing seeded
//! database) and `seed.env` (the merchant id, key and secret,
//! also printed on stdout). The operator account is created as on a first
//! start, so the server starting on this file does no password hashing.

use clap::Parser;
use instagift::domain::catalog::{self, Location, Product, ProductOption};
use instagift::domain::certificates::{self, IssueRequest};
use instagift::domain::{claim_code, ids, password, users};
use rusqlite::Connection;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Seed a benchmark database quickly.
#[derive(Debug, Parser)]
struct Args {
    /// Database file to create (must not exist yet).
    #[arg(long)]
    db: PathBuf,
    /// Directory for ids.txt, codes.txt, pool.txt and seed.env.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Certificates in the main set (the database size under test).
    #[arg(long, default_value_t = 1000)]
    certificates: usize,
    /// Extra pending certificates, each redeemed at most once by the bench.
    #[arg(long, default_value_t = 0)]
    pool: usize,
    /// At most this many ids and codes of the main set go to the files.
    #[arg(long, default_value_t = 100_000)]
    sample: usize,
    /// Certificates per transaction.
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
    /// Add `--pool` pending certificates to an existing seeded database
    /// (writes pool.txt only).
    #[arg(long)]
    pool_only: bool,
    /// Instead of seeding: print `redemptions=N distinct_certificates=M`
    /// for an existing database and exit.
    #[arg(long)]
    count_redemptions: bool,
}

type Res<T> = Result<T, String>;

fn main() {
    let args = Args::parse();
    let result = if args.count_redemptions {
        count(&args.db)
    } else if args.pool_only {
        add_pool(&args)
    } else {
        seed(&args)
    };
    if let Err(e) = result {
        eprintln!("seed: {e}");
        std::process::exit(1);
    }
}

fn count(db: &Path) -> Res<()> {
    let conn = Connection::open(db).map_err(|e| e.to_string())?;
    let (n, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT certificate_id) FROM redemptions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| e.to_string())?;
    println!("redemptions={n} distinct_certificates={distinct}");
    Ok(())
}

/// Opens the database for fast bulk writes. A seed needs no durability:
/// nothing is acknowledged to anyone, and a big page cache keeps the
/// random-key index inserts off the disk.
fn open(db: &Path) -> Res<Connection> {
    let conn = instagift::db::open_writer(db)?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .map_err(err)?;
    Ok(conn)
}

/// Issues the pool (pending certificates for the redemption runs) and
/// writes their claim codes to pool.txt.
fn pool(conn: &mut Connection, args: &Args, merchant_id: &str, option_id: &str) -> Res<()> {
    let mut out = File::create(args.out.join("pool.txt"))
        .map(BufWriter::new)
        .map_err(|e| format!("pool.txt: {e}"))?;
    issue(
        conn,
        merchant_id,
        option_id,
        None,
        args.pool,
        args.batch,
        |_, code| writeln!(out, "{}", claim_code::display(code)).map_err(err),
    )?;
    out.flush().map_err(err)
}

fn add_pool(args: &Args) -> Res<()> {
    if !args.db.exists() {
        return Err(format!("{} does not exist", args.db.display()));
    }
    std::fs::create_dir_all(&args.out).map_err(err)?;
    let started = Instant::now();
    let mut conn = open(&args.db)?;
    let (merchant_id, option_id): (String, String) = conn
        .query_row(
            "SELECT p.merchant_id, o.id FROM product_options o JOIN products p ON p.id = o.product_id
             ORDER BY o.rowid LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| format!("no seeded product option: {e}"))?;
    pool(&mut conn, args, &merchant_id, &option_id)?;
    finish(conn, &args.db)?;
    eprintln!(
        "seed: pool of {} pending certificates added in {:.1} s",
        args.pool,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Checkpoints the WAL into the file and flushes the file to the disk.
/// Without the flush, the seed's unsynced writes stay dirty in the page
/// cache, and the server's first checkpoint fsync has to write them all:
/// a stall of a tenth of a second or more inside the measured runs.
fn finish(conn: Connection, db: &Path) -> Res<()> {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(err)?;
    drop(conn);
    File::open(db)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot flush {}: {e}", db.display()))
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Issues `n` certificates of `option_id` in transactions of `batch`,
/// handing each one's (id, canonical claim code) to `each`.
fn issue(
    conn: &mut Connection,
    merchant_id: &str,
    option_id: &str,
    recipient: Option<&str>,
    n: usize,
    batch: usize,
    mut each: impl FnMut(&str, &str) -> Res<()>,
) -> Res<()> {
    let mut left = n;
    while left > 0 {
        let now = left.min(batch);
        let tx = conn.transaction().map_err(err)?;
        let issued = certificates::issue(
            &tx,
            merchant_id,
            &IssueRequest {
                product_option_id: option_id.to_string(),
                quantity: now as i64,
                recipient_email: recipient.map(str::to_string),
                price_cents: None,
                expires_at: None,
            },
            "http://127.0.0.1",
        )
        .map_err(|e| format!("issue: {e:?}"))?;
        tx.commit().map_err(err)?;
        for c in &issued {
            each(&c.id, &c.claim_code)?;
        }
        left -= now;
    }
    Ok(())
}

fn seed(args: &Args) -> Res<()> {
    if args.db.exists() {
        return Err(format!(
            "{} exists; the seed wants a fresh file",
            args.db.display()
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(err)?;
    let started = Instant::now();
    let mut conn = open(&args.db)?;
    instagift::admin::ensure_operator(&conn)?;

    let tx = conn.transaction().map_err(err)?;
    let merchant_id =
        catalog::create_merchant(&tx, "Bench Bistro", None, "UTC", None).map_err(err)?;
    let (key, secret) = catalog::create_key(&tx, &merchant_id).map_err(|e| format!("{e:?}"))?;
    let location = catalog::save_location(
        &tx,
        &Location {
            merchant_id: merchant_id.clone(),
            name: "Bench Bistro".into(),
            address1: "1 Main St".into(),
            city: "Boston".into(),
            state: Some("MA".into()),
            zip: Some("02110".into()),
            ..Location::default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    let product = catalog::save_product(
        &tx,
        &Product {
            merchant_id: merchant_id.clone(),
            kind: "GiftCertificate".into(),
            can_split_value: true,
            tagline: "Dinner for two".into(),
            ..Product::default()
        },
        Some(std::slice::from_ref(&location.id)),
    )
    .map_err(|e| format!("{e:?}"))?;
    let option = catalog::save_product_option(
        &tx,
        &ProductOption {
            product_id: product.id.clone(),
            currency: "USD".into(),
            face_value_cents: 10_000,
            price_cents: 5_000,
            ..ProductOption::default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    let email = "bench.user@example.com";
    users::create(
        &tx,
        &users::NewUser {
            email: email.into(),
            password_hash: password::hash("bench user password"),
            first_name: "Bench".into(),
            last_name: "User".into(),
        },
        &ids::digest(ids::new_secret().as_bytes()),
    )
    .map_err(|e| format!("{e:?}"))?;
    tx.commit().map_err(err)?;

    let file = |name: &str| -> Res<BufWriter<File>> {
        File::create(args.out.join(name))
            .map(BufWriter::new)
            .map_err(|e| format!("{name}: {e}"))
    };
    let (mut ids_out, mut codes_out) = (file("ids.txt")?, file("codes.txt")?);
    let every = args.certificates.div_ceil(args.sample.max(1)).max(1);
    let mut seen = 0usize;
    let mut sampled = 0usize;
    let mut take = |id: &str, code: &str| -> Res<()> {
        if seen.is_multiple_of(every) {
            writeln!(ids_out, "{id}").map_err(err)?;
            writeln!(codes_out, "{}", claim_code::display(code)).map_err(err)?;
            sampled += 1;
        }
        seen += 1;
        Ok(())
    };
    // Nine pending to one assigned, interleaved so both kinds spread over
    // the whole table.
    let assigned_every = 10;
    let mut left = args.certificates;
    while left > 0 {
        let chunk = left.min(args.batch);
        let assigned = chunk / assigned_every;
        issue(
            &mut conn,
            &merchant_id,
            &option.id,
            None,
            chunk - assigned,
            args.batch,
            &mut take,
        )?;
        issue(
            &mut conn,
            &merchant_id,
            &option.id,
            Some(email),
            assigned,
            args.batch,
            &mut take,
        )?;
        left -= chunk;
    }
    ids_out.flush().map_err(err)?;
    codes_out.flush().map_err(err)?;
    pool(&mut conn, args, &merchant_id, &option.id)?;
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
        .map_err(err)?;
    finish(conn, &args.db)?;

    let env = format!(
        "MERCHANT_ID={merchant_id}\nMERCHANT_KEY={key}\nMERCHANT_SECRET={secret}\n\
         CERTIFICATES={}\nPOOL={}\nSAMPLED={sampled}\n",
        args.certificates, args.pool
    );
    std::fs::write(args.out.join("seed.env"), &env).map_err(err)?;
    print!("{env}");
    eprintln!(
        "seed: {total} certificates ({} + pool {}) in {:.1} s; {sampled} ids/codes sampled",
        args.certificates,
        args.pool,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
