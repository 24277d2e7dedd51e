-- Section 9 of the contract: sign-in sessions of the history page. The cookie holds
-- a random token; only its SHA-256 is kept here, as for keys. A session is the key
-- that signed in, for a while: revoking or deleting the key ends it.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
CREATE INDEX web_sessions_by_key ON web_sessions (api_key_id);
