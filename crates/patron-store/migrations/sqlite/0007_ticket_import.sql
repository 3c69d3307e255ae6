-- The twin of PostgreSQL's 0007 (tickets' external ids). As in 0004, SQLite keeps the global
-- uniqueness on the row and the key "table" is a view over it whose writes do nothing.
ALTER TABLE tickets ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX tickets_external_id ON tickets (external_id);
CREATE UNIQUE INDEX tickets_customer_external_id ON tickets (customer_id, external_id);

CREATE VIEW ticket_keys AS SELECT external_id, customer_id, id AS ticket_id FROM tickets WHERE external_id IS NOT NULL;
CREATE TRIGGER ticket_keys_insert INSTEAD OF INSERT ON ticket_keys BEGIN SELECT 1; END;
CREATE TRIGGER ticket_keys_update INSTEAD OF UPDATE ON ticket_keys BEGIN SELECT 1; END;
CREATE TRIGGER ticket_keys_delete INSTEAD OF DELETE ON ticket_keys BEGIN SELECT 1; END;
