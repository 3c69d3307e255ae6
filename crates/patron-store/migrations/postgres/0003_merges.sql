-- Merged duplicates: the customer a merged (soft-deleted) customer now lives on, so that files
-- from the source system that still name the merged customer's id land on the one kept.
ALTER TABLE customers ADD COLUMN merged_into BIGINT REFERENCES customers (id);
