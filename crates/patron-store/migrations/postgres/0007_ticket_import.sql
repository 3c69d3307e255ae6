-- Tickets from another helpdesk (`patron import tickets`): an external id, unique across the
-- database through its key table (distributed by the id itself on Citus, as for orders), and
-- per customer on the ticket, which is what the import looks up first.
ALTER TABLE tickets ADD COLUMN external_id TEXT;
ALTER TABLE tickets ADD CONSTRAINT tickets_customer_external_id UNIQUE (customer_id, external_id);

CREATE TABLE ticket_keys (
    external_id TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    ticket_id   BIGINT NOT NULL
);
