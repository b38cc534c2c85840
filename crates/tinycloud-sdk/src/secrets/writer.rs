//! Who wrote a stored secret, from its envelope alone: the writer signature, its proof and
//! the signed metadata (version, write time), plus the associated data that binds a value to
//! the location it is stored at.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{Resource, SpaceId};

use crate::encryption::{Envelope, WriterCheck};

/// Who wrote a stored secret, from the envelope's writer signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// One of the owner's own session keys (known to this client, see
    /// [`TinyCloud::owner_session_keys`]; its proof is the owner's delegation to that key,
    /// granting `kv/put` there): the owner.
    Owner(Did),
    /// Another key, e.g. a delegate or co-writer holding write access (even one granted by
    /// the owner's wallet), or an owner session key this client does not know (another
    /// device's): its `did:key`. Also a key whose owner proof the node does not know.
    Other(Did),
    /// A key acting under the owner's proof, but the node reports that proof (or an ancestor)
    /// revoked: a retired or stolen session key. Not the owner.
    Revoked(Did),
    /// A key acting under the owner's proof, but the envelope's signed write time is outside
    /// the proof's validity window (or missing): written before the proof began or after it
    /// expired. Not the owner.
    Expired(Did),
    /// No writer signature (stored before writers were recorded, or by another client).
    Unsigned,
    /// A signature that does not verify: the envelope was altered or forged.
    Invalid,
}

impl Writer {
    /// Whether the vault's owner wrote it.
    pub fn is_owner(&self) -> bool {
        matches!(self, Writer::Owner(_))
    }

    /// The writer's DID, when the signature verifies.
    pub fn did(&self) -> Option<&Did> {
        match self {
            Writer::Owner(d) | Writer::Other(d) | Writer::Revoked(d) | Writer::Expired(d) => {
                Some(d)
            }
            Writer::Unsigned | Writer::Invalid => None,
        }
    }

    /// `owner`, `other`, `revoked`, `expired`, `unsigned` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            Writer::Owner(_) => "owner",
            Writer::Other(_) => "other",
            Writer::Revoked(_) => "revoked",
            Writer::Expired(_) => "expired",
            Writer::Unsigned => "unsigned",
            Writer::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Writer::Owner(d) => write!(f, "owner ({d})"),
            Writer::Other(d) => write!(f, "{d} (not the owner)"),
            Writer::Revoked(d) => write!(f, "{d} (REVOKED owner session: not the owner)"),
            Writer::Expired(d) => write!(
                f,
                "{d} (written outside its owner session's validity: not the owner)"
            ),
            Writer::Unsigned => f.write_str("unknown (no writer signature)"),
            Writer::Invalid => f.write_str("INVALID writer signature"),
        }
    }
}

/// Largest stored envelope read (a 1 MiB value, base64, plus the writer's proof).
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// Signed metadata: the secret's version (plain, so `ls` shows it without a decrypt).
pub const META_VERSION: &str = "x-vault-secret-version";
/// Signed metadata: when this envelope was written (RFC 3339), checked against the writer's
/// proof.
pub const META_WRITTEN_AT: &str = "x-vault-written-at";

/// The signed version recorded in `env`'s metadata, if any.
pub fn signed_version(env: &Envelope) -> Option<u64> {
    env.metadata.get(META_VERSION).and_then(Value::as_u64)
}

/// The signed write time recorded in `env`'s metadata, if any.
pub fn signed_written_at(env: &Envelope) -> Option<&str> {
    env.metadata.get(META_WRITTEN_AT).and_then(Value::as_str)
}

/// Who wrote `env`, stored at `path` of `space`, judged from the envelope alone (no I/O): the
/// owner if the writer signature verifies, the envelope's signed `aad` names this location,
/// the signing key is one of `owner_keys` (the owner's own session keys, as this client knows
/// them: [`TinyCloud::owner_session_keys`]), its proof is a delegation from the space's owner
/// to that key covering `kv/put` on the path, and `written_at` (the signed write time) lies
/// within the proof's validity window. Any other key is [`Writer::Other`], even one holding an
/// owner-signed `kv/put` grant (a co-writer granted by the owner's wallet is not the owner).
/// Whether the proof has since been revoked needs the node: [`Secrets::writer`] and
/// [`Secrets::read`] ask it.
pub fn writer_of(
    env: &Envelope,
    space: &SpaceId,
    path: &str,
    written_at: Option<&str>,
    owner_keys: &[Did],
) -> Writer {
    match env.check_writer() {
        WriterCheck::Unsigned => Writer::Unsigned,
        WriterCheck::Invalid => Writer::Invalid,
        WriterCheck::Signed { key, proof } => {
            // Moved from elsewhere: the location is signed, so this is not that write.
            if STANDARD.decode(&env.aad).ok().as_deref() != Some(aad(space, path).as_slice()) {
                return Writer::Invalid;
            }
            // Deny by default: only the owner's own session keys speak for the owner.
            if !owner_keys.contains(&key) {
                return Writer::Other(key);
            }
            let put = "tinycloud.kv/put".parse::<tinycloud_auth::ability::Ability>();
            let resource = format!("{space}/kv/{path}").parse::<Resource>();
            let Some(d) = proof.filter(|d| {
                matches!((&put, &resource), (Ok(put), Ok(resource))
                    if &d.info().issuer == space.owner() && d.info().grants(resource, put))
            }) else {
                return Writer::Other(key);
            };
            let Some(at) = written_at.and_then(tinycloud_auth::timestamp::Timestamp::parse_rfc3339)
            else {
                return Writer::Expired(key);
            };
            let info = d.info();
            // A SIWE sign-in without `notBefore` starts when it was issued.
            let start = info.not_before.or(match d.token() {
                tinycloud_auth::token::DelegationToken::Cacao(c) => Some(
                    tinycloud_auth::timestamp::Timestamp::from(c.message().issued_at.datetime()),
                ),
                _ => None,
            });
            if start.is_some_and(|n| at < n) || info.expiration.is_some_and(|e| at >= e) {
                return Writer::Expired(key);
            }
            Writer::Owner(space.owner().clone())
        }
    }
}

/// The CID of the proof `env`'s writer acted under, when the writer signature verifies.
pub(super) fn proof_cid(env: &Envelope) -> Option<Cid> {
    match env.check_writer() {
        WriterCheck::Signed { proof: Some(d), .. } => Some(d.info().cid),
        _ => None,
    }
}

/// The associated data binding a vault value to where it is stored.
pub fn aad(space: &SpaceId, path: &str) -> Vec<u8> {
    // Binds the ciphertext to where it is stored: moving it elsewhere makes it undecryptable.
    format!(
        "tinycloud.vault:{space}:{}",
        path.trim_start_matches("vault/")
    )
    .into_bytes()
}
