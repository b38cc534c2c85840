//! [`DelegationStore`]: stored delegations (their verified facts and exact header), the
//! spaces they name and were charged to, the expiry sweep, the account listing, revocations.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use tinycloud_auth::capability::{
    att_from_capabilities, att_from_json, att_to_json, capabilities_from_att,
};
use tinycloud_auth::chain::DelegationInfo;
use tinycloud_auth::cid::{parse_cid, Cid};
use tinycloud_auth::timestamp::Timestamp;

use super::spaces::{add_usage, usage_of};
use super::SqliteIndex;
use crate::store::{
    DelegationCharge, DelegationStore, DelegationWrite, StoreError, StoreResult, StoredDelegation,
};

/// The columns of a `delegation` row, before decoding.
struct RawDelegation {
    cid: String,
    issuer: String,
    delegatee: String,
    not_before: Option<i64>,
    expiration: Option<i64>,
    terminal: bool,
    parents: String,
    att: String,
    header: String,
}

const DELEGATION_COLUMNS: &str =
    "cid, issuer, delegatee, not_before, expiration, terminal, parents, att, header";

fn read_delegation(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawDelegation> {
    Ok(RawDelegation {
        cid: row.get(0)?,
        issuer: row.get(1)?,
        delegatee: row.get(2)?,
        not_before: row.get(3)?,
        expiration: row.get(4)?,
        terminal: row.get::<_, i64>(5)? == 1,
        parents: row.get(6)?,
        att: row.get(7)?,
        header: row.get(8)?,
    })
}

impl RawDelegation {
    /// Rebuilds the verified chain facts (they were verified before being stored).
    fn decode(self) -> StoreResult<StoredDelegation> {
        let cid = self.cid;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("delegation {cid}: {what}: {e}"))
        };
        let parents: Vec<String> =
            serde_json::from_str(&self.parents).map_err(|e| corrupt("parents", &e))?;
        let parents = parents
            .iter()
            .map(|p| parse_cid(p).map_err(|e| corrupt("parent", &e)))
            .collect::<StoreResult<Vec<_>>>()?;
        let att_json: serde_json::Value =
            serde_json::from_str(&self.att).map_err(|e| corrupt("att", &e))?;
        let att = att_from_json(&att_json).map_err(|e| corrupt("att", &e))?;
        let capabilities = capabilities_from_att(&att).map_err(|e| corrupt("capabilities", &e))?;
        let spaces = capabilities
            .iter()
            .filter_map(|c| c.resource.space().map(|s| s.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(StoredDelegation {
            info: DelegationInfo {
                cid: parse_cid(&cid).map_err(|e| corrupt("cid", &e))?,
                // Derived from the stored token (verified when registered); a row stored before
                // decoding became canonical-only keeps its CID as its identity.
                authority: tinycloud_auth::token::authority_of_header(&self.header)
                    .unwrap_or(parse_cid(&cid).map_err(|e| corrupt("cid", &e))?),
                issuer: self.issuer.parse().map_err(|e| corrupt("issuer", &e))?,
                delegatee: self
                    .delegatee
                    .parse()
                    .map_err(|e| corrupt("delegatee", &e))?,
                not_before: self.not_before.map(Timestamp::from_millis),
                expiration: self.expiration.map(Timestamp::from_millis),
                parents,
                capabilities,
                terminal: self.terminal,
            },
            header: self.header,
            spaces,
        })
    }
}

#[async_trait]
impl DelegationStore for SqliteIndex {
    async fn put_delegation(
        &self,
        d: &StoredDelegation,
        charges: Vec<DelegationCharge>,
        now_ms: i64,
    ) -> StoreResult<DelegationWrite> {
        let bytes = d.charged_bytes();
        let i = &d.info;
        let cid = i.cid.to_string();
        let issuer = i.issuer.to_string();
        let delegatee = i.delegatee.to_string();
        let nbf = i.not_before.map(Timestamp::as_millis);
        let exp = i.expiration.map(Timestamp::as_millis);
        let terminal = i64::from(i.terminal);
        let parents = serde_json::to_string(
            &i.parents
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let att = att_to_json(&att_from_capabilities(&i.capabilities)).to_string();
        let header = d.header.clone();
        let spaces = d.spaces.clone();
        self.write(move |tx| {
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM delegation WHERE cid = ?1)",
                params![cid],
                |r| r.get(0),
            )?;
            if known {
                return Ok(DelegationWrite::AlreadyStored);
            }
            // Checked before anything is written: a refused delegation leaves no row.
            for c in &charges {
                if let Some(limit) = c.limit {
                    let used = usage_of(tx, &c.space)?;
                    if used.saturating_add(bytes) > limit {
                        return Ok(DelegationWrite::QuotaExceeded {
                            space: c.space.clone(),
                            used,
                            limit,
                        });
                    }
                }
            }
            tx.execute(
                &format!(
                    "INSERT INTO delegation ({DELEGATION_COLUMNS}, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![cid, issuer, delegatee, nbf, exp, terminal, parents, att, header, now_ms],
            )?;
            for s in &spaces {
                tx.execute(
                    "INSERT INTO delegation_space (space, cid) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![s, cid],
                )?;
            }
            let charged = i64::try_from(bytes).unwrap_or(i64::MAX);
            for c in &charges {
                add_usage(tx, &c.space, charged)?;
                // What was charged where, so the sweep un-charges exactly that.
                tx.execute(
                    "INSERT INTO delegation_charge (cid, space, bytes) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    params![cid, c.space, charged],
                )?;
            }
            Ok(DelegationWrite::Stored)
        })
        .await
    }

    async fn delegation(&self, cid: &Cid) -> StoreResult<Option<StoredDelegation>> {
        let cid = cid.to_string();
        self.read(move |c| {
            let row = c
                .query_row(
                    &format!("SELECT {DELEGATION_COLUMNS} FROM delegation WHERE cid = ?1"),
                    params![cid],
                    read_delegation,
                )
                .optional()?;
            row.map(RawDelegation::decode).transpose()
        })
        .await
    }

    async fn delegations_for_space(&self, space: &str) -> StoreResult<Vec<StoredDelegation>> {
        let space = space.to_owned();
        self.read(move |c| {
            let cols = DELEGATION_COLUMNS
                .split(", ")
                .map(|col| format!("d.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = c.prepare(&format!(
                "SELECT {cols} FROM delegation d JOIN delegation_space s ON s.cid = d.cid
                 WHERE s.space = ?1 ORDER BY d.created_at, d.cid"
            ))?;
            let rows = stmt.query_map(params![space], read_delegation)?;
            rows.map(|r| r?.decode()).collect()
        })
        .await
    }

    async fn sweep_delegations(
        &self,
        expired_before_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<Cid>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let cids = {
                let mut stmt = tx.prepare(
                    "SELECT cid FROM delegation WHERE expiration IS NOT NULL AND expiration < ?1
                     ORDER BY expiration LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![expired_before_ms, limit], |r| {
                    r.get::<_, String>(0)
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let mut swept = Vec::with_capacity(cids.len());
            for cid in cids {
                let charges = {
                    let mut stmt =
                        tx.prepare("SELECT space, bytes FROM delegation_charge WHERE cid = ?1")?;
                    let rows = stmt.query_map(params![cid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })?;
                    rows.collect::<Result<Vec<_>, _>>()?
                };
                for (space, bytes) in charges {
                    add_usage(tx, &space, bytes.saturating_neg())?;
                }
                tx.execute("DELETE FROM delegation_charge WHERE cid = ?1", params![cid])?;
                tx.execute("DELETE FROM delegation_space WHERE cid = ?1", params![cid])?;
                tx.execute("DELETE FROM delegation WHERE cid = ?1", params![cid])?;
                // Revocation rows stay: a revoked authority never comes back.
                match parse_cid(&cid) {
                    Ok(c) => swept.push(c),
                    Err(e) => tracing::warn!(cid = %cid, error = %e, "swept an unparseable delegation row"),
                }
            }
            Ok(swept)
        })
        .await
    }

    async fn account_delegations(
        &self,
        issuers: Vec<String>,
        delegatees: Vec<String>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<(StoredDelegation, i64)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let list = |n: usize, from: usize| {
                if n == 0 {
                    // An empty set matches nothing.
                    "SELECT NULL WHERE 0".to_owned()
                } else {
                    (from..from + n)
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let (ni, nd) = (issuers.len(), delegatees.len());
            let base = ni + nd + 1;
            let sql = format!(
                "SELECT {DELEGATION_COLUMNS}, created_at FROM delegation
                 WHERE (issuer IN ({}) OR delegatee IN ({}))
                   AND (?{base} IS NULL OR created_at < ?{base}
                        OR (created_at = ?{base} AND cid > ?{}))
                 ORDER BY created_at DESC, cid ASC LIMIT ?{}",
                list(ni, 1),
                list(nd, ni + 1),
                base + 1,
                base + 2,
            );
            let mut values: Vec<rusqlite::types::Value> = issuers
                .into_iter()
                .chain(delegatees)
                .map(rusqlite::types::Value::Text)
                .collect();
            let (at, cid) = match after {
                Some((at, cid)) => (
                    rusqlite::types::Value::Integer(at),
                    rusqlite::types::Value::Text(cid),
                ),
                None => (rusqlite::types::Value::Null, rusqlite::types::Value::Null),
            };
            values.extend([at, cid, rusqlite::types::Value::Integer(limit)]);
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
                Ok((read_delegation(r)?, r.get::<_, i64>(9)?))
            })?;
            rows.map(|r| {
                let (raw, at) = r?;
                Ok((raw.decode()?, at))
            })
            .collect()
        })
        .await
    }

    async fn revocation(&self, cid: &Cid) -> StoreResult<Option<(String, i64)>> {
        let cid = cid.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT revoker, revoked_at FROM revocation WHERE cid = ?1",
                params![cid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn revoke(&self, cid: &Cid, revoker: &str, now_ms: i64) -> StoreResult<()> {
        let (cid, revoker) = (cid.to_string(), revoker.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO revocation (cid, revoker, revoked_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![cid, revoker, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoked(&self) -> StoreResult<Vec<Cid>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT cid FROM revocation")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| {
                let s = r?;
                parse_cid(&s).map_err(|e| StoreError::Corrupt(format!("revocation {s}: {e}")))
            })
            .collect()
        })
        .await
    }
}
