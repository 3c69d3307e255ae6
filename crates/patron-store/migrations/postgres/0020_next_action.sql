-- Next best action and channel calibration as data (issue 12 §7, §5), written by each analysis
-- run with the other scores.
--
-- next_action: win_back, retain, review, referral, nurture, upsell or none (priority order in
-- docs/next-action.md); next_action_category_id: the category an upsell suggests;
-- next_action_detail: the figures behind the reason (JSON), rendered in words on reading.
ALTER TABLE customer_scores ADD COLUMN next_action TEXT;
ALTER TABLE customer_scores ADD COLUMN next_action_category_id BIGINT;
ALTER TABLE customer_scores ADD COLUMN next_action_detail TEXT;
-- Channel calibration: the posterior mean response rate Beta(1 + r, 1 + s − r) per channel,
-- and the consented channel with the highest one when the run was made.
ALTER TABLE customer_scores ADD COLUMN preferred_channel TEXT;
ALTER TABLE customer_scores ADD COLUMN response_rate_email DOUBLE PRECISION;
ALTER TABLE customer_scores ADD COLUMN response_rate_sms DOUBLE PRECISION;
ALTER TABLE customer_scores ADD COLUMN response_rate_wechat DOUBLE PRECISION;
ALTER TABLE customer_scores ADD COLUMN response_rate_mail DOUBLE PRECISION;
CREATE INDEX customer_scores_next_action ON customer_scores (next_action);
