-- The twin of PostgreSQL's 0018: the B2B fulfilment chain and joint account plans (issue 19
-- §5, §4). See the PostgreSQL file for the meaning of each column.
CREATE TABLE fulfilment_steps (
    customer_id INTEGER NOT NULL,
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    step        TEXT NOT NULL CHECK (step IN ('accepted', 'dispatched', 'produced', 'tested', 'packed', 'shipped',
                                              'delivered', 'installed', 'invoiced', 'serviced')),
    seq         INTEGER NOT NULL,
    promised_at TEXT,
    done_at     TEXT,
    note        TEXT,
    late_at     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (customer_id, order_id, step)
) WITHOUT ROWID;
CREATE INDEX fulfilment_steps_done ON fulfilment_steps (step, done_at);
CREATE INDEX fulfilment_steps_open ON fulfilment_steps (promised_at) WHERE done_at IS NULL AND late_at IS NULL;

ALTER TABLE tickets ADD COLUMN order_id INTEGER;

CREATE TABLE account_plans (
    id                  INTEGER PRIMARY KEY,
    customer_id         INTEGER NOT NULL REFERENCES customers (id),
    goals               TEXT NOT NULL,
    expectations_ours   TEXT NOT NULL,
    expectations_theirs TEXT NOT NULL,
    kpis                TEXT NOT NULL,
    owner_ids           TEXT NOT NULL,
    review_on           TEXT,
    window_days         INTEGER NOT NULL CHECK (window_days BETWEEN 7 AND 730),
    scorecard_expires_at TEXT NOT NULL,
    superseded_at       TEXT,
    created_by          TEXT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE INDEX account_plans_customer ON account_plans (customer_id, id);

CREATE TABLE plan_tokens (
    token_hash  TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    plan_id     INTEGER NOT NULL,
    expires_at  TEXT NOT NULL
);
