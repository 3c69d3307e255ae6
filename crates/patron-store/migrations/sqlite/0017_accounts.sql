-- Account management (issue 19 §1–§3): account teams, portfolio reassignments, contact cadence,
-- relationship stages, the people map and relationship reviews.

-- A customer's own cadence (days between meaningful contacts); NULL: the tier's policy.
ALTER TABLE customers ADD COLUMN contact_cadence_days INTEGER;
-- The relationship stage (acquaintance, breakthrough, consolidation, partnership); NULL: none yet.
ALTER TABLE customers ADD COLUMN relationship_stage TEXT;
-- The user who recorded an interaction (NULL: imported or from a system).
ALTER TABLE interactions ADD COLUMN user_id INTEGER;
-- Tasks: repeat every N days once done, snoozed to a day, and the outcome they were done with.
ALTER TABLE tasks ADD COLUMN recurrence_days INTEGER;
ALTER TABLE tasks ADD COLUMN snoozed_until TEXT;
ALTER TABLE tasks ADD COLUMN outcome TEXT;

-- The account team: users with a role on the account.
CREATE TABLE account_team (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    role        TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (customer_id, user_id)
);
CREATE INDEX account_team_user ON account_team (user_id);

-- Every change of owner made by a reassignment, with its handover note.
CREATE TABLE portfolio_reassignments (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    from_user_id INTEGER,
    to_user_id   INTEGER NOT NULL,
    note         TEXT,
    by_actor     TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX portfolio_reassignments_to ON portfolio_reassignments (to_user_id, at);

-- The history of relationship stages.
CREATE TABLE relationship_stages (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    stage       TEXT NOT NULL,
    reason      TEXT,
    by_actor    TEXT NOT NULL,
    at          TEXT NOT NULL
);

-- The people map: which of our users relates to which of the client's people, how strongly.
CREATE TABLE contact_ties (
    customer_id      INTEGER NOT NULL REFERENCES customers (id),
    contact_id       INTEGER NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    strength         INTEGER NOT NULL CHECK (strength BETWEEN 1 AND 5),
    shared_interests TEXT,
    last_contact_at  TEXT,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (customer_id, contact_id, user_id)
);

-- Relationship reviews and the health score each produced (with its parts, JSON).
CREATE TABLE relationship_reviews (
    id             INTEGER PRIMARY KEY,
    customer_id    INTEGER NOT NULL REFERENCES customers (id),
    user_id        INTEGER,
    by_actor       TEXT NOT NULL,
    responsiveness INTEGER NOT NULL CHECK (responsiveness BETWEEN 1 AND 5),
    price          INTEGER NOT NULL CHECK (price BETWEEN 1 AND 5),
    delivery       INTEGER NOT NULL CHECK (delivery BETWEEN 1 AND 5),
    obligations    INTEGER NOT NULL CHECK (obligations BETWEEN 1 AND 5),
    complaints     INTEGER NOT NULL CHECK (complaints BETWEEN 1 AND 5),
    contract       INTEGER NOT NULL CHECK (contract BETWEEN 1 AND 5),
    sentiment      INTEGER NOT NULL CHECK (sentiment BETWEEN 1 AND 5),
    notes          TEXT NOT NULL DEFAULT '{}',
    note           TEXT,
    health_score   REAL NOT NULL,
    parts          TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL
);

-- What the scheduler notified once (an overdue review per cycle): a unique key per occasion.
CREATE TABLE account_alerts (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    alert_key   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (customer_id, alert_key)
);
