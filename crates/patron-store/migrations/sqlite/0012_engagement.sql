-- The twin of PostgreSQL's 0012. Engagement (issue 12; DESIGN.md C11): message templates,
-- campaigns and the one outbox of messages to customers.

CREATE TABLE message_templates (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'wechat', 'mail')),
    -- `marketing` (consent, caps, holdouts, unsubscribe) or `transactional`.
    purpose    TEXT NOT NULL CHECK (purpose IN ('marketing', 'transactional')),
    subject    TEXT,
    body_text  TEXT NOT NULL,
    body_html  TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE campaigns (
    id                     INTEGER PRIMARY KEY,
    name                   TEXT NOT NULL,
    -- The segment's rule as it was at creation, and the saved segment's key when one was named.
    segment_rule           TEXT NOT NULL,
    segment_key            TEXT,
    channel                TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'wechat', 'mail', 'preferred')),
    template_id            INTEGER NOT NULL REFERENCES message_templates (id),
    holdout_percent        REAL NOT NULL CHECK (holdout_percent >= 0 AND holdout_percent <= 90),
    conversion_window_days INTEGER NOT NULL CHECK (conversion_window_days BETWEEN 1 AND 365),
    send_at                TEXT,
    status                 TEXT NOT NULL CHECK (status IN ('draft', 'launched')),
    -- The seed of the holdout draw (stored, so the draw can be repeated and checked).
    seed                   INTEGER NOT NULL,
    -- Counts at launch: {audience, holdout, global_control, no_consent, capped}.
    launch_counts          TEXT,
    launched_at            TEXT,
    created_by             TEXT NOT NULL,
    created_at             TEXT NOT NULL
);

-- One message per occasion (`message_key`: `campaign:<id>`, `survey:<invitation id>`, later
-- `journey:<id>:<step>`), customer and channel, written before anything is sent. The message id
-- is derived from that key, so a retry or a second sender passes the provider the same one.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    message_key     TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'wechat', 'mail')),
    purpose         TEXT NOT NULL CHECK (purpose IN ('marketing', 'transactional')),
    message_id      TEXT NOT NULL,
    template_id     INTEGER,
    campaign_id     INTEGER,
    -- A message written out already (a survey invitation): {subject, text, html}.
    content         TEXT,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    -- Why it was skipped or failed (holdout, no_consent, capped, global_control, render, …).
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    -- A sender's claim: another sender takes the message over only after this time.
    lease_until     TEXT,
    -- The digest of the message's link token (unsubscribe, tracking, open pixel).
    token_hash      TEXT,
    -- The links of the rendered message, in order (tracking redirects only to these).
    links           TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    updated_at      TEXT NOT NULL,
    UNIQUE (customer_id, message_key, channel)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_campaign ON outbox (campaign_id, status);
CREATE INDEX outbox_token ON outbox (token_hash);
CREATE INDEX outbox_customer_sent ON outbox (customer_id, purpose, sent_at);
