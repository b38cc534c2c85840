-- Approval with narrowing: registered apps (return URLs) and approval requests.
CREATE TABLE approval_apps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    return_url  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- One app request. `message` is the original SIWE text, never changed. On approval the
-- final (narrowed) message, its EIP-191 digest and the signature are written once, with
-- a one-time code (redirect flow, SHA-256 stored) bound to that digest; the exchange or
-- the device-token poll consumes the row (status 'consumed', signature cleared).
CREATE TABLE approval_requests (
    id               TEXT PRIMARY KEY,
    flow             TEXT NOT NULL CHECK (flow IN ('redirect', 'device')),
    message          TEXT NOT NULL,
    return_url       TEXT,
    state            TEXT,
    client_id        TEXT,
    device_code_hash BLOB UNIQUE,
    user_code_hash   BLOB UNIQUE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    user_id          TEXT,
    final_message    TEXT,
    digest           BLOB,
    signature        TEXT,
    address          TEXT,
    code_hash        BLOB UNIQUE,
    code_expires_at  INTEGER,
    last_poll_at     INTEGER,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX approval_requests_expiry ON approval_requests (expires_at);
