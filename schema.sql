-- Instagift schema, version 2 (SCHEMA_VERSION). Applied whole on a fresh
-- database; files of older versions are migrated step by step, keyed on
-- PRAGMA user_version (see src/db/mod.rs).
-- Times are Unix seconds (UTC); money is integer cents.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_norm    TEXT NOT NULL UNIQUE,      -- lower-cased, for case-insensitive match
    password_hash TEXT NOT NULL,             -- Argon2id PHC string
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    last_login_at INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE user_tokens (
    digest       TEXT PRIMARY KEY,           -- SHA-256 hex of the token
    user_id      TEXT NOT NULL REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER                     -- NULL: not used since created (v2)
);
CREATE INDEX user_tokens_user ON user_tokens(user_id);

CREATE TABLE password_resets (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE merchants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    url        TEXT,
    time_zone  TEXT NOT NULL DEFAULT 'UTC',
    logo       TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE merchant_keys (
    key           TEXT PRIMARY KEY,          -- public identifier
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    secret_digest TEXT NOT NULL,             -- SHA-256 hex of the secret
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX merchant_keys_merchant ON merchant_keys(merchant_id);

CREATE TABLE locations (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    name        TEXT NOT NULL DEFAULT '',
    address1    TEXT NOT NULL,
    address2    TEXT,
    city        TEXT NOT NULL,
    state       TEXT,
    zip         TEXT,
    phone       TEXT,
    lat         REAL,
    lng         REAL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX locations_merchant ON locations(merchant_id);

CREATE TABLE products (
    id                       TEXT PRIMARY KEY,
    merchant_id              TEXT NOT NULL REFERENCES merchants(id),
    type                     TEXT NOT NULL CHECK (type IN ('GiftCertificate', 'Deal', 'Event')),
    discount_sale_name       TEXT,
    is_giveaway              INTEGER NOT NULL DEFAULT 0,
    is_print_only            INTEGER NOT NULL DEFAULT 0,
    can_split_value          INTEGER NOT NULL DEFAULT 1,
    gift_card_image          TEXT,
    photos                   TEXT NOT NULL DEFAULT '[]',   -- JSON array of URLs
    headline                 TEXT,
    tagline                  TEXT NOT NULL,
    terms                    TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    expiration_instructions  TEXT,
    redemption_instructions  TEXT,
    merchant_instructions    TEXT,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);
CREATE INDEX products_merchant ON products(merchant_id);

CREATE TABLE product_locations (
    product_id  TEXT NOT NULL REFERENCES products(id),
    location_id TEXT NOT NULL REFERENCES locations(id),
    PRIMARY KEY (product_id, location_id)
) WITHOUT ROWID;

CREATE TABLE product_options (
    id               TEXT PRIMARY KEY,
    product_id       TEXT NOT NULL REFERENCES products(id),
    currency         TEXT NOT NULL DEFAULT 'USD',
    face_value_cents INTEGER NOT NULL CHECK (face_value_cents > 0),
    price_cents      INTEGER NOT NULL CHECK (price_cents >= 0 AND price_cents <= face_value_cents),
    tagline          TEXT,
    count            INTEGER CHECK (count IS NULL OR count >= 0),   -- inventory; NULL = unlimited
    limit_per_order  INTEGER,
    is_recommended   INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX product_options_product ON product_options(product_id);

CREATE TABLE certificates (
    id                TEXT PRIMARY KEY,
    merchant_id       TEXT NOT NULL REFERENCES merchants(id),
    product_id        TEXT NOT NULL REFERENCES products(id),
    product_option_id TEXT NOT NULL REFERENCES product_options(id),
    user_id           TEXT REFERENCES users(id),
    parent_id         TEXT REFERENCES certificates(id),
    claim_code        TEXT NOT NULL UNIQUE,   -- canonical 16 characters, no dashes
    status            TEXT NOT NULL CHECK (status IN
                        ('pending', 'assigned', 'gifted', 'redeemed', 'cancelled', 'returned')),
    marked_as_printed INTEGER NOT NULL DEFAULT 0,
    currency          TEXT NOT NULL,
    face_value_cents  INTEGER NOT NULL CHECK (face_value_cents >= 0),
    price_cents       INTEGER NOT NULL CHECK (price_cents >= 0 AND price_cents <= face_value_cents),
    expires_at        INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX certificates_user ON certificates(user_id, created_at);
CREATE INDEX certificates_merchant ON certificates(merchant_id, created_at);
CREATE INDEX certificates_parent ON certificates(parent_id);

CREATE TABLE redemptions (
    id                     TEXT PRIMARY KEY,
    certificate_id         TEXT NOT NULL REFERENCES certificates(id),
    merchant_id            TEXT NOT NULL REFERENCES merchants(id),
    user_id                TEXT REFERENCES users(id),
    location_id            TEXT REFERENCES locations(id),
    balance_certificate_id TEXT REFERENCES certificates(id),
    amount_cents           INTEGER NOT NULL CHECK (amount_cents > 0),
    amount_paid_cents      INTEGER NOT NULL CHECK (amount_paid_cents >= 0),
    source                 TEXT NOT NULL,
    reversed_at            INTEGER,
    reversal_certificate_id TEXT REFERENCES certificates(id),
    created_at             INTEGER NOT NULL
);
CREATE INDEX redemptions_certificate ON redemptions(certificate_id);
CREATE INDEX redemptions_merchant ON redemptions(merchant_id, created_at);
CREATE INDEX redemptions_user ON redemptions(user_id, created_at);

-- Append-only: every change of a certificate's open value is one row here,
-- written in the same transaction as the change. `instagift check` proves
-- the certificates table against it.
CREATE TABLE ledger (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    certificate_id TEXT NOT NULL REFERENCES certificates(id),
    merchant_id    TEXT NOT NULL REFERENCES merchants(id),
    kind           TEXT NOT NULL CHECK (kind IN
                     ('issue', 'split', 'redeem', 'cancel', 'return', 'expire', 'reverse')),
    face_delta     INTEGER NOT NULL,
    paid_delta     INTEGER NOT NULL,
    redemption_id  TEXT REFERENCES redemptions(id),
    created_at     INTEGER NOT NULL
);
CREATE INDEX ledger_certificate ON ledger(certificate_id);
CREATE INDEX ledger_merchant ON ledger(merchant_id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

CREATE TABLE gifts (
    id              TEXT PRIMARY KEY,
    certificate_id  TEXT NOT NULL REFERENCES certificates(id),
    sender_id       TEXT REFERENCES users(id),     -- NULL when a merchant issued it
    recipient_id    TEXT REFERENCES users(id),
    sender_name     TEXT NOT NULL,
    sender_reply_to TEXT,
    recipient_name  TEXT,
    recipient_email TEXT NOT NULL,
    message         TEXT,
    send_date       TEXT,                          -- YYYY-MM-DD, merchant's calendar
    send_at         INTEGER NOT NULL,              -- when the email becomes due
    claimed_at      INTEGER,
    cancelled_at    INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX gifts_certificate ON gifts(certificate_id);
CREATE INDEX gifts_sender ON gifts(sender_id, created_at);
CREATE INDEX gifts_recipient ON gifts(recipient_id, created_at);

CREATE TABLE support_tickets (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL,
    message    TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Every email is written here in the same transaction as its cause; a
-- background worker delivers it (see §10 of the API).
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,                 -- gift, password_reset, support_ticket, issued
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT,
    gift_id         TEXT REFERENCES gifts(id),
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    failure_count   INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    last_sent_at    INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_gift ON outbox(gift_id);

-- Idempotency-Key records: the first response to a key, replayed to repeats.
CREATE TABLE idempotency (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,                    -- SHA-256 of method, path and body
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency(created_at);  -- v2: purging

-- The operator of the admin page: a single row. The password is set by
-- `instagift admin set-password`, or generated and printed on first start.
CREATE TABLE operator (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    password_hash TEXT NOT NULL,             -- Argon2id PHC string
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Admin page sessions: the cookie's token is stored only as its digest.
CREATE TABLE admin_sessions (
    digest     TEXT PRIMARY KEY,             -- SHA-256 hex of the session token
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX admin_sessions_expiry ON admin_sessions(expires_at);

-- Failed operator logins per client IP, for throttling password guessing.
CREATE TABLE admin_login_failures (
    ip              TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    blocked_until   INTEGER NOT NULL,        -- Unix second; 0 when not blocked
    last_failure_at INTEGER NOT NULL
) WITHOUT ROWID;
