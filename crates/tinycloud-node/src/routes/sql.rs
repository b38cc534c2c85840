//! The SQL invocation protocol: the reference's JSON requests (`query`, `execute`, `batch`,
//! `executeStatement` / `execute_statement`, `export`) and response shapes, each capability's
//! caveats checked on their own, quota and nonce durability around the write, then the
//! [`crate::sql`] service runs the statements.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::sql_caveat::{check_request, Authorized as CaveatOk, SqlCaveat, SqlRequest};

use crate::error::{ApiError, ApiResult};
use crate::sql::engine::{Exec, Outcome, Results, SqlError, Stmt};
use crate::sql::gate::{Grant, Level, Restrictions};
use crate::state::SharedState;
use crate::store::EventDraft;

/// Largest request body.
const MAX_BODY: usize = 1024 * 1024;

/// The status each SQL failure answers with.
impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Invalid(m) => ApiError::bad_request(m),
            SqlError::Denied(m) => ApiError::forbidden(m),
            SqlError::NotFound(_) => ApiError::not_found(e.to_string()),
            SqlError::Limit(m) => ApiError::new(StatusCode::PAYMENT_REQUIRED, m),
            SqlError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            SqlError::Timeout(_) => ApiError::bad_request(e.to_string()),
            SqlError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            SqlError::Internal(m) => {
                tracing::error!(error = %m, "sql engine failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal database error")
            }
        }
    }
}

/// What the delegation chain's caveats allow.
struct Constraints {
    caveats: Vec<SqlCaveat>,
    restrictions: Restrictions,
    read_only: bool,
}

fn constraints(caveats: &Caveats) -> ApiResult<Constraints> {
    let mut out = Constraints {
        caveats: Vec::new(),
        restrictions: Restrictions::default(),
        read_only: false,
    };
    if caveats.is_unconstrained() {
        return Ok(out);
    }
    for obj in caveats.objects() {
        match SqlCaveat::from_caveat(obj)
            .map_err(|e| ApiError::forbidden(format!("{} ({})", e, e.code())))?
        {
            Some(c) => {
                out.read_only |= c.read_only();
                if let Some(t) = c.tables() {
                    out.restrictions.tables = Some(t.to_vec());
                }
                if let Some(c) = c.columns() {
                    out.restrictions.columns = Some(c.to_vec());
                }
                out.caveats.push(c);
            }
            None => {
                return Err(ApiError::forbidden(
                    "the delegation carries caveats this node does not understand",
                ))
            }
        }
    }
    Ok(out)
}

/// One invoked SQL capability with the caveats its chain puts on it.
pub struct SqlCap<'a> {
    /// The capability.
    pub cap: &'a Capability,
    /// Its effective caveats.
    pub caveats: &'a Caveats,
}

/// Runs one SQL invocation. It may carry several capabilities (the reference JS SDK's
/// `execute(sql, params, {schema})` and its migrations send `write` and `schema` together):
/// all must name the same database, each was verified against its chain, and a statement may
/// do what one of them grants under that capability's own caveats.
pub async fn handle(
    state: &SharedState,
    invoker: &tinycloud_auth::did::Did,
    caps: &[SqlCap<'_>],
    body: Body,
) -> ApiResult<Response> {
    let first = caps
        .first()
        .ok_or_else(|| ApiError::bad_request("the invocation names no SQL capability"))?;
    let r = super::service_resource(first.cap, "sql")?;
    // The whole path names the database (the core's rule, the same one containment uses).
    let name = r
        .sql_database()
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .to_owned();
    let space = r.space().to_string();
    let mut levels = Vec::with_capacity(caps.len());
    for c in caps {
        let ri = super::service_resource(c.cap, "sql")?;
        let ni = ri
            .sql_database()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if ri.space().to_string() != space || ni != name {
            return Err(ApiError::bad_request(
                "the capabilities of one SQL invocation must all name the same database",
            ));
        }
        let ability = c.cap.ability.canonical();
        levels.push(Level::from_ability(ability.name()).ok_or_else(|| {
            ApiError::bad_request(format!("unknown SQL ability {}", c.cap.ability))
        })?);
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("SQL requests are limited to {MAX_BODY} bytes"),
        )
    })?;
    let req: SqlRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid SQL request: {e}")))?;

    // Each capability's caveats are checked on their own: one whose caveats refuse the request
    // grants nothing to it (they are never merged with another capability's). A named
    // statement runs under the one capability whose caveats define it.
    let mut grants = Vec::new();
    let mut bound = None;
    let mut refusal = None;
    let mut ability = None;
    for (c, level) in caps.iter().zip(levels) {
        let k = constraints(c.caveats)?;
        let mut binds = None;
        let mut refused = None;
        for caveat in &k.caveats {
            match check_request(caveat, &req) {
                Ok(CaveatOk::Statement(b)) => binds = Some(b),
                Ok(CaveatOk::Unchanged) => {}
                Err(e) => {
                    refused = Some(ApiError::forbidden(format!("{e} ({})", e.code())));
                    break;
                }
            }
        }
        if let Some(e) = refused {
            refusal.get_or_insert(e);
            continue;
        }
        let grant = Grant {
            level: if k.read_only { Level::Read } else { level },
            restrictions: k.restrictions,
        };
        if let Some(b) = binds {
            if bound.is_none() {
                bound = Some(b);
                grants = vec![grant.clone()];
                ability = Some(c.cap.ability.to_string());
            }
            continue;
        }
        if bound.is_none() {
            // Write events name the most privileged ability that took part.
            if grants.iter().all(|g: &Grant| g.level < grant.level) {
                ability = Some(c.cap.ability.to_string());
            }
            grants.push(grant);
        }
    }
    if grants.is_empty() {
        return Err(
            refusal.unwrap_or_else(|| ApiError::forbidden("no capability grants this request"))
        );
    }
    let ability = ability.unwrap_or_else(|| first.cap.ability.to_string());
    let mut exec = Exec {
        grants,
        max_rows: match &req {
            SqlRequest::Query { max_rows, .. } => max_rows.map(|m| m as usize),
            _ => None,
        },
        max_growth: None,
    };
    // Any request signed with a write-class ability may write (even as a `query`): check quota.
    // The remainder also caps what the write itself may add (enforced inside SQLite).
    let writes = !exec.read_only() && !matches!(req, SqlRequest::Export);
    // Held from the check to the end of the write: concurrent writes to the space's other
    // databases (or its KV) cannot spend the same remainder.
    let mut _quota_turn = None;
    if writes && state.limit_for(&space).is_some() {
        _quota_turn = Some(state.quota_locks.lock(&space).await);
    }
    if writes {
        exec.max_growth = state.quota_room(&space).await?;
    }
    let _permit = state
        .sql
        .permits
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SQL service stopped"))?;
    let st = state.clone();
    let (sp, db) = (space.clone(), name.clone());
    let (response, written) =
        tokio::task::spawn_blocking(move || run_durably(&st, writes, &sp, &db, req, bound, &exec))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("SQL worker failed: {e}"),
                )
            })??;
    // Log one write event per table the statement changed (path `<db>/<table>`).
    for table in written {
        state
            .index
            .append_event(EventDraft {
                space: space.clone(),
                service: "sql".into(),
                ability: ability.clone(),
                path: tinycloud_auth::resource::sql_event_path(&name, &table),
                actor: invoker.to_string(),
                timestamp_ms: crate::clock::now().as_millis(),
            })
            .await?;
    }
    Ok(response)
}

/// [`run`], after making the invocation's nonce durable when the request may write: a write
/// that survives a power loss must never be replayable (local databases commit outside the
/// index, whose commits do this for KV and shipped SQL).
fn run_durably(
    state: &SharedState,
    writes: bool,
    space: &str,
    name: &str,
    req: SqlRequest,
    bound: Option<tinycloud_auth::sql_caveat::BoundStatement>,
    exec: &Exec,
) -> ApiResult<(Response, Vec<String>)> {
    if writes {
        state.index.sync_nonces()?;
    }
    run(state, space, name, req, bound, exec)
}

fn run(
    state: &SharedState,
    space: &str,
    name: &str,
    req: SqlRequest,
    bound: Option<tinycloud_auth::sql_caveat::BoundStatement>,
    exec: &Exec,
) -> ApiResult<(Response, Vec<String>)> {
    let dbs = &state.sql.dbs;
    let json = |(o, t): (Outcome, Vec<String>)| (Json(o).into_response(), t);
    Ok(match req {
        SqlRequest::Query { sql, params, .. } => {
            json(dbs.run(space, name, &Stmt { sql, params }, exec)?)
        }
        SqlRequest::Execute {
            sql,
            params,
            schema,
        } => {
            let mut written = Vec::new();
            for ddl in schema.unwrap_or_default() {
                let (_, t) = dbs.run(
                    space,
                    name,
                    &Stmt {
                        sql: ddl,
                        params: vec![],
                    },
                    exec,
                )?;
                written.extend(t);
            }
            let (resp, t) = json(dbs.run(space, name, &Stmt { sql, params }, exec)?);
            written.extend(t);
            (resp, written)
        }
        SqlRequest::Batch { statements } => {
            let stmts: Vec<Stmt> = statements
                .into_iter()
                .map(|s| Stmt {
                    sql: s.sql,
                    params: s.params,
                })
                .collect();
            if stmts.is_empty() {
                return Err(ApiError::bad_request(
                    "a batch needs at least one statement",
                ));
            }
            let (outcomes, tables) = dbs.batch(space, name, &stmts, exec)?;
            (Json(Results { results: &outcomes }).into_response(), tables)
        }
        SqlRequest::ExecuteStatement {
            name: stmt_name, ..
        } => {
            let b = bound.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "no named statement {stmt_name:?} is defined by the delegation's caveats"
                ))
            })?;
            json(dbs.run(
                space,
                name,
                &Stmt {
                    sql: b.sql,
                    params: b.params,
                },
                exec,
            )?)
        }
        SqlRequest::Export => {
            let bytes = dbs.export(space, name)?;
            (
                ([(header::CONTENT_TYPE, "application/x-sqlite3")], bytes).into_response(),
                vec![],
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_local_sql_writes_nonce_is_durable_before_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.storage.datadir = dir.path().to_path_buf();
        let state = crate::server::build_state(config).await.unwrap();
        let space = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";
        let exec = || Exec::single(Level::Admin, Default::default(), false);
        let req = |sql: &str| -> SqlRequest {
            serde_json::from_value(serde_json::json!({"action": "execute", "sql": sql})).unwrap()
        };
        for (i, sql) in ["CREATE TABLE t (v TEXT)", "INSERT INTO t VALUES ('x')"]
            .into_iter()
            .enumerate()
        {
            // The invocation's single use is consumed (written, not yet synced) …
            assert!(state
                .index
                .consume_nonce([i as u8; 32], i64::MAX, 0)
                .await
                .unwrap());
            assert!(state.index.nonces_pending().unwrap());
            // … and once its SQL write has committed, the nonce is on disk too.
            let st = state.clone();
            let (_, written) = tokio::task::spawn_blocking(move || {
                run_durably(&st, true, space, "app", req(sql), None, &exec())
            })
            .await
            .unwrap()
            .unwrap();
            if i == 1 {
                assert_eq!(written, ["t"], "the insert committed");
            }
            assert!(
                !state.index.nonces_pending().unwrap(),
                "the write committed before its nonce was durable"
            );
        }
    }
}
