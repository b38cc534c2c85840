//! The ID-token signing key: one ES256 (P-256) key, generated on first use, sealed at rest
//! through the configured [`crate::keys::KeySealer`] (bound to its `kid`), unsealed once per
//! process into a [`Signer`]. The JWKS publishes its public half.

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rand::RngCore;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::error::OAuthError;
use crate::clock::now_ms;
use crate::keys::SealContext;
use crate::state::AppState;
use crate::store::SigningKeyRow;

/// The sealing "owner" of the signing key (sealed blobs are bound to it and the kid).
const SEAL_OWNER: &str = "openkey/oidc-signing-key";

/// A ready signing key.
pub struct Signer {
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

/// The process's signer, made on first use (shared by the routes of one router).
pub type SignerCell = Arc<OnceCell<Arc<Signer>>>;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn public_jwk(kid: &str, secret: &p256::SecretKey) -> Result<Jwk, OAuthError> {
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(OAuthError::server("P-256 point without coordinates"));
    };
    Ok(Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::ES256),
            key_id: Some(kid.to_string()),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: b64(x),
            y: b64(y),
        }),
    })
}

fn generate(state: &AppState) -> Result<SigningKeyRow, OAuthError> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = secret.to_pkcs8_der().map_err(OAuthError::server)?;
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let kid = b64(&raw);
    let mut ctx = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut ctx);
    let sealing_context = b64(&ctx);
    let sealed = state
        .keys
        .sealer()
        .seal(
            &SealContext {
                sealing_context: &sealing_context,
                user_id: SEAL_OWNER,
                address: &kid,
            },
            der.as_bytes(),
        )
        .map_err(OAuthError::server)?;
    let jwk = public_jwk(&kid, &secret)?;
    Ok(SigningKeyRow {
        public_jwk: serde_json::to_string(&jwk).map_err(OAuthError::server)?,
        kid,
        alg: "ES256".into(),
        sealing_context,
        sealed,
        created_at: now_ms(),
    })
}

fn load(state: &AppState) -> Result<Signer, OAuthError> {
    let row = match state.store.signing_key()? {
        Some(row) => row,
        None => state.store.init_signing_key(&generate(state)?)?,
    };
    if row.alg != "ES256" {
        return Err(OAuthError::server(format!(
            "unsupported signing algorithm {}",
            row.alg
        )));
    }
    let der = state
        .keys
        .sealer()
        .unseal(
            &SealContext {
                sealing_context: &row.sealing_context,
                user_id: SEAL_OWNER,
                address: &row.kid,
            },
            &row.sealed,
        )
        .map_err(OAuthError::server)?;
    let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(OAuthError::server)?;
    Ok(Signer {
        key: EncodingKey::from_ec_der(&der),
        kid: row.kid,
        jwk,
    })
}

/// The signer of this process (generating and sealing the key on the very first use).
pub async fn signer(cell: &SignerCell, state: &AppState) -> Result<Arc<Signer>, OAuthError> {
    cell.get_or_try_init(|| async { load(state).map(Arc::new) })
        .await
        .cloned()
}

impl Signer {
    /// The public JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A compact JWS over `claims` (`alg` ES256, this `kid`, `typ` JWT).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, OAuthError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(OAuthError::server)
    }
}
