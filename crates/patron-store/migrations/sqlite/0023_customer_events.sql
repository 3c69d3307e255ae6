-- The twin of PostgreSQL's 0023: customer events (issue 19 §6). See the PostgreSQL file for
-- the meaning of each table and column.
CREATE TABLE customer_events (
    id             INTEGER PRIMARY KEY,
    title          TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('seminar', 'forum', 'club', 'other')),
    description    TEXT NOT NULL,
    starts_at      TEXT NOT NULL,
    ends_at        TEXT NOT NULL,
    place          TEXT,
    link           TEXT,
    capacity       INTEGER NOT NULL CHECK (capacity BETWEEN 1 AND 100000),
    seats_taken    INTEGER NOT NULL DEFAULT 0 CHECK (seats_taken >= 0),
    status         TEXT NOT NULL CHECK (status IN ('scheduled', 'cancelled')),
    survey_id      INTEGER,
    survey_sent_at TEXT,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE customer_event_invitations (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    event_id    INTEGER NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'wechat', 'mail')),
    tier        TEXT,
    invited_at  TEXT NOT NULL,
    PRIMARY KEY (customer_id, event_id)
) WITHOUT ROWID;
CREATE INDEX customer_event_invitations_event ON customer_event_invitations (event_id);

CREATE TABLE customer_event_registrations (
    customer_id   INTEGER NOT NULL REFERENCES customers (id),
    event_id      INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('registered', 'cancelled')),
    source        TEXT NOT NULL CHECK (source IN ('link', 'staff', 'walk_in')),
    registered_at TEXT NOT NULL,
    cancelled_at  TEXT,
    attended_at   TEXT,
    checked_in_by TEXT,
    PRIMARY KEY (customer_id, event_id)
) WITHOUT ROWID;
CREATE INDEX customer_event_registrations_event ON customer_event_registrations (event_id, status);

CREATE TABLE customer_event_tokens (
    token_hash  TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    event_id    INTEGER NOT NULL
);
