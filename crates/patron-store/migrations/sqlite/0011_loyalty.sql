-- The twin of PostgreSQL's 0011. The loyalty club (DESIGN.md C16, issue 13). The programme's settings are a JSON setting
-- (`settings` key `loyalty`, a reference table); the rewards catalogue is a small reference
-- table. Members, the ledger, its lots, the draws on lots and redemptions are the customer's
-- data: keyed (customer_id, ...) so they distribute with the customers (Citus), and every
-- uniqueness includes customer_id.

CREATE TABLE loyalty_members (
    customer_id  INTEGER PRIMARY KEY REFERENCES customers (id),
    -- Derived from the customer id (unique without a key table).
    member_no    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    joined_at    TEXT NOT NULL,
    -- Points a reversal could not take back (spent already); the next earnings pay it first.
    debt         INTEGER NOT NULL DEFAULT 0 CHECK (debt >= 0),
    -- The tier held (NULL: none), since when, and since when the member is below it (grace).
    tier         TEXT,
    tier_since   TEXT,
    below_since  TEXT,
    -- When the scheduler last evaluated the tier (daily).
    tier_checked_at TEXT,
    -- The referral reward's state for this member as a referee: NULL (none due), `paid`,
    -- `refused:<reason>`.
    referral     TEXT,
    updated_at   TEXT NOT NULL
);

-- Append-only. `points` is signed (earn and positive adjustments add; redeem, expire, reverse,
-- debt and negative adjustments take). Sum over a member = lots remaining − debt.
CREATE TABLE loyalty_entries (
    id              INTEGER PRIMARY KEY,
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    kind            TEXT NOT NULL CHECK (kind IN ('earn', 'redeem', 'expire', 'adjust', 'reverse', 'debt')),
    points          INTEGER NOT NULL,
    -- `order:<id>`, `expire:<lot>`, `reverse:order:<id>`, a client's key for redemptions …
    idempotency_key TEXT NOT NULL,
    -- What the request said (a retry with the same key must say the same).
    request         TEXT NOT NULL DEFAULT '',
    -- `order:<id>`, `redemption:<id>`, `lot:<id>`, `referral:<customer>`, `manual`.
    source          TEXT NOT NULL,
    reason          TEXT,
    order_id        INTEGER,
    reward_id       INTEGER,
    -- For an earning: the debt it paid off first.
    debt_repaid     INTEGER NOT NULL DEFAULT 0,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX loyalty_entries_created ON loyalty_entries (created_at);

-- Earned points, spent nearest expiry first.
CREATE TABLE loyalty_lots (
    id             INTEGER PRIMARY KEY,
    customer_id    INTEGER NOT NULL,
    entry_id       INTEGER NOT NULL,
    points         INTEGER NOT NULL CHECK (points > 0),
    remaining      INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    earned_at      TEXT NOT NULL,
    spendable_from TEXT NOT NULL,
    expires_at     TEXT,
    FOREIGN KEY (entry_id) REFERENCES loyalty_entries (id)
);
CREATE INDEX loyalty_lots_due ON loyalty_lots (expires_at) WHERE remaining > 0;

-- Which lots a redemption, expiry or reversal took, and how much.
CREATE TABLE loyalty_draws (
    customer_id INTEGER NOT NULL,
    entry_id    INTEGER NOT NULL,
    lot_id      INTEGER NOT NULL,
    points      INTEGER NOT NULL CHECK (points > 0),
    PRIMARY KEY (customer_id, entry_id, lot_id)
);

-- The rewards catalogue.
CREATE TABLE loyalty_rewards (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    points      INTEGER NOT NULL CHECK (points > 0),
    -- NULL: unlimited.
    stock       INTEGER CHECK (stock >= 0),
    -- What one costs the business (cost to serve), minor units.
    cost_cents  INTEGER NOT NULL DEFAULT 0 CHECK (cost_cents >= 0),
    active_from TEXT,
    active_to   TEXT,
    -- JSON array of tier names; [] = every member.
    tiers       TEXT NOT NULL,
    image_url   TEXT,
    created_at  TEXT NOT NULL
);

-- A redemption and its fulfilment.
CREATE TABLE loyalty_redemptions (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    entry_id    INTEGER NOT NULL,
    points      INTEGER NOT NULL CHECK (points > 0),
    reward_id   INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('ordered', 'handed_over', 'cancelled')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (customer_id, entry_id)
);

-- Tier changes with their reason (also `loyalty.tier_changed` events; the timeline reads these).
CREATE TABLE loyalty_tier_changes (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    from_tier   TEXT,
    to_tier     TEXT,
    reason      TEXT NOT NULL,
    changed_at  TEXT NOT NULL
);

-- Referral rewards, one per referee (the referrer's shard: `customer_id` is the referrer):
-- `paid`, `refused` (a fraud guard or the cap, in `reason`) or `reversed` (the first order
-- refunded later). The primary key makes a second scheduler find the decision taken.
CREATE TABLE loyalty_referrals (
    customer_id INTEGER NOT NULL,
    referee_id  INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('paid', 'refused', 'reversed')),
    reason      TEXT,
    order_id    INTEGER,
    points      INTEGER NOT NULL DEFAULT 0,
    decided_at  TEXT NOT NULL,
    PRIMARY KEY (customer_id, referee_id)
);
