//! [`Authorized`]: the extractor through which an authenticated route receives its
//! invocation. Axum runs it before the handler body (and before the request body is read), so
//! a handler that takes an `Authorized` argument only runs once the `Authorization` header has
//! passed the one door ([`crate::auth::Authorizer::authorize`]: signature, time window,
//! lifetime cap, chain, revocation, enforced caveats, and the invocation's single use). No
//! storage, network or body-dependent lookup can precede it; what the handler checks after
//! (that the verified invocation grants the ability on the resource its body names) is a pure
//! check on the invocation.
//!
//! Routes whose authority is decided by what they look up take [`Signed`] instead: the
//! invocation's signature, time window and lifetime cap verified (no store read), the chain
//! check and the single use left to the handler, which must still pass them through the door
//! before any effect: `/revoke`, `/delegation/status` (whose permission depends on the named
//! delegation), `/delegation/query`, `/invoke` (a decrypt takes the audited path) and the
//! encryption decrypt (a refused decrypt by the network's own principals is recorded).
//! `/delegate` takes [`VerifiedDelegation`]: its token is a delegation, verified (signature,
//! enforced caveats and chain) by `Authorizer::check_delegation` before the handler runs.
//!
//! The `Authorization` header is read only here (`authorization` is private to this module).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::resource::Resource;
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{Delegation, Invocation};

use crate::auth::AuthorizedInvocation;
use crate::clock::now;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// A verified, chain-validated, consumed invocation, and the time it was checked at. Only
/// this module can make one.
#[derive(Debug)]
pub struct Authorized {
    authz: AuthorizedInvocation,
    at: Timestamp,
}

impl Authorized {
    /// The verified invocation.
    pub fn invocation(&self) -> &Invocation {
        &self.authz.invocation
    }

    /// The invocation with its effective caveats.
    pub fn inner(&self) -> &AuthorizedInvocation {
        &self.authz
    }

    /// The time the invocation was checked at (use it for everything the request decides).
    pub fn at(&self) -> Timestamp {
        self.at
    }

    /// 401 unless the invocation grants `ability` on `resource`. `shown` is what the refusal
    /// names (so a caller is not told more than it asked about).
    pub fn require(
        &self,
        resource: &Resource,
        ability: &Ability,
        shown: &str,
    ) -> Result<(), ApiError> {
        if self.authz.invocation.info().grants(resource, ability) {
            Ok(())
        } else {
            Err(ApiError::unauthorized_because(
                crate::telemetry::reason::UNAUTHORIZED_ACTION,
                format!("Unauthorized Action: {shown} / {ability}"),
            ))
        }
    }
}

/// An invocation whose signature, time window and lifetime cap were verified (nothing looked
/// up); its chain and single use are still to be checked by the handler, through the door.
#[derive(Debug)]
pub struct Signed {
    invocation: Invocation,
    at: Timestamp,
}

impl Signed {
    /// The invocation, for the door's remaining checks.
    pub fn into_invocation(self) -> Invocation {
        self.invocation
    }

    /// The time the invocation was checked at.
    pub fn at(&self) -> Timestamp {
        self.at
    }
}

impl FromRequestParts<SharedState> for Signed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let header = authorization(&parts.headers, state.config.limits.max_token_bytes)?;
        let at = now();
        let invocation = state.auth.decode_invocation(header, at)?;
        Ok(Signed { invocation, at })
    }
}

impl FromRequestParts<SharedState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let header = authorization(&parts.headers, state.config.limits.max_token_bytes)?;
        let at = now();
        let authz = state.auth.authorize(header, at).await?;
        Ok(Authorized { authz, at })
    }
}

/// A delegation (the `Authorization` header of `/delegate`) whose signature, caveats and chain
/// were verified against the stored graph; not stored yet.
#[derive(Debug)]
pub struct VerifiedDelegation {
    delegation: Delegation,
    at: Timestamp,
}

impl VerifiedDelegation {
    /// The verified delegation.
    pub fn delegation(&self) -> &Delegation {
        &self.delegation
    }

    /// The time it was checked at.
    pub fn at(&self) -> Timestamp {
        self.at
    }
}

impl FromRequestParts<SharedState> for VerifiedDelegation {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let header = authorization(&parts.headers, state.config.limits.max_token_bytes)?;
        let at = now();
        let delegation = state.auth.check_delegation(header, at).await?;
        Ok(VerifiedDelegation { delegation, at })
    }
}

/// The `Authorization` header value, or 401 (400 when oversized or not ASCII).
fn authorization(headers: &HeaderMap, max: usize) -> ApiResult<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized_because(
                crate::telemetry::reason::MISSING,
                "missing Authorization header",
            )
        })?;
    if value.len() > max {
        return Err(ApiError::bad_request(format!(
            "Authorization header larger than {max} bytes"
        )));
    }
    value
        .to_str()
        .map_err(|_| ApiError::bad_request("Authorization header is not ASCII"))
}

#[cfg(test)]
mod tests {
    /// The route modules whose operations take `Authorization`.
    const SOURCES: &[(&str, &str)] = &[
        ("admin.rs", include_str!("admin.rs")),
        ("delegation.rs", include_str!("delegation.rs")),
        ("delegation/query.rs", include_str!("delegation/query.rs")),
        ("encryption.rs", include_str!("encryption.rs")),
        ("hooks.rs", include_str!("hooks.rs")),
        ("invoke.rs", include_str!("invoke.rs")),
        ("signed.rs", include_str!("signed.rs")),
    ];

    const DOORS: &[&str] = &[
        ": Authorized",
        ": Signed",
        ": VerifiedDelegation",
        ": Operator",
    ];

    /// Every documented operation that takes `Authorization` gets its token through one of the
    /// doors, as its first extractor after the state: axum runs extractors in order, so nothing
    /// of the request (path, query, body) is read and nothing is looked up before it.
    #[test]
    fn every_authenticated_handler_starts_with_a_door() {
        let mut checked = 0;
        for (file, src) in SOURCES {
            for block in src.split("#[utoipa::path(").skip(1) {
                let Some(at) = block.find("pub async fn ") else {
                    panic!("{file}: a described operation without a handler");
                };
                if !block[..at].contains("\"Authorization\" = String, Header") {
                    continue;
                }
                let sig = &block[at..];
                let name = sig["pub async fn ".len()..]
                    .split('(')
                    .next()
                    .unwrap_or_default();
                let args = sig.split(") ->").next().unwrap_or_default();
                let first = args
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .find(|l| !l.starts_with("State("));
                assert!(
                    first.is_some_and(|l| DOORS.iter().any(|d| l.contains(d))),
                    "{file}: {name} must take one of {DOORS:?} first, takes {first:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(
            checked, 20,
            "the 15 invocation routes and the 5 admin routes"
        );
    }
}
