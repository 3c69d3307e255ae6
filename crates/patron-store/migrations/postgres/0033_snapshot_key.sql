-- Every analysis run adds a million rows to score_snapshots at 1 M customers (issue 15 §5). Keyed
-- (customer_id, run_id), they went into every leaf of the key, and the run index took them a
-- second time: the snapshot became PostgreSQL's largest save phase (6.4-8.2 s with 24 runs kept,
-- growing with the runs). Keyed by run first, a run's rows go in at the end of one index, which
-- also serves what the run index served (a run's rows for the migration matrix, the retention's
-- delete of older runs). Nothing reads one customer's snapshot rows by customer alone. The key
-- still holds the distribution column, as Citus requires. SQLite has had this key since 0026.
ALTER TABLE score_snapshots DROP CONSTRAINT score_snapshots_pkey;
ALTER TABLE score_snapshots ADD CONSTRAINT score_snapshots_pkey PRIMARY KEY (run_id, customer_id);
DROP INDEX IF EXISTS score_snapshots_run;
