-- API tokens with an expiry and a scope (issue 14 §3). Additive: existing tokens keep working,
-- never expire and may write, as before.
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'read_write' CHECK (scope IN ('read_write', 'read_only'));
