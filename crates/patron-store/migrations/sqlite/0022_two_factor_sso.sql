-- Two-factor login and single sign-on (issue 21 §4). Small global tables without a customer_id:
-- reference tables on Citus, like users and sessions (src/db/citus.rs).

-- A user's TOTP key (RFC 6238). The key is needed to check codes, so it is stored as is (base32),
-- never logged; `confirmed_at` is set once the user proved the authenticator with a code, and
-- `last_step` keeps a used code from working a second time.
CREATE TABLE user_totp (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id),
    secret       TEXT NOT NULL,
    confirmed_at TEXT,
    last_step    INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);

-- Recovery codes: shown once, stored as SHA-256 digests, each good for one login.
CREATE TABLE user_recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    used_at   TEXT,
    PRIMARY KEY (user_id, code_hash)
);

-- A login between its password and its second step (`totp`: a code is due; `enrol`: the role
-- requires two factors and the user has none yet). No session exists until the step passes.
CREATE TABLE login_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    purpose    TEXT NOT NULL CHECK (purpose IN ('totp', 'enrol')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- An OpenID Connect login on its way through the provider: the `state` sent (its digest), the
-- PKCE verifier and the nonce the ID token must carry.
CREATE TABLE oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    code_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

-- The provider's subject a user logged in as (`iss` + ' ' + `sub`): later logins match it first.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
