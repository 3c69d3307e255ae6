-- The dashboard's whole-base aggregates (issue 15 §4), computed by each analysis run and kept
-- with it: they change only when a run does, and at 1 M customers computing them per request
-- took 8 s (ten full joins of scores and customers). A JSON document; NULL for older runs,
-- which the overview then computes live.
ALTER TABLE analytics_runs ADD COLUMN overview TEXT;
