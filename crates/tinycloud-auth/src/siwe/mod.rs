//! Sign-In with Ethereum (EIP-4361) messages.
//!
//! * [`Message`] parses ([`FromStr`]) the exact EIP-4361 text and renders it
//!   back ([`fmt::Display`]) byte-for-byte, so a parsed message can be
//!   re-hashed for signature checks and embedded in CACAO without drift.
//! * [`MessageFields`] is the loose, JSON-friendly (camelCase) field bag used by
//!   SDKs; [`Message::try_from`] validates it.
//! * [`Message::verify`] checks domain binding, nonce, validity window and the
//!   EIP-191 signature.
//!
//! This module does no I/O and never reads the system clock: time checks use
//! the instant the caller passes in. Contract-wallet (EIP-1271) signatures need
//! a chain RPC and are out of scope; only EOA (`personal_sign`) signatures are
//! verified.

pub mod abnf;
mod error;
mod parser;
mod timestamp;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::eth::{self, EthAddress};

pub use error::{SiweError, TimeField};
pub use eth::parse_hex_signature;
pub use timestamp::{TimeStamp, TimeStampError};

/// Text that ends the first line, after `[scheme://]domain`.
pub const HEADER_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

/// The only message version defined by EIP-4361.
pub const VERSION: u8 = 1;

/// A validated EIP-4361 message.
///
/// Fields are public for convenience; a message built by hand should be
/// checked with [`Message::validate`] before it is displayed or signed.
/// `Option` fields distinguish "absent" from "present but empty": for example
/// `resources: Some(vec![])` renders a bare `Resources:` line, `None` renders
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Optional URI scheme written before the domain (`https://example.com ...`).
    pub scheme: Option<String>,
    /// RFC 3986 authority requesting the sign-in.
    pub domain: String,
    /// The signing account.
    pub address: EthAddress,
    /// Human-readable assertion; `Some("")` is an explicitly empty statement.
    pub statement: Option<String>,
    /// RFC 3986 URI that is the subject of the signing.
    pub uri: String,
    /// Message version; always [`VERSION`].
    pub version: u8,
    /// EIP-155 chain ID.
    pub chain_id: u64,
    /// At least 8 alphanumeric characters chosen by the relying party.
    pub nonce: String,
    /// When the message was issued.
    pub issued_at: TimeStamp,
    /// The message is invalid at and after this instant.
    pub expiration_time: Option<TimeStamp>,
    /// The message is invalid before this instant.
    pub not_before: Option<TimeStamp>,
    /// System-specific identifier (`*pchar`, may be empty).
    pub request_id: Option<String>,
    /// RFC 3986 URIs the user wishes to have resolved.
    pub resources: Option<Vec<String>>,
}

/// Unvalidated message fields, serialized with the camelCase names used by the
/// JavaScript `siwe` library (`chainId`, `issuedAt`, ...).
///
/// Every field is optional so that a missing required field is reported by
/// [`Message::try_from`] as [`SiweError::MissingField`] rather than by serde.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageFields {
    /// See [`Message::scheme`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// See [`Message::domain`]. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// EIP-55 address. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// See [`Message::statement`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// See [`Message::uri`]. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Must be `"1"`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// See [`Message::chain_id`]. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// See [`Message::nonce`]. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// RFC 3339 text. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    /// RFC 3339 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    /// RFC 3339 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// See [`Message::request_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// See [`Message::resources`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
}

/// What [`Message::verify`] checks besides the signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerificationOpts {
    /// If set, the message's domain must equal this (domain binding).
    pub domain: Option<String>,
    /// If set, the message's nonce must equal this.
    pub nonce: Option<String>,
    /// If set, the validity window is checked against this instant. The library
    /// never reads the clock: pass the current time here, or the time check is
    /// skipped.
    pub timestamp: Option<OffsetDateTime>,
}

impl Message {
    /// Checks every field against the EIP-4361 grammar (the checks [`FromStr`]
    /// and [`Message::try_from`] perform).
    pub fn validate(&self) -> Result<(), SiweError> {
        validate_scheme(self.scheme.as_deref())?;
        validate_domain(&self.domain)?;
        validate_statement(self.statement.as_deref())?;
        validate_uri(&self.uri)?;
        if self.version != VERSION {
            return Err(SiweError::UnsupportedVersion(self.version.to_string()));
        }
        validate_nonce(&self.nonce)?;
        validate_request_id(self.request_id.as_deref())?;
        validate_resources(self.resources.as_deref())
    }

    /// The exact bytes that are signed: the UTF-8 message text.
    pub fn to_signing_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The EIP-191 (`personal_sign`) hash of the message text.
    pub fn eip191_hash(&self) -> [u8; 32] {
        eth::eip191_hash(&self.to_signing_bytes())
    }

    /// Checks that `sig` (65-byte `r || s || v`) is an EIP-191 signature of
    /// this message by [`Message::address`].
    pub fn verify_eip191(&self, sig: &[u8]) -> Result<(), SiweError> {
        let recovered = eth::recover_eip191(&self.to_signing_bytes(), sig)?;
        if recovered == self.address {
            Ok(())
        } else {
            Err(SiweError::AddressMismatch {
                expected: self.address,
                recovered,
            })
        }
    }

    /// Checks the validity window: `not_before <= now < expiration_time`, each
    /// bound only when present.
    pub fn check_time(&self, now: OffsetDateTime) -> Result<(), SiweError> {
        if let Some(nbf) = &self.not_before {
            if now < nbf.datetime() {
                return Err(SiweError::NotYetValid(nbf.to_string()));
            }
        }
        if let Some(exp) = &self.expiration_time {
            if now >= exp.datetime() {
                return Err(SiweError::Expired(exp.to_string()));
            }
        }
        Ok(())
    }

    /// Full verification: domain binding and nonce (if requested in `opts`),
    /// validity window (if `opts.timestamp` is set — the library does not read
    /// the clock), then the EIP-191 signature.
    pub fn verify(&self, sig: &[u8], opts: &VerificationOpts) -> Result<(), SiweError> {
        self.check_bindings(opts)?;
        if let Some(now) = opts.timestamp {
            self.check_time(now)?;
        }
        self.verify_eip191(sig)
    }

    /// Checks the domain binding and nonce requested in `opts`.
    fn check_bindings(&self, opts: &VerificationOpts) -> Result<(), SiweError> {
        if let Some(expected) = opts.domain.as_ref().filter(|d| **d != self.domain) {
            return Err(SiweError::DomainMismatch {
                expected: expected.clone(),
                found: self.domain.clone(),
            });
        }
        if let Some(expected) = opts.nonce.as_ref().filter(|n| **n != self.nonce) {
            return Err(SiweError::NonceMismatch {
                expected: expected.clone(),
                found: self.nonce.clone(),
            });
        }
        Ok(())
    }

    /// The message as loose fields (the inverse of [`Message::try_from`]).
    pub fn to_fields(&self) -> MessageFields {
        MessageFields {
            scheme: self.scheme.clone(),
            domain: Some(self.domain.clone()),
            address: Some(self.address.to_eip55()),
            statement: self.statement.clone(),
            uri: Some(self.uri.clone()),
            version: Some(self.version.to_string()),
            chain_id: Some(self.chain_id),
            nonce: Some(self.nonce.clone()),
            issued_at: Some(self.issued_at.to_string()),
            expiration_time: self.expiration_time.as_ref().map(ToString::to_string),
            not_before: self.not_before.as_ref().map(ToString::to_string),
            request_id: self.request_id.clone(),
            resources: self.resources.clone(),
        }
    }
}

impl FromStr for Message {
    type Err = SiweError;

    /// Parses the exact EIP-4361 text (LF line endings, fields in order, no
    /// trailing newline) and validates every field.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parser::parse(s)
    }
}

impl TryFrom<MessageFields> for Message {
    type Error = SiweError;

    fn try_from(fields: MessageFields) -> Result<Self, Self::Error> {
        let address = required(fields.address, "address")?;
        let version = required(fields.version, "version")?;
        let issued_at = required(fields.issued_at, "issuedAt")?;
        let message = Message {
            scheme: fields.scheme,
            domain: required(fields.domain, "domain")?,
            address: EthAddress::parse_checksummed(&address)?,
            statement: fields.statement,
            uri: required(fields.uri, "uri")?,
            version: parse_version(&version)?,
            chain_id: required(fields.chain_id, "chainId")?,
            nonce: required(fields.nonce, "nonce")?,
            issued_at: parse_time(&issued_at, TimeField::IssuedAt)?,
            expiration_time: optional_time(fields.expiration_time, TimeField::ExpirationTime)?,
            not_before: optional_time(fields.not_before, TimeField::NotBefore)?,
            request_id: fields.request_id,
            resources: fields.resources,
        };
        message.validate()?;
        Ok(message)
    }
}

impl fmt::Display for Message {
    /// Renders the EIP-4361 text (no trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        writeln!(f, "{}{HEADER_SUFFIX}", self.domain)?;
        writeln!(f, "{}", self.address)?;
        writeln!(f)?;
        if let Some(statement) = &self.statement {
            writeln!(f, "{statement}")?;
        }
        writeln!(f)?;
        writeln!(f, "URI: {}", self.uri)?;
        writeln!(f, "Version: {}", self.version)?;
        writeln!(f, "Chain ID: {}", self.chain_id)?;
        writeln!(f, "Nonce: {}", self.nonce)?;
        write!(f, "Issued At: {}", self.issued_at)?;
        if let Some(exp) = &self.expiration_time {
            write!(f, "\nExpiration Time: {exp}")?;
        }
        if let Some(nbf) = &self.not_before {
            write!(f, "\nNot Before: {nbf}")?;
        }
        if let Some(request_id) = &self.request_id {
            write!(f, "\nRequest ID: {request_id}")?;
        }
        if let Some(resources) = &self.resources {
            f.write_str("\nResources:")?;
            for resource in resources {
                write!(f, "\n- {resource}")?;
            }
        }
        Ok(())
    }
}

fn required<T>(value: Option<T>, name: &'static str) -> Result<T, SiweError> {
    value.ok_or(SiweError::MissingField(name))
}

fn optional_time(value: Option<String>, field: TimeField) -> Result<Option<TimeStamp>, SiweError> {
    value.map(|v| parse_time(&v, field)).transpose()
}

fn parse_time(value: &str, field: TimeField) -> Result<TimeStamp, SiweError> {
    TimeStamp::parse(value).map_err(|source| SiweError::InvalidTimeStamp { field, source })
}

fn parse_version(value: &str) -> Result<u8, SiweError> {
    match value {
        "1" => Ok(VERSION),
        _ => Err(SiweError::UnsupportedVersion(value.to_owned())),
    }
}

/// `chain-id = 1*DIGIT`, additionally canonical (no leading zeros) so that the
/// text round-trips, and within `u64`.
fn parse_chain_id(value: &str) -> Result<u64, SiweError> {
    let invalid = || SiweError::InvalidChainId(value.to_owned());
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if !canonical {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

fn validate_scheme(scheme: Option<&str>) -> Result<(), SiweError> {
    match scheme {
        Some(s) if !abnf::is_scheme(s) => Err(SiweError::InvalidScheme(s.to_owned())),
        _ => Ok(()),
    }
}

fn validate_domain(domain: &str) -> Result<(), SiweError> {
    if abnf::is_authority(domain) {
        Ok(())
    } else {
        Err(SiweError::InvalidDomain(domain.to_owned()))
    }
}

fn validate_statement(statement: Option<&str>) -> Result<(), SiweError> {
    match statement {
        Some(s) if !abnf::is_statement(s) => Err(SiweError::InvalidStatement(s.to_owned())),
        _ => Ok(()),
    }
}

fn validate_uri(uri: &str) -> Result<(), SiweError> {
    if abnf::is_uri(uri) {
        Ok(())
    } else {
        Err(SiweError::InvalidUri(uri.to_owned()))
    }
}

fn validate_nonce(nonce: &str) -> Result<(), SiweError> {
    if abnf::is_nonce(nonce) {
        Ok(())
    } else {
        Err(SiweError::InvalidNonce(nonce.to_owned()))
    }
}

fn validate_request_id(request_id: Option<&str>) -> Result<(), SiweError> {
    match request_id {
        Some(r) if !abnf::is_request_id(r) => Err(SiweError::InvalidRequestId(r.to_owned())),
        _ => Ok(()),
    }
}

fn validate_resources(resources: Option<&[String]>) -> Result<(), SiweError> {
    for (index, resource) in resources.unwrap_or_default().iter().enumerate() {
        if !abnf::is_uri(resource) {
            return Err(SiweError::InvalidResource {
                index,
                value: resource.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
