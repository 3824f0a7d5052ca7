//! The shop's catalog: merchants and their API keys, locations, products
//! (with their redemption locations) and product options.

use crate::domain::refusal::Refusal;
use crate::domain::{ids, time};
use rusqlite::{Connection, OptionalExtension, Row};

/// A merchant (shop).
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
    pub time_zone: String,
    pub logo: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The merchant with that id.
pub fn merchant(db: &Connection, id: &str) -> rusqlite::Result<Option<Merchant>> {
    db.prepare_cached("SELECT id, name, url, time_zone, logo, created_at, updated_at FROM merchants WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Merchant {
                id: r.get(0)?,
                name: r.get(1)?,
                url: r.get(2)?,
                time_zone: r.get(3)?,
                logo: r.get(4)?,
                created_at: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })
        .optional()
}

/// Creates a merchant; returns its id.
pub fn create_merchant(
    db: &Connection,
    name: &str,
    url: Option<&str>,
    time_zone: &str,
    logo: Option<&str>,
) -> rusqlite::Result<String> {
    let id = ids::new_id();
    db.execute(
        "INSERT INTO merchants (id, name, url, time_zone, logo, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        (&id, name, url, time_zone, logo, time::now()),
    )?;
    Ok(id)
}

/// Creates an API key for the merchant; returns (key, secret). The secret
/// is stored only as a digest and cannot be shown again.
pub fn create_key(db: &Connection, merchant_id: &str) -> Result<(String, String), Refusal> {
    if merchant(db, merchant_id)?.is_none() {
        return Err(Refusal::NotFound);
    }
    let key = format!("mk_{}", ids::new_id());
    let secret = ids::new_secret();
    db.execute(
        "INSERT INTO merchant_keys (key, merchant_id, secret_digest, created_at) VALUES (?1, ?2, ?3, ?4)",
        (&key, merchant_id, ids::digest(secret.as_bytes()), time::now()),
    )?;
    Ok((key, secret))
}

/// Revokes a key; false when there was no such active key.
pub fn revoke_key(db: &Connection, key: &str) -> rusqlite::Result<bool> {
    let n = db.execute(
        "UPDATE merchant_keys SET revoked_at = ?2 WHERE key = ?1 AND revoked_at IS NULL",
        (key, time::now()),
    )?;
    Ok(n == 1)
}

/// A redemption location.
#[derive(Debug, Clone, Default)]
pub struct Location {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub address1: String,
    pub address2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub phone: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Location {
    /// Name and address composed into one line.
    pub fn display(&self) -> String {
        let state_zip = [self.state.as_deref(), self.zip.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        [
            Some(self.name.as_str()),
            Some(self.address1.as_str()),
            self.address2.as_deref(),
            Some(self.city.as_str()),
            Some(state_zip.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
    }
}

const LOCATION_COLUMNS: &str =
    "id, merchant_id, name, address1, address2, city, state, zip, phone, lat, lng, created_at, updated_at";

fn location_row(r: &Row) -> rusqlite::Result<Location> {
    Ok(Location {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        name: r.get(2)?,
        address1: r.get(3)?,
        address2: r.get(4)?,
        city: r.get(5)?,
        state: r.get(6)?,
        zip: r.get(7)?,
        phone: r.get(8)?,
        lat: r.get(9)?,
        lng: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// The location with that id.
pub fn location(db: &Connection, id: &str) -> rusqlite::Result<Option<Location>> {
    db.prepare_cached(&format!(
        "SELECT {LOCATION_COLUMNS} FROM locations WHERE id = ?1"
    ))?
    .query_row([id], location_row)
    .optional()
}

/// A page of the merchant's locations (newest first) and their total count.
pub fn merchant_locations(
    db: &Connection,
    merchant_id: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<Location>, i64)> {
    let rows = db
        .prepare_cached(&format!(
            "SELECT {LOCATION_COLUMNS} FROM locations WHERE merchant_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((merchant_id, limit, offset), location_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db.query_row(
        "SELECT COUNT(*) FROM locations WHERE merchant_id = ?1",
        [merchant_id],
        |r| r.get(0),
    )?;
    Ok((rows, total))
}

/// Every location id of the merchant, oldest first.
pub fn merchant_location_ids(db: &Connection, merchant_id: &str) -> rusqlite::Result<Vec<String>> {
    db.prepare_cached("SELECT id FROM locations WHERE merchant_id = ?1 ORDER BY created_at, rowid")?
        .query_map([merchant_id], |r| r.get(0))?
        .collect()
}

/// Inserts `loc` (its id and times are set here) or, when `loc.id` is
/// non-empty, updates that row. Returns the stored location.
pub fn save_location(db: &Connection, loc: &Location) -> Result<Location, Refusal> {
    let now = time::now();
    let id = if loc.id.is_empty() {
        ids::new_id()
    } else {
        loc.id.clone()
    };
    db.execute(
        "INSERT INTO locations (id, merchant_id, name, address1, address2, city, state, zip, phone, lat, lng, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
         ON CONFLICT(id) DO UPDATE SET name = ?3, address1 = ?4, address2 = ?5, city = ?6, state = ?7,
           zip = ?8, phone = ?9, lat = ?10, lng = ?11, updated_at = ?12
         WHERE merchant_id = ?2",
        rusqlite::params![
            id, loc.merchant_id, loc.name, loc.address1, loc.address2, loc.city, loc.state, loc.zip,
            loc.phone, loc.lat, loc.lng, now
        ],
    )?;
    location(db, &id)?
        .filter(|l| l.merchant_id == loc.merchant_id)
        .ok_or(Refusal::NotFound)
}

/// A product: what a certificate is for.
#[derive(Debug, Clone, Default)]
pub struct Product {
    pub id: String,
    pub merchant_id: String,
    pub kind: String,
    pub discount_sale_name: Option<String>,
    pub is_giveaway: bool,
    pub is_print_only: bool,
    pub can_split_value: bool,
    pub gift_card_image: Option<String>,
    pub photos: Vec<String>,
    pub headline: Option<String>,
    pub tagline: String,
    pub terms: Vec<String>,
    pub expiration_instructions: Option<String>,
    pub redemption_instructions: Option<String>,
    pub merchant_instructions: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The product types the contract knows.
pub const PRODUCT_TYPES: [&str; 3] = ["GiftCertificate", "Deal", "Event"];

const PRODUCT_COLUMNS: &str = "id, merchant_id, type, discount_sale_name, is_giveaway, is_print_only, can_split_value,
    gift_card_image, photos, headline, tagline, terms, expiration_instructions, redemption_instructions,
    merchant_instructions, created_at, updated_at";

fn json_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn product_row(r: &Row) -> rusqlite::Result<Product> {
    Ok(Product {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        kind: r.get(2)?,
        discount_sale_name: r.get(3)?,
        is_giveaway: r.get(4)?,
        is_print_only: r.get(5)?,
        can_split_value: r.get(6)?,
        gift_card_image: r.get(7)?,
        photos: json_list(r.get(8)?),
        headline: r.get(9)?,
        tagline: r.get(10)?,
        terms: json_list(r.get(11)?),
        expiration_instructions: r.get(12)?,
        redemption_instructions: r.get(13)?,
        merchant_instructions: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

/// The product with that id.
pub fn product(db: &Connection, id: &str) -> rusqlite::Result<Option<Product>> {
    db.prepare_cached(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?1"
    ))?
    .query_row([id], product_row)
    .optional()
}

/// A page of the merchant's products and their total count.
pub fn merchant_products(
    db: &Connection,
    merchant_id: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<Product>, i64)> {
    let rows = db
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE merchant_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((merchant_id, limit, offset), product_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db.query_row(
        "SELECT COUNT(*) FROM products WHERE merchant_id = ?1",
        [merchant_id],
        |r| r.get(0),
    )?;
    Ok((rows, total))
}

/// The product's redemption location ids, oldest first.
pub fn product_location_ids(db: &Connection, product_id: &str) -> rusqlite::Result<Vec<String>> {
    db.prepare_cached(
        "SELECT l.id FROM product_locations pl JOIN locations l ON l.id = pl.location_id
         WHERE pl.product_id = ?1 ORDER BY l.created_at, l.rowid",
    )?
    .query_map([product_id], |r| r.get(0))?
    .collect()
}

/// A page of the product's redemption locations and their total count.
pub fn product_locations(
    db: &Connection,
    product_id: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<Location>, i64)> {
    let cols = LOCATION_COLUMNS
        .split(", ")
        .map(|c| format!("l.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = db
        .prepare_cached(&format!(
            "SELECT {cols} FROM product_locations pl JOIN locations l ON l.id = pl.location_id
             WHERE pl.product_id = ?1 ORDER BY l.created_at DESC, l.rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((product_id, limit, offset), location_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db.query_row(
        "SELECT COUNT(*) FROM product_locations WHERE product_id = ?1",
        [product_id],
        |r| r.get(0),
    )?;
    Ok((rows, total))
}

/// Inserts or updates (when `p.id` is set) a product and replaces its
/// redemption locations, which must all belong to the merchant.
pub fn save_product(
    db: &Connection,
    p: &Product,
    location_ids: Option<&[String]>,
) -> Result<Product, Refusal> {
    if let Some(ids) = location_ids {
        for (i, lid) in ids.iter().enumerate() {
            let ok = location(db, lid)?.is_some_and(|l| l.merchant_id == p.merchant_id);
            if !ok {
                return Err(Refusal::field(
                    "Unable to save product",
                    format!("redemption_location_ids/{i}"),
                    "redemption location not found for this merchant",
                ));
            }
        }
    }
    let now = time::now();
    let id = if p.id.is_empty() {
        ids::new_id()
    } else {
        p.id.clone()
    };
    let photos = serde_json::to_string(&p.photos).unwrap_or_else(|_| "[]".into());
    let terms = serde_json::to_string(&p.terms).unwrap_or_else(|_| "[]".into());
    db.execute(
        "INSERT INTO products (id, merchant_id, type, discount_sale_name, is_giveaway, is_print_only, can_split_value,
            gift_card_image, photos, headline, tagline, terms, expiration_instructions, redemption_instructions,
            merchant_instructions, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)
         ON CONFLICT(id) DO UPDATE SET type = ?3, discount_sale_name = ?4, is_giveaway = ?5, is_print_only = ?6,
            can_split_value = ?7, gift_card_image = ?8, photos = ?9, headline = ?10, tagline = ?11, terms = ?12,
            expiration_instructions = ?13, redemption_instructions = ?14, merchant_instructions = ?15, updated_at = ?16
         WHERE merchant_id = ?2",
        rusqlite::params![
            id, p.merchant_id, p.kind, p.discount_sale_name, p.is_giveaway, p.is_print_only, p.can_split_value,
            p.gift_card_image, photos, p.headline, p.tagline, terms, p.expiration_instructions,
            p.redemption_instructions, p.merchant_instructions, now
        ],
    )?;
    let stored = product(db, &id)?
        .filter(|s| s.merchant_id == p.merchant_id)
        .ok_or(Refusal::NotFound)?;
    if let Some(ids) = location_ids {
        db.execute("DELETE FROM product_locations WHERE product_id = ?1", [&id])?;
        for lid in ids {
            db.execute(
                "INSERT OR IGNORE INTO product_locations (product_id, location_id) VALUES (?1, ?2)",
                (&id, lid),
            )?;
        }
    }
    Ok(stored)
}

/// A purchasable option of a product: face value and price.
#[derive(Debug, Clone, Default)]
pub struct ProductOption {
    pub id: String,
    pub product_id: String,
    pub currency: String,
    pub face_value_cents: i64,
    pub price_cents: i64,
    pub tagline: Option<String>,
    pub count: Option<i64>,
    pub limit_per_order: Option<i64>,
    pub is_recommended: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const OPTION_COLUMNS: &str =
    "id, product_id, currency, face_value_cents, price_cents, tagline, count,
    limit_per_order, is_recommended, created_at, updated_at";

fn option_row(r: &Row) -> rusqlite::Result<ProductOption> {
    Ok(ProductOption {
        id: r.get(0)?,
        product_id: r.get(1)?,
        currency: r.get(2)?,
        face_value_cents: r.get(3)?,
        price_cents: r.get(4)?,
        tagline: r.get(5)?,
        count: r.get(6)?,
        limit_per_order: r.get(7)?,
        is_recommended: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// The product option with that id.
pub fn product_option(db: &Connection, id: &str) -> rusqlite::Result<Option<ProductOption>> {
    db.prepare_cached(&format!(
        "SELECT {OPTION_COLUMNS} FROM product_options WHERE id = ?1"
    ))?
    .query_row([id], option_row)
    .optional()
}

/// A page of the product's options (newest first) and their total count.
pub fn product_options(
    db: &Connection,
    product_id: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(Vec<ProductOption>, i64)> {
    let rows = db
        .prepare_cached(&format!(
            "SELECT {OPTION_COLUMNS} FROM product_options WHERE product_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map((product_id, limit, offset), option_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = db.query_row(
        "SELECT COUNT(*) FROM product_options WHERE product_id = ?1",
        [product_id],
        |r| r.get(0),
    )?;
    Ok((rows, total))
}

/// Inserts or updates (when `o.id` is set) a product option.
pub fn save_product_option(db: &Connection, o: &ProductOption) -> Result<ProductOption, Refusal> {
    let now = time::now();
    let id = if o.id.is_empty() {
        ids::new_id()
    } else {
        o.id.clone()
    };
    db.execute(
        "INSERT INTO product_options (id, product_id, currency, face_value_cents, price_cents, tagline, count,
            limit_per_order, is_recommended, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT(id) DO UPDATE SET currency = ?3, face_value_cents = ?4, price_cents = ?5, tagline = ?6,
            count = ?7, limit_per_order = ?8, is_recommended = ?9, updated_at = ?10
         WHERE product_id = ?2",
        rusqlite::params![
            id, o.product_id, o.currency, o.face_value_cents, o.price_cents, o.tagline, o.count,
            o.limit_per_order, o.is_recommended, now
        ],
    )?;
    product_option(db, &id)?
        .filter(|s| s.product_id == o.product_id)
        .ok_or(Refusal::NotFound)
}
