-- Referees waiting for the referral decision (issue 13 §5): a referred customer is queued with
-- their first completed order, in that order's transaction (or the import's, or the merge's),
-- and the scheduler decides the ones past the pending period from this table alone, instead of
-- scanning every referred customer and their orders on each round. One row per referee, kept
-- with `decided_at` once decided, so later orders do not queue them again.
CREATE TABLE loyalty_referees (
    customer_id    INTEGER NOT NULL PRIMARY KEY,
    first_order_at TEXT NOT NULL,
    decided_at     TEXT
);
CREATE INDEX loyalty_referees_waiting ON loyalty_referees (first_order_at) WHERE decided_at IS NULL;

-- The referees of a database made by an earlier release, waiting or decided (the scheduler
-- marks the decided ones on its first round).
INSERT INTO loyalty_referees (customer_id, first_order_at)
SELECT o.customer_id, MIN(o.ordered_at) FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE c.referrer_id IS NOT NULL AND c.deleted_at IS NULL AND o.status IN ('completed', 'refunded')
GROUP BY o.customer_id;
