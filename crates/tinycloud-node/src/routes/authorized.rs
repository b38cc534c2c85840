//! [`Authorized`]: the extractor through which an authenticated route receives its
//! invocation. Axum runs it before the handler body (and before the request body is read), so
//! a handler that takes an `Authorized` argument only runs once the `Authorization` header has
//! passed the one door ([`crate::auth::Authorizer::authorize`]: signature, time window,
//! lifetime cap, chain, revocation, enforced caveats, and the invocation's single use). No
//! storage, network or body-dependent lookup can precede it; what the handler checks after
//! (that the verified invocation grants the ability on the resource its body names) is a pure
//! check on the invocation.
//!
//! Routes whose token is not a plain invocation keep their own flow, each verifying before it
//! looks anything up: `/delegate` (the token is a delegation), `/revoke`, `/delegation/status`
//! and `/delegation/query` (whose permission depends on the named delegation, so they verify
//! the signature first and consume the single use only once allowed), `/invoke` (a decrypt
//! takes the audited path) and the encryption decrypt (a refused decrypt by the network's own
//! principals is recorded).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::resource::Resource;
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::Invocation;

use crate::auth::AuthorizedInvocation;
use crate::error::ApiError;
use crate::state::{now, SharedState};

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

impl FromRequestParts<SharedState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let header = super::authorization(&parts.headers, state.config.limits.max_token_bytes)?;
        let at = now();
        let authz = state.auth.authorize(header, at).await?;
        Ok(Authorized { authz, at })
    }
}
