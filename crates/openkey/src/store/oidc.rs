//! Persistence of the OIDC provider: registered clients, the ID-token signing key, grants (one
//! per authorization: the family every code, access and refresh token of it belongs to),
//! authorization codes, tokens and remembered consent. Codes and tokens are kept as SHA-256
//! digests of 32 random bytes; client secrets likewise; the signing key only sealed.

use super::StoreResult;

/// A registered relying party.
#[derive(Clone, Debug)]
pub struct OidcClient {
    /// `client_id` (random, URL-safe).
    pub id: String,
    /// Shown on the consent screen.
    pub name: String,
    /// SHA-256 of the client secret; `None` for a public client (PKCE, no secret).
    pub secret_hash: Option<Vec<u8>>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// The ID-token signing key (sealed PKCS#8) and its public JWK.
#[derive(Clone, Debug)]
pub struct SigningKeyRow {
    /// JWK `kid`.
    pub kid: String,
    /// JOSE algorithm (`ES256`).
    pub alg: String,
    /// Random sealing context (base64url of 32 bytes).
    pub sealing_context: String,
    /// The sealed private key.
    pub sealed: Vec<u8>,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// Unix ms.
    pub created_at: i64,
}

/// One authorization of a client by a user: the token family.
#[derive(Clone, Debug)]
pub struct OidcGrant {
    /// Random id.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The authorization request's nonce.
    pub nonce: Option<String>,
    /// When the user authenticated (Unix s).
    pub auth_time: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, once revoked (code reuse, refresh-token reuse).
    pub revoked_at: Option<i64>,
}

/// An authorization code (single use), bound to its grant, redirect URI and PKCE challenge.
#[derive(Clone, Debug)]
pub struct OidcCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The grant it opens.
    pub grant_id: String,
    /// The exact redirect URI of the request.
    pub redirect_uri: String,
    /// S256 PKCE challenge, if the request carried one.
    pub code_challenge: Option<String>,
    /// Unix ms.
    pub expires_at: i64,
}

/// Access or refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Bearer access token (userinfo).
    Access,
    /// Refresh token (rotated on use).
    Refresh,
}

impl TokenKind {
    /// Database text.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// A token to store.
#[derive(Clone, Debug)]
pub struct OidcToken {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The family.
    pub grant_id: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// What redeeming a code found.
#[derive(Clone, Debug)]
pub enum CodeRedemption {
    /// No such code.
    Unknown,
    /// Used before: its grant (and every token of it) is now revoked.
    Reused,
    /// First use (now marked used): the code and its grant.
    Fresh(Box<(OidcCode, OidcGrant)>),
}

/// What presenting a refresh token found.
#[derive(Clone, Debug)]
pub enum Refresh {
    /// Unknown, expired, of another client, or its family was revoked.
    Invalid,
    /// Rotated before: the family is now revoked.
    Reused,
    /// Rotated now: the new tokens are stored; the grant they belong to.
    Rotated(OidcGrant),
}

/// OIDC persistence.
pub trait OidcStore {
    /// Registers a client; `Conflict` when the id exists.
    fn add_client(&self, client: &OidcClient) -> StoreResult<()>;
    /// A client by id.
    fn client(&self, id: &str) -> StoreResult<Option<OidcClient>>;
    /// All clients, oldest first.
    fn clients(&self) -> StoreResult<Vec<OidcClient>>;
    /// Removes a client and everything issued to it; `NotFound` when absent.
    fn remove_client(&self, id: &str) -> StoreResult<()>;

    /// The signing key, if generated.
    fn signing_key(&self) -> StoreResult<Option<SigningKeyRow>>;
    /// Stores the signing key unless one exists (then the existing one wins); returns the key
    /// in force.
    fn init_signing_key(&self, row: &SigningKeyRow) -> StoreResult<SigningKeyRow>;

    /// Stores a new grant and its authorization code together.
    fn create_code(&self, grant: &OidcGrant, code: &OidcCode) -> StoreResult<()>;
    /// Redeems a code at `now` (atomic): a second redemption revokes the grant. Expiry and the
    /// bindings are the caller's to check (the code is spent either way).
    fn redeem_code(&self, code_hash: &[u8], now: i64) -> StoreResult<CodeRedemption>;
    /// Stores tokens of a grant, unless the grant was revoked meanwhile (then `false`).
    fn issue_tokens(&self, grant_id: &str, tokens: &[OidcToken]) -> StoreResult<bool>;
    /// Rotates a refresh token of `client_id` at `now` (atomic): marks it used and stores
    /// `new_tokens` in its family; a used one revokes the family.
    fn rotate_refresh(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: i64,
        new_tokens: &[OidcToken],
    ) -> StoreResult<Refresh>;
    /// The live grant of an unexpired, unrevoked access token.
    fn access_grant(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<OidcGrant>>;
    /// Revokes a grant (every token of it stops working).
    fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()>;
    /// Deletes expired codes and tokens (and grants left with nothing live).
    fn purge_oidc(&self, now: i64) -> StoreResult<()>;

    /// The scopes a user consented to for a client, if remembered.
    fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<String>>;
    /// Remembers consent to `scope`.
    fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()>;
}
