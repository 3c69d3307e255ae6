-- The twin of PostgreSQL's 0015.
-- Journeys and tasks (issue 12 §6; DESIGN.md C13, C6). Journeys are a small reference table;
-- a customer's entries into a journey are the customer's data, keyed (customer_id, id).
-- Tasks may name no customer, so they are a reference table (no key to customers).

CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL,
    customer_id INTEGER,
    assignee_id INTEGER REFERENCES users (id),
    -- A business day, `YYYY-MM-DD`.
    due_on      TEXT,
    done        INTEGER NOT NULL DEFAULT 0,
    done_at     TEXT,
    -- `user:<id>`, `journey:<id>` …
    created_by  TEXT NOT NULL,
    -- The occasion that made it (`journey:<id>:<entry>:<step>`): one task per occasion.
    source_key  TEXT UNIQUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX tasks_assignee ON tasks (assignee_id, done, due_on);
CREATE INDEX tasks_customer ON tasks (customer_id);

CREATE TABLE journeys (
    id              INTEGER PRIMARY KEY,
    -- `nurture`, `win_back`, `complaint_check` for the built-in ones; NULL otherwise.
    builtin         TEXT UNIQUE,
    name            TEXT NOT NULL,
    -- The trigger (an event kind, see journeys::TRIGGERS) and the goal (one, or NULL).
    trigger_kind    TEXT NOT NULL,
    goal_kind       TEXT,
    -- The steps, a JSON array (journeys::Step).
    steps           TEXT NOT NULL,
    holdout_percent REAL NOT NULL CHECK (holdout_percent >= 0 AND holdout_percent <= 90),
    -- NULL: never again; N: again N days after the last entry (once the last one ended).
    reentry_days    INTEGER CHECK (reentry_days IS NULL OR reentry_days BETWEEN 1 AND 3650),
    enabled         INTEGER NOT NULL DEFAULT 0,
    -- The last event read (consumers read the events table from their cursor).
    event_cursor    INTEGER NOT NULL DEFAULT 0,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- One row per entry of a customer into a journey. `active` is 1 while the entry runs and NULL
-- after, so the unique key lets a customer be in a journey at most once at a time; the trigger
-- event's id is unique too, so a second scheduler or a rerun never enters twice for one event.
CREATE TABLE journey_entries (
    id               INTEGER PRIMARY KEY,
    customer_id      INTEGER NOT NULL REFERENCES customers (id),
    journey_id       INTEGER NOT NULL,
    trigger_event_id INTEGER NOT NULL,
    -- `treated` or `holdout` (holdout entries walk the steps but nothing is done for them).
    grp              TEXT NOT NULL CHECK (grp IN ('treated', 'holdout')),
    status           TEXT NOT NULL CHECK (status IN ('active', 'goal', 'exited', 'completed')),
    active           INTEGER CHECK (active = 1),
    -- The next step to do and when.
    step             INTEGER NOT NULL DEFAULT 0,
    next_at          TEXT NOT NULL,
    -- What the entry did, step by step (JSON array of {step, kind, at, detail}).
    log              TEXT NOT NULL,
    entered_at       TEXT NOT NULL,
    ended_at         TEXT,
    UNIQUE (customer_id, journey_id, active),
    UNIQUE (customer_id, journey_id, trigger_event_id)
);
CREATE INDEX journey_entries_due ON journey_entries (status, next_at);
CREATE INDEX journey_entries_journey ON journey_entries (journey_id, grp, status);
