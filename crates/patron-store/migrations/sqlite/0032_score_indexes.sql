-- Every analysis run rewrites all of customer_scores (a million rows at 1 M customers), and each
-- secondary index is rewritten with them (issue 15 §5). The indexes of the tier, the lifecycle
-- and the next action served no rule of docs/segments.md or of issue 15 (PostgreSQL's
-- pg_stat_user_indexes counted no scan of them), nor any list or 360, which read scores by
-- customer; they cost a run 5.7 s on PostgreSQL (COPY of a run's million rows 16.7 s with them,
-- 11.0 s without) and 2.2 s on SQLite (rebuilt after the rows). Counting a rare value without
-- them scans the scores: `lifecycle = "loyal"` (1,298 of 1 M) 0.3 s on either engine instead of
-- 4-23 ms, far within a segment preview's second. The RFM class keeps its index: the rules
-- and their examples use it, and it drives their joins.
DROP INDEX IF EXISTS customer_scores_tier;
DROP INDEX IF EXISTS customer_scores_lifecycle;
DROP INDEX IF EXISTS customer_scores_next_action;
