-- Analytics: the business day of each order, per-customer summaries kept current, the latest
-- scores per customer, analysis runs with their fitted parameters, and saved segments.

-- Calendar day of the order in the business time zone (days since 1970-01-01); written by
-- patron at insert time (the zone is configuration), backfilled for older rows at start-up.
ALTER TABLE orders ADD COLUMN ordered_day INTEGER;
CREATE INDEX orders_customer_day ON orders (customer_id, ordered_day);

-- All-time summaries of completed orders, refreshed for a customer whenever their orders change.
CREATE TABLE customer_summaries (
    customer_id         INTEGER PRIMARY KEY REFERENCES customers (id),
    order_count         INTEGER NOT NULL,
    spend_cents         INTEGER NOT NULL,
    purchase_days       INTEGER NOT NULL,
    first_purchase_day  INTEGER,
    last_purchase_day   INTEGER,
    repeat_spend_cents  INTEGER NOT NULL,
    last_ordered_at     TEXT,
    refreshed_at        TEXT NOT NULL
);

CREATE TABLE analytics_runs (
    id            INTEGER PRIMARY KEY,
    as_of_day     INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    customers     INTEGER NOT NULL,
    orders_used   INTEGER NOT NULL,
    config        TEXT NOT NULL,
    report        TEXT NOT NULL
);

-- The latest scores, one row per customer (replaced by each run; the run keeps the parameters).
CREATE TABLE customer_scores (
    customer_id                 INTEGER PRIMARY KEY REFERENCES customers (id),
    run_id                      INTEGER NOT NULL REFERENCES analytics_runs (id),
    as_of_day                   INTEGER NOT NULL,
    model_version               TEXT NOT NULL,
    purchase_days               INTEGER NOT NULL,
    first_purchase_day          INTEGER,
    last_purchase_day           INTEGER,
    x                           INTEGER NOT NULL,
    t_x                         INTEGER NOT NULL,
    age_days                    INTEGER NOT NULL,
    m_cents                     REAL NOT NULL,
    order_count                 INTEGER NOT NULL,
    spend_cents                 INTEGER NOT NULL,
    trailing_spend_cents        INTEGER NOT NULL,
    median_gap_days             REAL,
    recency_days                INTEGER,
    frequency                   INTEGER NOT NULL,
    monetary_cents              INTEGER NOT NULL,
    rfm_r                       INTEGER,
    rfm_f                       INTEGER,
    rfm_m                       INTEGER,
    rfm_class                   TEXT,
    abcd_tier                   TEXT,
    lifecycle                   TEXT NOT NULL,
    churn                       TEXT NOT NULL,
    churn_threshold_days        REAL,
    p_alive                     REAL,
    expected_purchases          REAL,
    expected_order_value_cents  REAL,
    clv_cents                   REAL,
    loyalty_index               REAL,
    loyalty_situation           TEXT
);
CREATE INDEX customer_scores_rfm ON customer_scores (rfm_class);
CREATE INDEX customer_scores_tier ON customer_scores (abcd_tier);
CREATE INDEX customer_scores_lifecycle ON customer_scores (lifecycle);

CREATE TABLE segments (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    rule        TEXT NOT NULL,
    created_by  INTEGER REFERENCES users (id),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
