-- Access that fits a chain or a bank (issue 21): organisation units in a tree, users in units,
-- customers with a home unit, custom roles. All small global tables (reference tables on Citus).

-- Units: region → branch → store (and teams), each with a code the order files use as `store`.
CREATE TABLE units (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    code       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('region', 'branch', 'store', 'team')),
    parent_id  INTEGER REFERENCES units (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The tree's closure: one row per (unit, unit in its subtree, itself included), rewritten on
-- every change of the tree. The scope predicate reads it without a recursive query.
CREATE TABLE unit_paths (
    ancestor_id   INTEGER NOT NULL,
    descendant_id INTEGER NOT NULL,
    PRIMARY KEY (ancestor_id, descendant_id)
);

-- The units a user belongs to (one or more).
CREATE TABLE user_units (
    user_id INTEGER NOT NULL REFERENCES users (id),
    unit_id INTEGER NOT NULL REFERENCES units (id),
    PRIMARY KEY (user_id, unit_id)
);

-- Custom roles: a name and a set of permissions from the catalogue (space-separated names). The built-in
-- roles admin, manager and agent are not stored: they are fixed permission sets in the code.
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

ALTER TABLE customers ADD COLUMN home_unit_id INTEGER;
CREATE INDEX customers_home_unit ON customers (home_unit_id);
-- A custom role (by name) replaces the built-in `role` when set.
ALTER TABLE users ADD COLUMN custom_role TEXT;
ALTER TABLE api_tokens ADD COLUMN custom_role TEXT;
