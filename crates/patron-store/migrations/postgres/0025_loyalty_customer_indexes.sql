-- SQLite's 0025 indexes the loyalty lots and tier changes by customer. Here (and on Citus) their
-- primary keys already start with `customer_id`, so there is nothing to add; this file keeps
-- the two engines' migration numbers in step.
SELECT 1;
