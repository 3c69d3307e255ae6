-- The twin of PostgreSQL's 0013. Webhooks (issue 14 §3): subscriptions to domain events, and one
-- delivery per subscription and event.

CREATE TABLE webhooks (
    id                   INTEGER PRIMARY KEY,
    url                  TEXT NOT NULL,
    -- Event types (`ticket.opened`), prefixes (`ticket.*`) or `*`: a JSON array.
    events               TEXT NOT NULL,
    -- The HMAC-SHA256 key of X-Patron-Signature (kept: signing needs it, a hash would not do).
    secret               TEXT NOT NULL,
    active               INTEGER NOT NULL DEFAULT 1,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disabled_reason      TEXT,
    event_cursor         INTEGER NOT NULL DEFAULT 0,
    created_by           TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    customer_id     INTEGER NOT NULL,
    webhook_id      INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    UNIQUE (customer_id, webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
