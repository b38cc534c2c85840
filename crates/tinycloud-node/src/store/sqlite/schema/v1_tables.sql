-- Migration 1, part 1: the index tables as the code before versioned migrations created them
-- on every open (`IF NOT EXISTS`). Part 2 is `v1_additions.sql`. Never edit a released
-- migration: add the next one (see `mod.rs`).
CREATE TABLE IF NOT EXISTS space (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delegation (
    cid TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    delegatee TEXT NOT NULL,
    not_before INTEGER,
    expiration INTEGER,
    terminal INTEGER NOT NULL,
    parents TEXT NOT NULL,
    att TEXT NOT NULL,
    header TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delegation_space (
    space TEXT NOT NULL,
    cid TEXT NOT NULL,
    PRIMARY KEY (space, cid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delegation_by_expiration ON delegation (expiration);
CREATE INDEX IF NOT EXISTS delegation_by_issuer ON delegation (issuer, created_at);
CREATE INDEX IF NOT EXISTS delegation_by_delegatee ON delegation (delegatee, created_at);
CREATE TABLE IF NOT EXISTS delegation_charge (
    cid TEXT NOT NULL,
    space TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (cid, space)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revocation (
    cid TEXT PRIMARY KEY,
    revoker TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    inline_value BLOB,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hook_event (
    space TEXT NOT NULL,
    seq INTEGER NOT NULL,
    service TEXT NOT NULL,
    ability TEXT NOT NULL,
    path TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (space, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook (
    id TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    service TEXT NOT NULL,
    path_prefix TEXT,
    abilities TEXT,
    callback_url TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    subscriber TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_delivery (
    id TEXT PRIMARY KEY,
    webhook TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_delivery_by_hook ON webhook_delivery (webhook, at);
CREATE TABLE IF NOT EXISTS encryption_network (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    public_key BLOB NOT NULL,
    sealed_private BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS encryption_audit (
    network TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    envelope_hash TEXT,
    delegations TEXT NOT NULL,
    invocation TEXT
);
CREATE INDEX IF NOT EXISTS encryption_audit_by_network ON encryption_audit (network, at);
CREATE TABLE IF NOT EXISTS space_usage (
    space TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sql_generation (
    space TEXT NOT NULL,
    db TEXT NOT NULL,
    generation INTEGER NOT NULL,
    snapshot_inline BLOB,
    snapshot_hash BLOB,
    snapshot_len INTEGER NOT NULL,
    db_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (space, db)
);
CREATE TABLE IF NOT EXISTS blob_ref (
    hash BLOB PRIMARY KEY,
    refs INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_gc (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sql_segment (
    space TEXT NOT NULL,
    db TEXT NOT NULL,
    seq INTEGER NOT NULL,
    inline_bytes BLOB,
    hash BLOB,
    len INTEGER NOT NULL,
    PRIMARY KEY (space, db, seq)
);
CREATE TABLE IF NOT EXISTS signed_kv_ticket (
    id_hash BLOB PRIMARY KEY,
    space TEXT NOT NULL,
    path TEXT NOT NULL,
    issuer TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    proofs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS signed_kv_ticket_by_space ON signed_kv_ticket (space, issuer, expires_at);
CREATE INDEX IF NOT EXISTS signed_kv_ticket_by_expiry ON signed_kv_ticket (expires_at);
-- Per-space quota overrides (`quota::QuotaStore`).
CREATE TABLE IF NOT EXISTS quota_override (
    space TEXT PRIMARY KEY,
    limit_bytes INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
