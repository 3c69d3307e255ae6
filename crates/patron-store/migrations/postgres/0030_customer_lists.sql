-- Customer lists and search at scale (issue 15 §2). Each filter and sort of the customer list
-- is served by an index in the list's own order, so a page reads its rows and no more: at 1 M
-- customers `city=` sorted 205,771 rows by id and `sort=name` sorted them all. Partial on live
-- customers, as every list is (`deleted_at IS NULL`). Names sort by code point (COLLATE "C"),
-- as SQLite sorts them, whatever the database's collation: the same page on either engine.
CREATE INDEX customers_live_city ON customers (city, id) WHERE deleted_at IS NULL;
CREATE INDEX customers_live_name ON customers ((name COLLATE "C"), id) WHERE deleted_at IS NULL;
CREATE INDEX customers_live_updated ON customers (updated_at, id) WHERE deleted_at IS NULL;

-- The list's free-text search (three characters or more) finds substrings of the name, mobile
-- and email through trigram indexes (pg_trgm, a trusted extension: the database owner may
-- create it), not by a LIKE '%…%' scan of every customer.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_search_name ON customers USING gin (LOWER(name) gin_trgm_ops);
CREATE INDEX customers_search_mobile ON customers USING gin (mobile gin_trgm_ops);
CREATE INDEX customers_search_email ON customers USING gin (LOWER(email) gin_trgm_ops);
