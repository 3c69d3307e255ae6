-- One schema for PostgreSQL and Citus (distributed by customer; see src/db/citus.rs). Citus keeps
-- a unique constraint only when it includes the distribution column, and a foreign key only
-- between co-located tables on that column or to a reference table. So:
--
-- Global uniqueness of external ids moves to key tables, distributed by the key itself (a
-- unique key on the distribution column is allowed), written in the same transaction as the
-- row they point to. The rows keep a uniqueness per customer, which is what an upsert by
-- external id needs as its conflict target.

CREATE TABLE customer_keys (
    external_id TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL
);
INSERT INTO customer_keys (external_id, customer_id) SELECT external_id, id FROM customers WHERE external_id IS NOT NULL;
ALTER TABLE customers DROP CONSTRAINT IF EXISTS customers_external_id_key;
CREATE INDEX customers_external_id ON customers (external_id);

CREATE TABLE order_keys (
    external_id TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    order_id    BIGINT NOT NULL
);
INSERT INTO order_keys (external_id, customer_id, order_id) SELECT external_id, customer_id, id FROM orders WHERE external_id IS NOT NULL;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_external_id_key;
ALTER TABLE orders ADD CONSTRAINT orders_customer_external_id UNIQUE (customer_id, external_id);

CREATE TABLE interaction_keys (
    external_id    TEXT PRIMARY KEY,
    customer_id    BIGINT NOT NULL,
    interaction_id BIGINT NOT NULL
);
INSERT INTO interaction_keys (external_id, customer_id, interaction_id)
    SELECT external_id, customer_id, id FROM interactions WHERE external_id IS NOT NULL;
ALTER TABLE interactions DROP CONSTRAINT IF EXISTS interactions_external_id_key;
ALTER TABLE interactions ADD CONSTRAINT interactions_customer_external_id UNIQUE (customer_id, external_id);

CREATE TABLE contact_keys (
    external_id TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    contact_id  BIGINT NOT NULL
);
INSERT INTO contact_keys (external_id, customer_id, contact_id) SELECT external_id, customer_id, id FROM contacts WHERE external_id IS NOT NULL;
ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_external_id_key;
ALTER TABLE contacts ADD CONSTRAINT contacts_customer_external_id UNIQUE (customer_id, external_id);

-- A customer's referrer and the customer a duplicate was merged into are other customers, in
-- other shards: the store checks them (the same 422 as the foreign keys gave).
ALTER TABLE customers DROP CONSTRAINT IF EXISTS customers_referrer_id_fkey;
ALTER TABLE customers DROP CONSTRAINT IF EXISTS customers_merged_into_fkey;

-- The audit log is written on every read of a full profile. It carries the customer an entry is
-- about (0 for entries about no one customer: logins, imports, exports, batches), so that on
-- Citus it is distributed with the customers and an entry goes to the shard of the change or
-- read it records, not to every node as a reference table would be written.
ALTER TABLE audit_log ADD COLUMN customer_id BIGINT NOT NULL DEFAULT 0;
UPDATE audit_log SET customer_id = CAST(entity_id AS BIGINT) WHERE entity = 'customer' AND entity_id ~ '^[0-9]{1,18}$';
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log ADD PRIMARY KEY (customer_id, id);
-- The newest entries first, as the audit list reads them.
CREATE INDEX audit_log_id ON audit_log (id);
