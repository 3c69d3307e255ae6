-- The twin of PostgreSQL's 0028: web analytics (issue 19 §8). See the PostgreSQL file for the
-- meaning of each table and column. Raw events are a rowid table here (cheaper appends); the
-- event key is still unique.
CREATE TABLE web_sites (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    cookie_mode INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE web_events (
    id            INTEGER PRIMARY KEY,
    event_key     TEXT NOT NULL,
    customer_id   INTEGER,
    site_id       INTEGER NOT NULL,
    visitor       TEXT NOT NULL,
    at            TEXT NOT NULL,
    day           TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('pageview', 'click')),
    path          TEXT NOT NULL,
    url           TEXT NOT NULL,
    title         TEXT,
    referrer_host TEXT,
    event_name    TEXT,
    utm_source    TEXT,
    utm_medium    TEXT,
    utm_campaign  TEXT,
    utm_term      TEXT,
    utm_content   TEXT,
    category      TEXT
);
CREATE INDEX web_events_day ON web_events (day, site_id);
CREATE INDEX web_events_visitor ON web_events (visitor, at);
CREATE INDEX web_events_customer ON web_events (customer_id) WHERE customer_id IS NOT NULL;

CREATE TABLE web_visitor_links (
    visitor     TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    site_id     INTEGER NOT NULL,
    linked_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_visitor_links_customer ON web_visitor_links (customer_id);

CREATE TABLE web_customer_views (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    event_key   TEXT NOT NULL,
    site_id     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    title       TEXT,
    event_name  TEXT,
    category    TEXT,
    UNIQUE (customer_id, event_key)
);
CREATE INDEX web_customer_views_at ON web_customer_views (customer_id, at);

CREATE TABLE web_daily_stats (
    site_id   INTEGER NOT NULL,
    day       TEXT NOT NULL,
    dimension TEXT NOT NULL,
    value     TEXT NOT NULL,
    views     INTEGER NOT NULL,
    visitors  INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, dimension, value)
) WITHOUT ROWID;

CREATE TABLE web_rollups (
    day       TEXT PRIMARY KEY,
    rolled_at TEXT NOT NULL
) WITHOUT ROWID;
