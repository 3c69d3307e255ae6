-- patron core schema (SQLite). Times are RFC 3339 text in UTC, money integer minor units.
-- Every customer-scoped table carries customer_id so it can be distributed by customer later.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'agent')),
    password_hash TEXT,
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'agent')),
    user_id      INTEGER REFERENCES users (id),
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    external_id TEXT UNIQUE,
    kind        TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'organisation')),
    name        TEXT NOT NULL,
    mobile      TEXT,
    email       TEXT,
    wechat_id   TEXT,
    gender      TEXT CHECK (gender IN ('male', 'female', 'unknown')),
    birthday    TEXT,
    city        TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}',
    owner_id    INTEGER REFERENCES users (id),
    referrer_id INTEGER REFERENCES customers (id),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT
);
CREATE INDEX customers_mobile ON customers (mobile);
CREATE INDEX customers_email ON customers (email);
CREATE INDEX customers_wechat ON customers (wechat_id);
CREATE INDEX customers_owner ON customers (owner_id);
CREATE INDEX customers_city ON customers (city);
CREATE INDEX customers_referrer ON customers (referrer_id);

CREATE TABLE customer_tags (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    tag         TEXT NOT NULL,
    PRIMARY KEY (customer_id, tag)
);
CREATE INDEX customer_tags_tag ON customer_tags (tag);

CREATE TABLE customer_consents (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    channel     TEXT NOT NULL CHECK (channel IN ('sms', 'email', 'wechat', 'phone', 'mail')),
    granted     INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (customer_id, channel)
);

CREATE TABLE customer_changes (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    changed_at  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT
);
CREATE INDEX customer_changes_customer ON customer_changes (customer_id, id);

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    external_id TEXT UNIQUE,
    name        TEXT NOT NULL,
    role        TEXT,
    mobile      TEXT,
    email       TEXT,
    interests   TEXT,
    notes       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX contacts_customer ON contacts (customer_id);

CREATE TABLE categories (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    category_id INTEGER REFERENCES categories (id)
);

CREATE TABLE orders (
    id             INTEGER PRIMARY KEY,
    customer_id    INTEGER NOT NULL REFERENCES customers (id),
    external_id    TEXT UNIQUE,
    ordered_at     TEXT NOT NULL,
    channel        TEXT,
    store          TEXT,
    currency       TEXT NOT NULL DEFAULT 'CNY',
    total_cents    INTEGER NOT NULL,
    discount_cents INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL DEFAULT 'completed'
        CHECK (status IN ('completed', 'cancelled', 'refunded', 'pending'))
);
CREATE INDEX orders_customer_time ON orders (customer_id, ordered_at);

CREATE TABLE order_lines (
    customer_id      INTEGER NOT NULL,
    order_id         INTEGER NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    product_id       INTEGER REFERENCES products (id),
    category_id      INTEGER REFERENCES categories (id),
    quantity         INTEGER NOT NULL DEFAULT 1,
    unit_price_cents INTEGER NOT NULL,
    promo            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, order_id, line_no)
) WITHOUT ROWID;

-- B2B fulfilment timeline: received → produced → tested → packed → shipped → installed → invoiced → serviced.
CREATE TABLE order_events (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    status      TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX order_events_order ON order_events (order_id, occurred_at);

CREATE TABLE interactions (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    external_id TEXT UNIQUE,
    kind        TEXT NOT NULL
        CHECK (kind IN ('page_view', 'click', 'call', 'visit', 'sms_open', 'email_open', 'reply', 'event')),
    channel     TEXT,
    occurred_at TEXT NOT NULL,
    payload     TEXT
);
CREATE INDEX interactions_customer_time ON interactions (customer_id, occurred_at);

CREATE TABLE notes (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX notes_customer ON notes (customer_id, created_at);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id TEXT,
    detail    TEXT
);

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    actor         TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    rows_read     INTEGER NOT NULL,
    rows_loaded   INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL
);
