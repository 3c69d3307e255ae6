-- Merged duplicates: the customer a merged (soft-deleted) customer now lives on, so that files
-- from the source system that still name the merged customer's id land on the one kept.
ALTER TABLE customers ADD COLUMN merged_into BIGINT REFERENCES customers (id);

-- The live customers, for counting them without reading every (wide) row: the customer list
-- shows the total under its filters (110,000 customers on SQLite: 160 → 10 ms).
CREATE INDEX customers_live ON customers (id) WHERE deleted_at IS NULL;

-- Likely duplicates by name within a city (crate::duplicates compares names lower-cased and
-- without spaces, with this very expression), from an index instead of every customer of the
-- city; it leads with the city, so it replaces the plain city index.
CREATE INDEX customers_city_name ON customers (city, REPLACE(REPLACE(LOWER(name), ' ', ''), '　', ''));
DROP INDEX customers_city;
