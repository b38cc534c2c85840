-- Accounts, sessions, passkeys, ceremonies, email codes, recovery codes, keys, audit.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    webauthn_handle TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_uv_at INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    passkey_json TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX passkeys_user ON passkeys(user_id);
CREATE TABLE ceremonies (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE email_codes (
    email TEXT PRIMARY KEY,
    code_hash BLOB,
    expires_at INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER
);
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('managed', 'external')),
    label TEXT NOT NULL,
    is_owner INTEGER NOT NULL DEFAULT 0,
    sealing_context TEXT UNIQUE,
    sealed BLOB,
    created_at INTEGER NOT NULL,
    archived_at INTEGER,
    exported_at INTEGER,
    UNIQUE (user_id, address),
    CHECK ((kind = 'managed') = (sealed IS NOT NULL AND sealing_context IS NOT NULL))
);
CREATE UNIQUE INDEX keys_one_owner ON keys(user_id) WHERE is_owner = 1;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    key_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_user ON audit(user_id, id);
