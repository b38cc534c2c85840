//! Line-oriented parser for the EIP-4361 message text.
//!
//! ```text
//! [ scheme "://" ] domain " wants you to sign in with your Ethereum account:" LF
//! address LF
//! LF
//! [ statement LF ]
//! LF
//! "URI: " uri LF
//! "Version: " version LF
//! "Chain ID: " chain-id LF
//! "Nonce: " nonce LF
//! "Issued At: " issued-at
//! [ LF "Expiration Time: " expiration-time ]
//! [ LF "Not Before: " not-before ]
//! [ LF "Request ID: " request-id ]
//! [ LF "Resources:" *( LF "- " URI ) ]
//! ```
//!
//! The parser only splits the text into fields; value checks are shared with
//! construction from fields and live in `Message::validate`.

use std::iter::Peekable;
use std::str::Split;

use crate::eth::EthAddress;

use super::{
    parse_chain_id, parse_time, parse_version, Message, SiweError, TimeField, HEADER_SUFFIX,
};

const URI_TAG: &str = "URI: ";
const VERSION_TAG: &str = "Version: ";
const CHAIN_ID_TAG: &str = "Chain ID: ";
const NONCE_TAG: &str = "Nonce: ";
const ISSUED_AT_TAG: &str = "Issued At: ";
const EXPIRATION_TIME_TAG: &str = "Expiration Time: ";
const NOT_BEFORE_TAG: &str = "Not Before: ";
const REQUEST_ID_TAG: &str = "Request ID: ";
const RESOURCES_LINE: &str = "Resources:";
const RESOURCE_TAG: &str = "- ";

/// The message split at LF, with 1-based line numbers for error reporting.
struct Lines<'a> {
    lines: Peekable<Split<'a, char>>,
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.split('\n').peekable(),
            number: 0,
        }
    }

    /// The next line, whatever it contains.
    fn next(&mut self, expected: &'static str) -> Result<&'a str, SiweError> {
        self.number += 1;
        self.lines.next().ok_or(SiweError::MalformedLine {
            line: self.number,
            expected,
        })
    }

    /// The next line with `tag` stripped; the tag is required.
    fn tagged(&mut self, tag: &'static str) -> Result<&'a str, SiweError> {
        let line = self.next(tag)?;
        line.strip_prefix(tag).ok_or(SiweError::MalformedLine {
            line: self.number,
            expected: tag,
        })
    }

    /// The next line with `tag` stripped, if the next line has that tag.
    fn optional_tagged(&mut self, tag: &str) -> Option<&'a str> {
        let value = self.lines.peek()?.strip_prefix(tag)?;
        self.lines.next();
        self.number += 1;
        Some(value)
    }

    /// Consumes the next line if it is exactly `line`.
    fn optional_exact(&mut self, line: &str) -> bool {
        let matched = self.lines.peek() == Some(&line);
        if matched {
            self.lines.next();
            self.number += 1;
        }
        matched
    }

    /// Requires an empty line.
    fn blank(&mut self) -> Result<(), SiweError> {
        match self.next("an empty line")? {
            "" => Ok(()),
            _ => Err(SiweError::MalformedLine {
                line: self.number,
                expected: "an empty line",
            }),
        }
    }

    fn peek(&mut self) -> Option<&'a str> {
        self.lines.peek().copied()
    }

    /// Fails if anything is left.
    fn finish(mut self) -> Result<(), SiweError> {
        match self.lines.next() {
            None => Ok(()),
            Some(_) => Err(SiweError::UnexpectedLine {
                line: self.number + 1,
            }),
        }
    }
}

/// Parses and validates a complete message.
pub(super) fn parse(text: &str) -> Result<Message, SiweError> {
    let mut lines = Lines::new(text);
    let (scheme, domain) = parse_header(&mut lines)?;
    let address = EthAddress::parse_checksummed(lines.next("an address")?)?;
    lines.blank()?;
    let statement = parse_statement(&mut lines)?;
    let uri = lines.tagged(URI_TAG)?.to_owned();
    let version = parse_version(lines.tagged(VERSION_TAG)?)?;
    let chain_id = parse_chain_id(lines.tagged(CHAIN_ID_TAG)?)?;
    let nonce = lines.tagged(NONCE_TAG)?.to_owned();
    let issued_at = parse_time(lines.tagged(ISSUED_AT_TAG)?, TimeField::IssuedAt)?;
    let expiration_time = lines
        .optional_tagged(EXPIRATION_TIME_TAG)
        .map(|v| parse_time(v, TimeField::ExpirationTime))
        .transpose()?;
    let not_before = lines
        .optional_tagged(NOT_BEFORE_TAG)
        .map(|v| parse_time(v, TimeField::NotBefore))
        .transpose()?;
    let request_id = lines.optional_tagged(REQUEST_ID_TAG).map(str::to_owned);
    let resources = parse_resources(&mut lines);
    lines.finish()?;

    let message = Message {
        scheme,
        domain,
        address,
        statement,
        uri,
        version,
        chain_id,
        nonce,
        issued_at,
        expiration_time,
        not_before,
        request_id,
        resources,
    };
    message.validate()?;
    Ok(message)
}

/// `[ scheme "://" ] domain " wants you to sign in with your Ethereum account:"`
fn parse_header(lines: &mut Lines<'_>) -> Result<(Option<String>, String), SiweError> {
    const EXPECTED: &str = "\"<domain> wants you to sign in with your Ethereum account:\"";
    let line = lines.next(EXPECTED)?;
    let prefix = line
        .strip_suffix(HEADER_SUFFIX)
        .ok_or(SiweError::MalformedLine {
            line: lines.number,
            expected: EXPECTED,
        })?;
    Ok(match prefix.split_once("://") {
        Some((scheme, domain)) => (Some(scheme.to_owned()), domain.to_owned()),
        None => (None, prefix.to_owned()),
    })
}

/// `[ statement LF ] LF` — distinguishes a missing statement (one empty line)
/// from an empty statement (two empty lines).
fn parse_statement(lines: &mut Lines<'_>) -> Result<Option<String>, SiweError> {
    match lines.peek() {
        Some("") => {
            lines.blank()?;
            if lines.peek() == Some("") {
                lines.blank()?;
                Ok(Some(String::new()))
            } else {
                Ok(None)
            }
        }
        _ => {
            let statement = lines.next("a statement or an empty line")?.to_owned();
            lines.blank()?;
            Ok(Some(statement))
        }
    }
}

/// `[ LF "Resources:" *( LF "- " URI ) ]`
fn parse_resources(lines: &mut Lines<'_>) -> Option<Vec<String>> {
    if !lines.optional_exact(RESOURCES_LINE) {
        return None;
    }
    let mut resources = Vec::new();
    while let Some(resource) = lines.optional_tagged(RESOURCE_TAG) {
        resources.push(resource.to_owned());
    }
    Some(resources)
}
