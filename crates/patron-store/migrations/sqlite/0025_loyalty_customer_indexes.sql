-- A member's lots and tier changes by customer. On PostgreSQL and Citus their primary keys
-- start with `customer_id`; on SQLite the lots had only the expiry index, so every balance,
-- redemption and member read scanned the whole programme's lots (found by bench/loyalty at
-- 1 M orders: member reads timing out under 16 clients).
CREATE INDEX loyalty_lots_customer ON loyalty_lots (customer_id, id);
CREATE INDEX loyalty_tier_changes_customer ON loyalty_tier_changes (customer_id, changed_at);
