//! The error type for SIWE parsing, construction and verification.

use std::fmt;

use crate::eth::{AddressError, EthAddress, SignatureError};

use super::timestamp::TimeStampError;

/// Which timestamp field of a message an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// `Issued At`
    IssuedAt,
    /// `Expiration Time`
    ExpirationTime,
    /// `Not Before`
    NotBefore,
}

impl fmt::Display for TimeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IssuedAt => "issued-at",
            Self::ExpirationTime => "expiration-time",
            Self::NotBefore => "not-before",
        })
    }
}

/// Everything that can go wrong with a SIWE (EIP-4361) message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiweError {
    // ---- message text structure -------------------------------------------
    /// Line `line` (1-based) is missing or does not have the expected form.
    #[error("line {line}: expected {expected}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// What the grammar requires at this point.
        expected: &'static str,
    },
    /// Line `line` (1-based) follows a complete message (wrong order, unknown
    /// field or trailing text).
    #[error("line {line}: unexpected content after the message fields")]
    UnexpectedLine {
        /// 1-based line number.
        line: usize,
    },
    /// A required field is absent when building from [`super::MessageFields`].
    #[error("missing required field `{0}`")]
    MissingField(&'static str),

    // ---- field values -----------------------------------------------------
    /// The optional `scheme://` prefix is not an RFC 3986 scheme.
    #[error("scheme {0:?} is not an RFC 3986 scheme")]
    InvalidScheme(String),
    /// The domain is empty or not an RFC 3986 authority.
    #[error("domain {0:?} is not an RFC 3986 authority")]
    InvalidDomain(String),
    /// The address is malformed or not EIP-55 checksummed.
    #[error("invalid address: {0}")]
    InvalidAddress(#[from] AddressError),
    /// The statement contains a line break or a character outside
    /// `reserved / unreserved / " "`.
    #[error("statement {0:?} contains characters not allowed by EIP-4361")]
    InvalidStatement(String),
    /// The `URI` field is not an RFC 3986 URI.
    #[error("URI {0:?} is not an RFC 3986 URI")]
    InvalidUri(String),
    /// The version is not `1`.
    #[error("unsupported version {0:?} (only \"1\" is defined)")]
    UnsupportedVersion(String),
    /// The chain ID is not a canonical decimal `u64` (no sign, no leading zeros).
    #[error("chain ID {0:?} is not a canonical decimal integer")]
    InvalidChainId(String),
    /// The nonce is shorter than 8 characters or not alphanumeric.
    #[error("nonce {0:?} must be at least 8 ASCII letters or digits")]
    InvalidNonce(String),
    /// A timestamp field is malformed ([`TimeStampError::Syntax`]) or out of
    /// range ([`TimeStampError::Semantics`]).
    #[error("invalid {field} date-time: {source}")]
    InvalidTimeStamp {
        /// Which timestamp.
        field: TimeField,
        /// Syntax versus semantics.
        source: TimeStampError,
    },
    /// The request ID is not `*pchar`.
    #[error("request ID {0:?} contains characters outside RFC 3986 pchar")]
    InvalidRequestId(String),
    /// A resource is not an RFC 3986 URI.
    #[error("resource #{index} {value:?} is not an RFC 3986 URI")]
    InvalidResource {
        /// 0-based position in the resource list.
        index: usize,
        /// The rejected text.
        value: String,
    },

    // ---- verification -----------------------------------------------------
    /// The signature is malformed or no key could be recovered from it.
    #[error("invalid signature: {0}")]
    Signature(#[from] SignatureError),
    /// The signature is valid but for a different account.
    #[error("signature was made by {recovered}, not by {expected}")]
    AddressMismatch {
        /// The address in the message.
        expected: EthAddress,
        /// The address recovered from the signature.
        recovered: EthAddress,
    },
    /// The message's domain is not the one the verifier is bound to.
    #[error("domain mismatch: expected {expected:?}, message has {found:?}")]
    DomainMismatch {
        /// The domain the verifier expects.
        expected: String,
        /// The domain in the message.
        found: String,
    },
    /// The message's nonce is not the one the verifier issued.
    #[error("nonce mismatch: expected {expected:?}, message has {found:?}")]
    NonceMismatch {
        /// The nonce the verifier expects.
        expected: String,
        /// The nonce in the message.
        found: String,
    },
    /// `now >= expiration_time`.
    #[error("message expired at {0}")]
    Expired(String),
    /// `now < not_before`.
    #[error("message not valid before {0}")]
    NotYetValid(String),
}
