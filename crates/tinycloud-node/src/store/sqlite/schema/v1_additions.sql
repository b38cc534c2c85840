-- Migration 1, part 2: what the code before versioned migrations added to databases created
-- before these existed, in the order it did (it altered `webhook` rather than recreating it,
-- so the stored schema text of a fresh database is byte-for-byte what that code produced):
-- the proofs a webhook rests on, its expiry and why it was disabled; per-network audit row
-- counts (for retention) and the index of the per-actor bound on refused-decision records.
ALTER TABLE webhook ADD COLUMN proofs TEXT;
ALTER TABLE webhook ADD COLUMN expires_at INTEGER;
ALTER TABLE webhook ADD COLUMN disabled_reason TEXT;
CREATE TABLE encryption_audit_count (network TEXT PRIMARY KEY, records INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS encryption_audit_by_actor ON encryption_audit (network, actor, at);
