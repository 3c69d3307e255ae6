-- The twin of PostgreSQL's 0008. Surveys (DESIGN.md C10) and churn reasons (C6). Invitations, answers and churn reasons are
-- the customer's data: keyed (customer_id, ...) so they distribute with the customers (Citus);
-- the survey definitions are a small reference table.

CREATE TABLE surveys (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('nps', 'csat', 'listen', 'custom')),
    -- The questions, in order: [{key, type, text, options, required}].
    questions      TEXT NOT NULL,
    -- What invites customers on its own: JSON null (by hand), {"on": "order_completed", "days": N},
    -- {"on": "ticket_resolved"} or {"on": "periodic", "segment": key, "every_days": N}.
    trigger        TEXT NOT NULL,
    -- Not the same customer twice within this many days.
    recontact_days INTEGER NOT NULL CHECK (recontact_days >= 0),
    expires_days   INTEGER NOT NULL CHECK (expires_days > 0),
    active         INTEGER NOT NULL DEFAULT 1,
    -- The last domain event the trigger has read (order and ticket triggers).
    event_cursor   INTEGER NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- One invitation per customer and occasion (`source`: `manual:<n>`, `order:<id>`,
-- `ticket:<id>`, `periodic:<yyyy-mm-dd>`): a second scheduler or a retry finds it made.
CREATE TABLE survey_invitations (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    survey_id   INTEGER NOT NULL REFERENCES surveys (id),
    source      TEXT NOT NULL,
    -- The resolved ticket it asks about, and who worked it (an agent's CSAT).
    ticket_id   INTEGER,
    agent_id    INTEGER,
    store       TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    -- When its link went out (by hand: at once; by a trigger: when the scheduler delivered it).
    sent_at     TEXT,
    answered_at TEXT,
    UNIQUE (customer_id, survey_id, source)
);
CREATE INDEX survey_invitations_survey ON survey_invitations (survey_id, created_at);
CREATE INDEX survey_invitations_unsent ON survey_invitations (sent_at, id);

-- An invitation's answer: the raw answers and the scores read from them.
CREATE TABLE survey_answers (
    customer_id   INTEGER NOT NULL,
    invitation_id INTEGER NOT NULL,
    survey_id     INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    answers       TEXT NOT NULL,
    nps           INTEGER CHECK (nps BETWEEN 0 AND 10),
    score         INTEGER CHECK (score BETWEEN 1 AND 5),
    would_switch  INTEGER,
    comment       TEXT,
    tier          TEXT NOT NULL,
    store         TEXT,
    agent_id      INTEGER,
    -- The complaint a detractor's answer opened.
    ticket_id     INTEGER,
    answered_at   TEXT NOT NULL,
    PRIMARY KEY (customer_id, invitation_id),
    FOREIGN KEY (invitation_id) REFERENCES survey_invitations (id)
);
CREATE INDEX survey_answers_survey ON survey_answers (survey_id, answered_at);

-- Why a churned customer left (one current reason per customer; earlier ones are events).
CREATE TABLE churn_reasons (
    customer_id INTEGER PRIMARY KEY REFERENCES customers (id),
    reason      TEXT NOT NULL,
    -- `call`, `ticket:<id>`, `survey:<invitation id>`.
    source      TEXT NOT NULL,
    note        TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
