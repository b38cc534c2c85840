//! [`OidcStore`] for the embedded SQLite backend (tables of `migrations/0002_oidc.sql`). Code
//! redemption and refresh rotation are single transactions, so a code or refresh token is spent
//! exactly once even under concurrent requests.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::oidc::{
    CodeRedemption, OidcClient, OidcCode, OidcGrant, OidcStore, OidcToken, Refresh, SigningKeyRow,
};
use super::sqlite::{conflict, SqliteStore};
use super::{StoreError, StoreResult};

/// Used codes are kept this long past expiry so a late replay still revokes the grant.
const KEEP_USED_CODES_MS: i64 = 10 * 60 * 1000;

const GRANT_COLUMNS: &str =
    "id, client_id, user_id, scope, nonce, auth_time, created_at, revoked_at";

fn client_from(row: &Row<'_>) -> rusqlite::Result<(OidcClient, String)> {
    Ok((
        OidcClient {
            id: row.get(0)?,
            name: row.get(1)?,
            secret_hash: row.get(2)?,
            redirect_uris: Vec::new(),
            created_at: row.get(4)?,
        },
        row.get(3)?,
    ))
}

fn with_uris((mut c, uris): (OidcClient, String)) -> StoreResult<OidcClient> {
    c.redirect_uris = serde_json::from_str(&uris)
        .map_err(|e| StoreError::Conflict(format!("stored redirect URIs unreadable: {e}")))?;
    Ok(c)
}

fn grant_from(row: &Row<'_>) -> rusqlite::Result<OidcGrant> {
    Ok(OidcGrant {
        id: row.get(0)?,
        client_id: row.get(1)?,
        user_id: row.get(2)?,
        scope: row.get(3)?,
        nonce: row.get(4)?,
        auth_time: row.get(5)?,
        created_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

fn grant_in(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<OidcGrant>> {
    tx.query_row(
        &format!("SELECT {GRANT_COLUMNS} FROM oidc_grants WHERE id = ?1"),
        [id],
        grant_from,
    )
    .optional()
}

fn revoke_in(tx: &Transaction<'_>, grant_id: &str, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE oidc_grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;
    tx.execute("DELETE FROM oidc_tokens WHERE grant_id = ?1", [grant_id])?;
    Ok(())
}

fn insert_tokens(tx: &Transaction<'_>, tokens: &[OidcToken]) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO oidc_tokens (token_hash, kind, grant_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for t in tokens {
        st.execute(params![
            t.token_hash,
            t.kind.as_str(),
            t.grant_id,
            t.expires_at
        ])?;
    }
    Ok(())
}

impl OidcStore for SqliteStore {
    fn add_client(&self, c: &OidcClient) -> StoreResult<()> {
        let uris = serde_json::to_string(&c.redirect_uris)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        self.conn()
            .execute(
                "INSERT INTO oidc_clients (id, name, secret_hash, redirect_uris, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.id, c.name, c.secret_hash, uris, c.created_at],
            )
            .map_err(|e| conflict(e, "a client with this id exists"))?;
        Ok(())
    }

    fn client(&self, id: &str) -> StoreResult<Option<OidcClient>> {
        let found = self
            .conn()
            .prepare_cached(
                "SELECT id, name, secret_hash, redirect_uris, created_at FROM oidc_clients
                 WHERE id = ?1",
            )?
            .query_row([id], client_from)
            .optional()?;
        found.map(with_uris).transpose()
    }

    fn clients(&self) -> StoreResult<Vec<OidcClient>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, name, secret_hash, redirect_uris, created_at FROM oidc_clients
             ORDER BY created_at, id",
        )?;
        let rows = st
            .query_map([], client_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(with_uris).collect()
    }

    fn remove_client(&self, id: &str) -> StoreResult<()> {
        // Grants, codes, tokens and consents cascade.
        let n = self
            .conn()
            .execute("DELETE FROM oidc_clients WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn signing_key(&self) -> StoreResult<Option<SigningKeyRow>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT kid, alg, sealing_context, sealed, public_jwk, created_at
                 FROM oidc_signing_keys ORDER BY created_at DESC, kid LIMIT 1",
            )?
            .query_row([], |r| {
                Ok(SigningKeyRow {
                    kid: r.get(0)?,
                    alg: r.get(1)?,
                    sealing_context: r.get(2)?,
                    sealed: r.get(3)?,
                    public_jwk: r.get(4)?,
                    created_at: r.get(5)?,
                })
            })
            .optional()?)
    }

    fn init_signing_key(&self, row: &SigningKeyRow) -> StoreResult<SigningKeyRow> {
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let existing: i64 =
                tx.query_row("SELECT COUNT(*) FROM oidc_signing_keys", [], |r| r.get(0))?;
            if existing == 0 {
                tx.execute(
                    "INSERT INTO oidc_signing_keys
                     (kid, alg, sealing_context, sealed, public_jwk, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        row.kid,
                        row.alg,
                        row.sealing_context,
                        row.sealed,
                        row.public_jwk,
                        row.created_at
                    ],
                )?;
            }
            tx.commit()?;
        }
        self.signing_key()?.ok_or(StoreError::NotFound)
    }

    fn create_code(&self, g: &OidcGrant, c: &OidcCode) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO oidc_grants (id, client_id, user_id, scope, nonce, auth_time, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                g.id,
                g.client_id,
                g.user_id,
                g.scope,
                g.nonce,
                g.auth_time,
                g.created_at
            ],
        )?;
        tx.execute(
            "INSERT INTO oidc_codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                c.code_hash,
                c.grant_id,
                c.redirect_uri,
                c.code_challenge,
                c.expires_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn redeem_code(&self, code_hash: &[u8], now: i64) -> StoreResult<CodeRedemption> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let found = tx
            .prepare_cached(
                "SELECT grant_id, redirect_uri, code_challenge, expires_at, used_at
                 FROM oidc_codes WHERE code_hash = ?1",
            )?
            .query_row([code_hash], |r| {
                Ok((
                    OidcCode {
                        code_hash: code_hash.to_vec(),
                        grant_id: r.get(0)?,
                        redirect_uri: r.get(1)?,
                        code_challenge: r.get(2)?,
                        expires_at: r.get(3)?,
                    },
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()?;
        let Some((code, used_at)) = found else {
            return Ok(CodeRedemption::Unknown);
        };
        if used_at.is_some() {
            revoke_in(&tx, &code.grant_id, now)?;
            tx.commit()?;
            return Ok(CodeRedemption::Reused);
        }
        tx.execute(
            "UPDATE oidc_codes SET used_at = ?2 WHERE code_hash = ?1",
            params![code_hash, now],
        )?;
        let grant = grant_in(&tx, &code.grant_id)?;
        tx.commit()?;
        Ok(match grant {
            Some(g) => CodeRedemption::Fresh(Box::new((code, g))),
            None => CodeRedemption::Unknown,
        })
    }

    fn issue_tokens(&self, grant_id: &str, tokens: &[OidcToken]) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let live = grant_in(&tx, grant_id)?.is_some_and(|g| g.revoked_at.is_none());
        if !live {
            return Ok(false);
        }
        insert_tokens(&tx, tokens)?;
        tx.commit()?;
        Ok(true)
    }

    fn rotate_refresh(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: i64,
        new_tokens: &[OidcToken],
    ) -> StoreResult<Refresh> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let found: Option<(String, i64, Option<i64>)> = tx
            .prepare_cached(
                "SELECT grant_id, expires_at, used_at FROM oidc_tokens
                 WHERE token_hash = ?1 AND kind = 'refresh'",
            )?
            .query_row([token_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((grant_id, expires_at, used_at)) = found else {
            return Ok(Refresh::Invalid);
        };
        let Some(grant) = grant_in(&tx, &grant_id)? else {
            return Ok(Refresh::Invalid);
        };
        if grant.client_id != client_id || grant.revoked_at.is_some() {
            return Ok(Refresh::Invalid);
        }
        if used_at.is_some() {
            revoke_in(&tx, &grant_id, now)?;
            tx.commit()?;
            return Ok(Refresh::Reused);
        }
        if expires_at <= now {
            return Ok(Refresh::Invalid);
        }
        tx.execute(
            "UPDATE oidc_tokens SET used_at = ?2 WHERE token_hash = ?1",
            params![token_hash, now],
        )?;
        // The access tokens of the previous rotation end with it.
        tx.execute(
            "DELETE FROM oidc_tokens WHERE grant_id = ?1 AND kind = 'access'",
            [&grant_id],
        )?;
        let fresh: Vec<OidcToken> = new_tokens
            .iter()
            .map(|t| OidcToken {
                grant_id: grant_id.clone(),
                ..t.clone()
            })
            .collect();
        insert_tokens(&tx, &fresh)?;
        tx.commit()?;
        Ok(Refresh::Rotated(grant))
    }

    fn access_grant(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<OidcGrant>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT g.id, g.client_id, g.user_id, g.scope, g.nonce, g.auth_time, g.created_at,
                        g.revoked_at
                 FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id
                 WHERE t.token_hash = ?1 AND t.kind = 'access' AND t.expires_at > ?2
                   AND g.revoked_at IS NULL",
            )?
            .query_row(params![token_hash, now], grant_from)
            .optional()?)
    }

    fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        revoke_in(&tx, grant_id, now)?;
        tx.commit()?;
        Ok(())
    }

    fn purge_oidc(&self, now: i64) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM oidc_tokens WHERE expires_at <= ?1", [now])?;
        tx.execute(
            "DELETE FROM oidc_codes WHERE expires_at <= ?1",
            [now.saturating_sub(KEEP_USED_CODES_MS)],
        )?;
        tx.execute(
            "DELETE FROM oidc_grants WHERE created_at <= ?1
               AND NOT EXISTS (SELECT 1 FROM oidc_codes c WHERE c.grant_id = oidc_grants.id)
               AND NOT EXISTS (SELECT 1 FROM oidc_tokens t WHERE t.grant_id = oidc_grants.id)",
            [now.saturating_sub(KEEP_USED_CODES_MS)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT scope FROM oidc_consents WHERE user_id = ?1 AND client_id = ?2",
            )?
            .query_row([user_id, client_id], |r| r.get(0))
            .optional()?)
    }

    fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()> {
        self.conn().execute(
            "INSERT INTO oidc_consents (user_id, client_id, scope, granted_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = ?3, granted_at = ?4",
            params![user_id, client_id, scope, now],
        )?;
        Ok(())
    }
}
