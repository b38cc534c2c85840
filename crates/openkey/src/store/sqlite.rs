//! The embedded backend: one SQLite file (`<data-dir>/openkey.db`, WAL, foreign keys on) behind a
//! mutex. Every trait call is one short statement or transaction.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use super::{
    AuditRow, AuditStore, Ceremony, CeremonyStore, EmailCode, EmailCodeStore, KeyKind, KeyRow,
    KeyStore, PasskeyRow, PasskeyStore, RecoveryCodeStore, Session, SessionStore, StoreError,
    StoreResult, User, UserStore,
};

/// SQLite-backed [`super::Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating and migrating) `<dir>/openkey.db`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("openkey.db"))?;
        Self::init(conn)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> StoreResult<Self> {
        // First: switching to WAL and migrating take locks another process (the server, an
        // admin command) may hold for a moment.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        super::migrations::migrations().to_latest(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// The locked connection; other store files of this crate implement their traits with it.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (statements are atomic).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Maps a constraint violation to `Conflict(what)`.
pub(crate) fn conflict(e: rusqlite::Error, what: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Db(e),
    }
}

fn user_from(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        webauthn_handle: row.get(2)?,
        created_at: row.get(3)?,
    })
}

impl UserStore for SqliteStore {
    fn create_user(&self, u: &User) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO users (id, email, webauthn_handle, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![u.id, u.email, u.webauthn_handle, u.created_at],
            )
            .map_err(|e| conflict(e, "an account with this email exists"))?;
        Ok(())
    }

    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, email, webauthn_handle, created_at FROM users WHERE email = ?1",
                [email],
                user_from,
            )
            .optional()?)
    }

    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, email, webauthn_handle, created_at FROM users WHERE id = ?1",
                [id],
                user_from,
            )
            .optional()?)
    }

    fn delete_user(&self, id: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let email: Option<String> = tx
            .query_row("SELECT email FROM users WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        let Some(email) = email else {
            return Err(StoreError::NotFound);
        };
        tx.execute("DELETE FROM ceremonies WHERE user_id = ?1", [id])?;
        tx.execute("DELETE FROM email_codes WHERE email = ?1", [&email])?;
        // Sessions, passkeys, recovery codes, keys (sealed blobs) and audit cascade.
        tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }
}

impl SessionStore for SqliteStore {
    fn create_session(&self, s: &Session) -> StoreResult<()> {
        self.conn().execute(
            "INSERT INTO sessions (id_hash, user_id, method, created_at, expires_at, last_uv_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                s.id_hash,
                s.user_id,
                s.method,
                s.created_at,
                s.expires_at,
                s.last_uv_at
            ],
        )?;
        Ok(())
    }

    fn session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<Session>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id_hash, user_id, method, created_at, expires_at, last_uv_at
                 FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, now],
                |r| {
                    Ok(Session {
                        id_hash: r.get(0)?,
                        user_id: r.get(1)?,
                        method: r.get(2)?,
                        created_at: r.get(3)?,
                        expires_at: r.get(4)?,
                        last_uv_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    fn record_uv(&self, id_hash: &[u8], at: i64) -> StoreResult<()> {
        let n = self.conn().execute(
            "UPDATE sessions SET last_uv_at = ?2 WHERE id_hash = ?1",
            params![id_hash, at],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }
}

impl PasskeyStore for SqliteStore {
    fn add_passkey(&self, p: &PasskeyRow) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO passkeys (id, user_id, credential_id, name, passkey_json, created_at, last_used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![p.id, p.user_id, p.credential_id, p.name, p.passkey_json, p.created_at, p.last_used_at],
            )
            .map_err(|e| conflict(e, "this passkey is registered already"))?;
        Ok(())
    }

    fn passkeys(&self, user_id: &str) -> StoreResult<Vec<PasskeyRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, user_id, credential_id, name, passkey_json, created_at, last_used_at
             FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([user_id], |r| {
            Ok(PasskeyRow {
                id: r.get(0)?,
                user_id: r.get(1)?,
                credential_id: r.get(2)?,
                name: r.get(3)?,
                passkey_json: r.get(4)?,
                created_at: r.get(5)?,
                last_used_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn update_passkey(&self, id: &str, passkey_json: &str, used_at: i64) -> StoreResult<()> {
        self.conn().execute(
            "UPDATE passkeys SET passkey_json = ?2, last_used_at = ?3 WHERE id = ?1",
            params![id, passkey_json, used_at],
        )?;
        Ok(())
    }

    fn remove_passkey(&self, user_id: &str, id: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM passkeys WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM passkeys WHERE user_id = ?1 AND id = ?2",
                [user_id, id],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !exists {
            return Err(StoreError::NotFound);
        }
        if count <= 1 {
            return Err(StoreError::Conflict(
                "this is your last passkey: add another before removing it".into(),
            ));
        }
        tx.execute(
            "DELETE FROM passkeys WHERE user_id = ?1 AND id = ?2",
            [user_id, id],
        )?;
        tx.commit()?;
        Ok(())
    }
}

impl CeremonyStore for SqliteStore {
    fn put_ceremony(&self, c: &Ceremony) -> StoreResult<()> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM ceremonies WHERE expires_at <= ?1",
            [crate::clock::now_ms()],
        )?;
        conn.execute(
            "INSERT INTO ceremonies (id, kind, user_id, data, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.id, c.kind, c.user_id, c.data, c.expires_at],
        )?;
        Ok(())
    }

    fn take_ceremony(&self, id: &str, kind: &str, now: i64) -> StoreResult<Option<Ceremony>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = tx
            .query_row(
                "SELECT id, kind, user_id, data, expires_at FROM ceremonies WHERE id = ?1",
                [id],
                |r| {
                    Ok(Ceremony {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        user_id: r.get(2)?,
                        data: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                },
            )
            .optional()?;
        tx.execute("DELETE FROM ceremonies WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(found.filter(|c| c.kind == kind && c.expires_at > now))
    }
}

impl EmailCodeStore for SqliteStore {
    fn email_code(&self, email: &str) -> StoreResult<EmailCode> {
        Ok(self
            .conn()
            .query_row(
                "SELECT code_hash, expires_at, failures, locked_until FROM email_codes WHERE email = ?1",
                [email],
                |r| {
                    Ok(EmailCode {
                        code_hash: r.get(0)?,
                        expires_at: r.get(1)?,
                        failures: r.get(2)?,
                        locked_until: r.get(3)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    fn set_email_code(&self, email: &str, c: &EmailCode) -> StoreResult<()> {
        self.conn().execute(
            "INSERT INTO email_codes (email, code_hash, expires_at, failures, locked_until)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (email) DO UPDATE SET code_hash = ?2, expires_at = ?3, failures = ?4, locked_until = ?5",
            params![email, c.code_hash, c.expires_at, c.failures, c.locked_until],
        )?;
        Ok(())
    }
}

impl RecoveryCodeStore for SqliteStore {
    fn replace_recovery_codes(&self, user_id: &str, hashes: &[[u8; 32]]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
        for h in hashes {
            tx.execute(
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
                params![user_id, h.as_slice()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, code_hash FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
        )?;
        let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn use_recovery_code(&self, row_id: i64, at: i64) -> StoreResult<bool> {
        let n = self.conn().execute(
            "UPDATE recovery_codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            params![row_id, at],
        )?;
        Ok(n == 1)
    }
}

const KEY_COLUMNS: &str = "id, user_id, address, kind, label, is_owner, sealing_context, sealed, \
                           created_at, archived_at, exported_at";

fn key_from(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    let kind: String = r.get(3)?;
    Ok(KeyRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        address: r.get(2)?,
        kind: if kind == "managed" {
            KeyKind::Managed
        } else {
            KeyKind::External
        },
        label: r.get(4)?,
        is_owner: r.get(5)?,
        sealing_context: r.get(6)?,
        sealed: r.get(7)?,
        created_at: r.get(8)?,
        archived_at: r.get(9)?,
        exported_at: r.get(10)?,
    })
}

impl KeyStore for SqliteStore {
    fn insert_key(&self, k: &KeyRow) -> StoreResult<()> {
        self.conn()
            .execute(
                &format!("INSERT INTO keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    k.id,
                    k.user_id,
                    k.address,
                    k.kind.as_str(),
                    k.label,
                    k.is_owner,
                    k.sealing_context,
                    k.sealed,
                    k.created_at,
                    k.archived_at,
                    k.exported_at
                ],
            )
            .map_err(|e| conflict(e, "this key is linked already"))?;
        Ok(())
    }

    fn keys(&self, user_id: &str, include_archived: bool) -> StoreResult<Vec<KeyRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE user_id = ?1 AND (?2 OR archived_at IS NULL)
             ORDER BY is_owner DESC, created_at, id"
        ))?;
        let rows = stmt.query_map(params![user_id, include_archived], key_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn key(&self, user_id: &str, key_id: &str) -> StoreResult<Option<KeyRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE user_id = ?1 AND id = ?2"),
                [user_id, key_id],
                key_from,
            )
            .optional()?)
    }

    fn set_archived(&self, user_id: &str, key_id: &str, at: Option<i64>) -> StoreResult<()> {
        let n = self.conn().execute(
            "UPDATE keys SET archived_at = ?3 WHERE user_id = ?1 AND id = ?2",
            params![user_id, key_id, at],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn mark_exported(&self, user_id: &str, key_id: &str, at: i64) -> StoreResult<()> {
        let n = self.conn().execute(
            "UPDATE keys SET exported_at = ?3 WHERE user_id = ?1 AND id = ?2",
            params![user_id, key_id, at],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl AuditStore for SqliteStore {
    fn append_audit(&self, a: &AuditRow) -> StoreResult<()> {
        self.conn().execute(
            "INSERT INTO audit (user_id, at, event, outcome, key_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.user_id, a.at, a.event, a.outcome, a.key_id, a.detail],
        )?;
        Ok(())
    }

    fn audit_log(&self, user_id: &str, limit: u32) -> StoreResult<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, user_id, event, outcome, key_id, detail FROM audit
             WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![user_id, limit], |r| {
            Ok(AuditRow {
                at: r.get(0)?,
                user_id: r.get(1)?,
                event: r.get(2)?,
                outcome: r.get(3)?,
                key_id: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(store: &SqliteStore, id: &str) {
        store
            .create_user(&User {
                id: id.into(),
                email: format!("{id}@example.com"),
                webauthn_handle: format!("h-{id}"),
                created_at: 1,
            })
            .unwrap();
    }

    fn passkey(id: &str, user: &str) -> PasskeyRow {
        PasskeyRow {
            id: id.into(),
            user_id: user.into(),
            credential_id: id.as_bytes().to_vec(),
            name: id.into(),
            passkey_json: "{}".into(),
            created_at: 1,
            last_used_at: None,
        }
    }

    #[test]
    fn last_passkey_cannot_be_removed() {
        let s = SqliteStore::in_memory().unwrap();
        user(&s, "u");
        s.add_passkey(&passkey("a", "u")).unwrap();
        s.add_passkey(&passkey("b", "u")).unwrap();
        s.remove_passkey("u", "a").unwrap();
        assert!(matches!(
            s.remove_passkey("u", "b"),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.passkeys("u").unwrap().len(), 1);
    }

    #[test]
    fn ceremony_is_single_use_kind_bound_and_expires() {
        let s = SqliteStore::in_memory().unwrap();
        let c = |id: &str, exp| Ceremony {
            id: id.into(),
            kind: "signin".into(),
            user_id: None,
            data: "{}".into(),
            expires_at: exp,
        };
        let far = crate::clock::now_ms() + 60_000;
        s.put_ceremony(&c("x", far)).unwrap();
        assert!(s.take_ceremony("x", "signup", 0).unwrap().is_none());
        s.put_ceremony(&c("y", far)).unwrap();
        assert!(s.take_ceremony("y", "signin", 0).unwrap().is_some());
        assert!(s.take_ceremony("y", "signin", 0).unwrap().is_none());
        s.put_ceremony(&c("z", far)).unwrap();
        assert!(s.take_ceremony("z", "signin", far + 1).unwrap().is_none());
    }

    #[test]
    fn deleting_a_user_removes_their_keys() {
        let s = SqliteStore::in_memory().unwrap();
        user(&s, "u");
        s.insert_key(&KeyRow {
            id: "k".into(),
            user_id: "u".into(),
            address: "0xabc".into(),
            kind: KeyKind::Managed,
            label: "Owner".into(),
            is_owner: true,
            sealing_context: Some("c".into()),
            sealed: Some(vec![1, 2]),
            created_at: 1,
            archived_at: None,
            exported_at: None,
        })
        .unwrap();
        s.delete_user("u").unwrap();
        assert!(s.key("u", "k").unwrap().is_none());
        assert!(s.user_by_id("u").unwrap().is_none());
    }
}
