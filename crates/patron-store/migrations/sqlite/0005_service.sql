-- The service loop (DESIGN.md C8–C10): settings, domain events, service policies by tier,
-- tickets with their SLA clocks, comments, compensations, staff notifications and the public
-- links customers open (ticket confirmations, survey invitations).
-- Customer data carries customer_id and is queried by it, as on PostgreSQL (where it is keyed
-- (customer_id, id) to distribute with the customers). Times are RFC 3339 text in UTC, money integer minor units.

-- Settings that are one JSON value per key (the business calendar, the service settings).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- A user's manager: SLA breaches of the user's tickets escalate to them.
ALTER TABLE users ADD COLUMN manager_id INTEGER REFERENCES users (id);

-- Domain events, appended in the same transaction as the change they record (a transactional
-- outbox): `ticket.opened`, `ticket.breached`, `survey.answered` … Consumers read them by id.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    type        TEXT NOT NULL,
    subject_id  INTEGER,
    payload     TEXT NOT NULL DEFAULT '{}',
    occurred_at TEXT NOT NULL
);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_subject ON events (customer_id, subject_id, id);

-- One service policy per value tier (A–D, and `default` for customers without scores).
CREATE TABLE service_policies (
    tier                         TEXT PRIMARY KEY CHECK (tier IN ('A', 'B', 'C', 'D', 'default')),
    first_response_minutes       INTEGER NOT NULL CHECK (first_response_minutes > 0),
    resolution_minutes           INTEGER NOT NULL CHECK (resolution_minutes > 0),
    business_hours               INTEGER NOT NULL,
    contact_cadence_days         INTEGER NOT NULL CHECK (contact_cadence_days > 0),
    compensation_authority_cents INTEGER NOT NULL CHECK (compensation_authority_cents >= 0),
    premium                      TEXT NOT NULL DEFAULT '[]',
    updated_at                   TEXT NOT NULL
);

CREATE TABLE tickets (
    id                         INTEGER PRIMARY KEY,
    customer_id                INTEGER NOT NULL REFERENCES customers (id),
    kind                       TEXT NOT NULL CHECK (kind IN ('complaint', 'inquiry', 'suggestion', 'praise')),
    channel                    TEXT NOT NULL CHECK (channel IN ('phone', 'store', 'wechat', 'email', 'web', 'survey', 'api')),
    subject                    TEXT NOT NULL,
    body                       TEXT NOT NULL,
    category                   TEXT,
    root_cause                 TEXT,
    status                     TEXT NOT NULL CHECK (status IN
        ('new', 'acknowledged', 'in_progress', 'waiting_on_customer', 'resolved', 'confirmed', 'reopened')),
    store                      TEXT,
    assignee_id                INTEGER REFERENCES users (id),
    department                 TEXT,
    -- The tier and its policy's clocks when the ticket opened.
    tier                       TEXT NOT NULL,
    business_hours             INTEGER NOT NULL,
    first_response_minutes     INTEGER NOT NULL,
    resolution_minutes         INTEGER NOT NULL,
    opened_at                  TEXT NOT NULL,
    first_response_due_at      TEXT NOT NULL,
    first_responded_at         TEXT,
    resolution_due_at          TEXT NOT NULL,
    -- While waiting on the customer the resolution clock stands; on leaving, the due time moves
    -- on by the (working) time waited.
    paused_at                  TEXT,
    resolved_at                TEXT,
    confirmed_at               TEXT,
    confirmed_by               TEXT,
    reopened_count             INTEGER NOT NULL DEFAULT 0,
    first_response_warned_at   TEXT,
    first_response_breached_at TEXT,
    resolution_warned_at       TEXT,
    resolution_breached_at     TEXT,
    created_by                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
);
CREATE INDEX tickets_customer ON tickets (customer_id, opened_at);
CREATE INDEX tickets_open ON tickets (status, resolution_due_at);
CREATE INDEX tickets_assignee ON tickets (assignee_id, status);
CREATE INDEX tickets_opened ON tickets (opened_at);

-- Internal comments and public replies, with their attachments' metadata.
CREATE TABLE ticket_comments (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    ticket_id   INTEGER NOT NULL,
    author      TEXT NOT NULL,
    public      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    FOREIGN KEY (ticket_id) REFERENCES tickets (id)
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (customer_id, ticket_id, id);

-- Compensation granted on a ticket, or waiting for a manager when above the tier's authority.
CREATE TABLE compensations (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL,
    ticket_id    INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    kind         TEXT NOT NULL CHECK (kind IN ('refund', 'voucher', 'gift', 'points')),
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('granted', 'pending', 'refused')),
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT,
    FOREIGN KEY (ticket_id) REFERENCES tickets (id)
);
CREATE INDEX compensations_ticket ON compensations (customer_id, ticket_id);

-- In-app notifications for staff (SLA warnings and breaches, approvals waiting), about a
-- customer's ticket: keyed by the customer, like the ticket, and listed per user.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL,
    ticket_id   INTEGER,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    read_at     TEXT
);
CREATE INDEX notifications_user ON notifications (user_id, id);

-- Links that customers open without logging in. Only the token's SHA-256 digest is kept; each
-- link is used once, before it expires. Keyed by the customer it was made for (a token is
-- found by its digest's index, then read and locked with its customer).
CREATE TABLE public_links (
    customer_id INTEGER NOT NULL,
    token_hash  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('confirmation', 'survey')),
    subject_id  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    PRIMARY KEY (customer_id, token_hash)
);
CREATE INDEX public_links_token ON public_links (token_hash);
CREATE INDEX public_links_subject ON public_links (customer_id, subject_id);
