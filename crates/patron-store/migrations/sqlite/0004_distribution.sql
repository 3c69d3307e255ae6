-- The twin of PostgreSQL's 0004 (key tables for globally unique external ids, see there), so that
-- the store runs the same statements on every engine. SQLite keeps its global UNIQUE constraints
-- (one file: they cost nothing to check), so the key "tables" are views over them, and writes to
-- them do nothing: the row itself is the key. A conflict is then raised by the row's own insert.

CREATE VIEW customer_keys AS SELECT external_id, id AS customer_id FROM customers WHERE external_id IS NOT NULL;
CREATE TRIGGER customer_keys_insert INSTEAD OF INSERT ON customer_keys BEGIN SELECT 1; END;
CREATE TRIGGER customer_keys_update INSTEAD OF UPDATE ON customer_keys BEGIN SELECT 1; END;
CREATE TRIGGER customer_keys_delete INSTEAD OF DELETE ON customer_keys BEGIN SELECT 1; END;

CREATE VIEW order_keys AS SELECT external_id, customer_id, id AS order_id FROM orders WHERE external_id IS NOT NULL;
CREATE TRIGGER order_keys_insert INSTEAD OF INSERT ON order_keys BEGIN SELECT 1; END;
CREATE TRIGGER order_keys_update INSTEAD OF UPDATE ON order_keys BEGIN SELECT 1; END;
CREATE TRIGGER order_keys_delete INSTEAD OF DELETE ON order_keys BEGIN SELECT 1; END;

CREATE VIEW interaction_keys AS SELECT external_id, customer_id, id AS interaction_id FROM interactions WHERE external_id IS NOT NULL;
CREATE TRIGGER interaction_keys_insert INSTEAD OF INSERT ON interaction_keys BEGIN SELECT 1; END;
CREATE TRIGGER interaction_keys_update INSTEAD OF UPDATE ON interaction_keys BEGIN SELECT 1; END;
CREATE TRIGGER interaction_keys_delete INSTEAD OF DELETE ON interaction_keys BEGIN SELECT 1; END;

CREATE VIEW contact_keys AS SELECT external_id, customer_id, id AS contact_id FROM contacts WHERE external_id IS NOT NULL;
CREATE TRIGGER contact_keys_insert INSTEAD OF INSERT ON contact_keys BEGIN SELECT 1; END;
CREATE TRIGGER contact_keys_update INSTEAD OF UPDATE ON contact_keys BEGIN SELECT 1; END;
CREATE TRIGGER contact_keys_delete INSTEAD OF DELETE ON contact_keys BEGIN SELECT 1; END;

-- The per-customer uniqueness PostgreSQL's upserts name as their conflict target.
CREATE UNIQUE INDEX orders_customer_external_id ON orders (customer_id, external_id);
CREATE UNIQUE INDEX interactions_customer_external_id ON interactions (customer_id, external_id);
CREATE UNIQUE INDEX contacts_customer_external_id ON contacts (customer_id, external_id);

-- The customer an audit entry is about (0 for none), as on PostgreSQL.
ALTER TABLE audit_log ADD COLUMN customer_id INTEGER NOT NULL DEFAULT 0;
UPDATE audit_log SET customer_id = CAST(entity_id AS INTEGER)
    WHERE entity = 'customer' AND entity_id <> '' AND entity_id NOT GLOB '*[^0-9]*' AND length(entity_id) <= 18;
