-- Cost to serve (issue 13 §7): each customer's figures for the analysis period, written by the
-- analysis run with the other scores. Minor units; the quadrant is the profitability matrix's
-- cell (carriage_trade, passive, aggressive, bargain_basement).
ALTER TABLE customer_scores ADD COLUMN cts_revenue_cents INTEGER;
ALTER TABLE customer_scores ADD COLUMN margin_cents INTEGER;
ALTER TABLE customer_scores ADD COLUMN cost_to_serve_cents INTEGER;
ALTER TABLE customer_scores ADD COLUMN profit_cents INTEGER;
ALTER TABLE customer_scores ADD COLUMN cts_quadrant TEXT;
