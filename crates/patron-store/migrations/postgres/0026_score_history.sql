-- Score history (issue 18 §2, §3): a compact snapshot of every customer's scores for the last N
-- analysis runs, the previous run's tier, class and stage next to the latest scores, saved
-- segments' sizes at each run, and the monthly cohort aggregates each run precomputes.

-- One row per customer per kept run, keyed by customer first so that Citus distributes it with
-- the customer (co-located with `customers`). Narrow on purpose (1 M customers × 24 runs):
-- codes instead of text (tier 1–4 = A–D, rfm_class 1–8 and lifecycle 1–7 in the order of
-- docs/analytics.md, churn 0 none / 1 relative / 2 absolute; 0 = scored without a value).
-- No foreign keys: a check per row would slow the run's bulk insert, and the rows outlive
-- merged or erased customers as figures do.
CREATE TABLE score_snapshots (
    customer_id          BIGINT NOT NULL,
    run_id               BIGINT NOT NULL,
    trailing_spend_cents BIGINT NOT NULL,
    clv_cents            BIGINT,
    p_alive              REAL,
    abcd_tier            SMALLINT NOT NULL,
    rfm_class            SMALLINT NOT NULL,
    lifecycle            SMALLINT NOT NULL,
    churn                SMALLINT NOT NULL,
    PRIMARY KEY (customer_id, run_id)
);
-- A run's rows (the migration matrix, the retention's delete).
CREATE INDEX score_snapshots_run ON score_snapshots (run_id);

-- The scores of the run before, for the segment fields previous_abcd_tier, previous_rfm_class
-- and previous_lifecycle.
ALTER TABLE customer_scores ADD COLUMN previous_abcd_tier TEXT;
ALTER TABLE customer_scores ADD COLUMN previous_rfm_class TEXT;
ALTER TABLE customer_scores ADD COLUMN previous_lifecycle TEXT;

-- High-value (A and B) customers and those of them churned, per run (the trends' churn rate).
ALTER TABLE analytics_runs ADD COLUMN ab_customers BIGINT;
ALTER TABLE analytics_runs ADD COLUMN ab_churned BIGINT;
-- Rows of the run's score snapshot; NULL when it has none (older runs, or deleted by the retention).
ALTER TABLE analytics_runs ADD COLUMN snapshot_customers BIGINT;

-- Each saved segment's size at each run (rules over scores).
CREATE TABLE segment_sizes (
    segment_id BIGINT NOT NULL,
    run_id     BIGINT NOT NULL,
    customers  BIGINT NOT NULL,
    PRIMARY KEY (segment_id, run_id)
);

-- Cohorts by month of the first completed order (months counted from 1970-01 = 0), as of the
-- latest run: customers of the cohort active in each month, their orders and revenue.
CREATE TABLE cohort_months (
    cohort        BIGINT NOT NULL,
    month         BIGINT NOT NULL,
    run_id        BIGINT NOT NULL,
    customers     BIGINT NOT NULL,
    orders        BIGINT NOT NULL,
    revenue_cents BIGINT NOT NULL,
    PRIMARY KEY (cohort, month)
);

-- The whole base's migration matrix of each run against the run before it, per dimension
-- (codes as in score_snapshots; NULL: not scored in that run), stored by the run so that the
-- dashboard's default matrix is read, not counted.
CREATE TABLE run_migrations (
    to_run        BIGINT NOT NULL,
    from_run      BIGINT NOT NULL,
    dimension     TEXT NOT NULL,
    from_code     BIGINT,
    to_code       BIGINT,
    customers     BIGINT NOT NULL,
    revenue_cents BIGINT NOT NULL
);
CREATE INDEX run_migrations_runs ON run_migrations (to_run, from_run, dimension);
