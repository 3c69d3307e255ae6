-- A tier is decided by the points a member earned in the last months (`tiers::earned_query`),
-- summed on every earning order. Without an index of a customer's entries by time that sum read
-- all of the customer's entries, back to their first order: 1.3 ms for a member with 5,000 (a
-- B2B account, a regular of ten years) against 0.1 ms for the ~500 of the last year by this
-- index (sqlite3 shell, issue 15: what a long history costs a write).
CREATE INDEX loyalty_entries_customer_time ON loyalty_entries (customer_id, created_at);
