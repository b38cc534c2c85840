//! The approval domain, without I/O: reading an app's SIWE + ReCap request into the items a
//! person can remove, the plain-language text and risk notes shown for them, and rebuilding the
//! message after removals and a shorter expiry — never wider than the original.
//!
//! Narrowing works on the original attenuation map itself (resource → ability → caveats):
//! removing an item deletes one (resource, ability) entry and leaves every other entry byte for
//! byte as the app wrote it, so the final set is a subset of the original by construction and
//! [`narrow`] checks it again before it returns.

use std::str::FromStr;

use time::OffsetDateTime;
use tinycloud_auth::capability::{capabilities_from_att, AttMap, Capability};
use tinycloud_auth::did::Did;
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::recap::{Recap, RECAP_PREFIX};
use tinycloud_auth::resource::Resource;
use tinycloud_auth::siwe::{Message, TimeStamp};
use tinycloud_auth::text::{self, RenderContext};
use tinycloud_auth::timestamp::Timestamp;

/// The address an app writes when it leaves the signing account to OpenKey.
pub const PLACEHOLDER_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// Grants lasting longer than this (or without an expiry) are called out.
pub const LONG_EXPIRY_SECS: i64 = 7 * 24 * 3600;

/// Why a request or a narrowing is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NarrowError {
    /// Not an EIP-4361 message.
    #[error("not a SIWE message: {0}")]
    Siwe(String),
    /// The ReCap does not decode or its statement does not match it.
    #[error("ReCap: {0}")]
    Recap(String),
    /// The message has expired or is otherwise unusable now.
    #[error("{0}")]
    Time(String),
    /// The message names another account than the person's owner key.
    #[error("the message names another address than your owner key")]
    WrongAddress,
    /// A removal names no item of the request.
    #[error("no capability number {0} in this request")]
    NoSuchItem(usize),
    /// Everything was removed.
    #[error("every capability was removed: deny the request instead")]
    NothingLeft,
    /// The expiry is later than the original (or the original has none and none was given).
    #[error("the expiry can only be shortened, never lengthened")]
    Widened,
    /// The final message is not a subset of the original.
    #[error("the final request is not within the original")]
    NotSubset,
}

/// One removable item: a (resource, ability) entry of the ReCap.
#[derive(Clone, Debug)]
pub struct Item {
    /// Resource URI as written.
    pub resource: String,
    /// Ability as written.
    pub ability: String,
    /// Plain-language sentence for this item alone.
    pub text: String,
    /// Risk notes (write, delete, decrypt, whole space, …).
    pub risks: Vec<String>,
}

/// An app's request, read.
#[derive(Clone, Debug)]
pub struct Request {
    /// The message as sent.
    pub message: Message,
    /// Its ReCap, if it carries one.
    pub recap: Option<Recap>,
    /// Removable items, in the ReCap's order (resource, then ability).
    pub items: Vec<Item>,
    /// The statement part the app wrote before the ReCap rendering.
    pub user_statement: Option<String>,
}

/// What the person changed: item numbers to remove and an optional earlier expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Indices into [`Request::items`].
    pub remove: Vec<usize>,
    /// A new expiry (must not be later than the original).
    pub expiration: Option<OffsetDateTime>,
}

fn viewer_of(address: &EthAddress, chain_id: u64) -> Option<Did> {
    Did::pkh(chain_id, *address).ok()
}

fn expiration_of(msg: &Message) -> Option<Timestamp> {
    msg.expiration_time
        .as_ref()
        .map(|t| Timestamp::from(t.datetime()))
}

/// Risk notes for one capability.
pub fn risks_of(cap: &Capability) -> Vec<String> {
    let mut out = Vec::new();
    let name = cap.ability.name();
    let ns = cap.ability.namespace();
    if name == "*" {
        out.push(
            "Full control: every action of this service, including writing and deleting.".into(),
        );
    }
    if matches!(
        name,
        "put" | "write" | "schema" | "admin" | "import" | "register"
    ) {
        out.push("Can change or add data.".into());
    }
    if matches!(name, "del" | "delete" | "unregister" | "revoke") {
        out.push("Can delete or revoke.".into());
    }
    if ns == "tinycloud.encryption" || name == "decrypt" {
        out.push("Can decrypt your protected data.".into());
    }
    match &cap.resource {
        Resource::Space(r) if r.path().is_none() => {
            out.push(format!(
                "Covers the whole {} service of the space, not one folder or database.",
                r.service()
            ));
        }
        Resource::Other(_) => out.push("A resource OpenKey cannot describe.".into()),
        _ => {}
    }
    out
}

/// Risk notes for the grant as a whole (expiry).
pub fn expiry_risks(msg: &Message, now: OffsetDateTime) -> Vec<String> {
    match &msg.expiration_time {
        None => vec!["Never expires.".into()],
        Some(t) if (t.datetime() - now).whole_seconds() > LONG_EXPIRY_SECS => vec![format!(
            "Lasts long: until {}.",
            text::format_date(Timestamp::from(t.datetime()))
        )],
        Some(_) => Vec::new(),
    }
}

/// Reads and checks an app's request at `now`.
pub fn read(text_in: &str, now: OffsetDateTime) -> Result<Request, NarrowError> {
    let message = Message::from_str(text_in).map_err(|e| NarrowError::Siwe(e.to_string()))?;
    message
        .check_time(now)
        .map_err(|e| NarrowError::Time(e.to_string()))?;
    let resources = message.resources.clone().unwrap_or_default();
    let recap = Recap::extract(&resources).map_err(|e| NarrowError::Recap(e.to_string()))?;
    let (items, user_statement) = match &recap {
        None => (Vec::new(), message.statement.clone()),
        Some(r) => {
            r.verify_statement(message.statement.as_deref())
                .map_err(|e| NarrowError::Recap(e.to_string()))?;
            let caps = r
                .capabilities()
                .map_err(|e| NarrowError::Recap(e.to_string()))?;
            if caps.is_empty() {
                return Err(NarrowError::Recap("the ReCap grants nothing".into()));
            }
            let rendered = r.statement();
            let head = message
                .statement
                .as_deref()
                .and_then(|s| s.strip_suffix(rendered.as_str()))
                .map(|h| h.trim_end_matches(' ').to_string())
                .filter(|h| !h.is_empty());
            (items_of(&r.att, &message)?, head)
        }
    };
    Ok(Request {
        message,
        recap,
        items,
        user_statement,
    })
}

fn items_of(att: &AttMap, msg: &Message) -> Result<Vec<Item>, NarrowError> {
    let ctx = RenderContext {
        viewer: viewer_of(&msg.address, msg.chain_id),
        expiration: expiration_of(msg),
    };
    let mut items = Vec::new();
    for (resource, abilities) in att {
        for (ability, caveats) in abilities {
            let mut one = AttMap::new();
            one.entry(resource.clone())
                .or_default()
                .insert(ability.clone(), caveats.clone());
            let caps =
                capabilities_from_att(&one).map_err(|e| NarrowError::Recap(e.to_string()))?;
            let text = text::describe(&caps, &ctx).join(" ");
            let risks = caps.iter().flat_map(risks_of).collect();
            items.push(Item {
                resource: resource.clone(),
                ability: ability.clone(),
                text,
                risks,
            });
        }
    }
    Ok(items)
}

fn is_subset(inner: &AttMap, outer: &AttMap) -> bool {
    inner.iter().all(|(res, abilities)| {
        outer.get(res).is_some_and(|o| {
            abilities
                .iter()
                .all(|(ab, caveats)| o.get(ab) == Some(caveats))
        })
    })
}

/// The message to sign: the original with `n` applied, the address filled with `owner` when the
/// app left the placeholder (else it must already be `owner`), the ReCap statement regenerated.
pub fn narrow(
    req: &Request,
    owner: &EthAddress,
    n: &Narrowing,
    now: OffsetDateTime,
) -> Result<Message, NarrowError> {
    let mut msg = req.message.clone();
    if msg.address.to_eip55() == PLACEHOLDER_ADDRESS {
        msg.address = *owner;
    } else if msg.address != *owner {
        return Err(NarrowError::WrongAddress);
    }
    if let Some(&bad) = n.remove.iter().find(|&&i| i >= req.items.len()) {
        return Err(NarrowError::NoSuchItem(bad));
    }
    if let Some(exp) = n.expiration {
        if exp <= now {
            return Err(NarrowError::Time("the new expiry is in the past".into()));
        }
        if let Some(nbf) = &msg.not_before {
            if exp <= nbf.datetime() {
                return Err(NarrowError::Time(
                    "the new expiry is before the start".into(),
                ));
            }
        }
        match &req.message.expiration_time {
            Some(orig) if exp > orig.datetime() => return Err(NarrowError::Widened),
            _ => {}
        }
        let ts = TimeStamp::from_datetime(exp).map_err(|e| NarrowError::Time(e.to_string()))?;
        // Millisecond truncation never moves the instant later.
        msg.expiration_time = Some(ts);
    }
    if let Some(recap) = &req.recap {
        if !n.remove.is_empty() {
            let mut att = recap.att.clone();
            for &i in &n.remove {
                let item = &req.items[i];
                if let Some(abilities) = att.get_mut(&item.resource) {
                    abilities.remove(&item.ability);
                    if abilities.is_empty() {
                        att.remove(&item.resource);
                    }
                }
            }
            if att.is_empty() {
                return Err(NarrowError::NothingLeft);
            }
            if !is_subset(&att, &recap.att) {
                return Err(NarrowError::NotSubset);
            }
            let narrowed = Recap {
                att,
                prf: recap.prf.clone(),
            };
            msg.statement = Some(narrowed.statement_with(req.user_statement.as_deref()));
            msg.resources = msg.resources.map(|rs| {
                rs.into_iter()
                    .map(|r| {
                        if r.starts_with(RECAP_PREFIX) {
                            narrowed.to_resource()
                        } else {
                            r
                        }
                    })
                    .collect()
            });
        }
    } else if !n.remove.is_empty() {
        return Err(NarrowError::NoSuchItem(n.remove[0]));
    }
    msg.validate()
        .map_err(|e| NarrowError::Siwe(e.to_string()))?;
    check_within(&msg, req)?;
    Ok(msg)
}

/// Re-reads `fin` from its text and checks it against the original: same fields but the
/// address (filled), the statement and ReCap (a subset) and the expiry (not later).
pub fn check_within(fin: &Message, req: &Request) -> Result<(), NarrowError> {
    let reread =
        Message::from_str(&fin.to_string()).map_err(|e| NarrowError::Siwe(e.to_string()))?;
    if &reread != fin {
        return Err(NarrowError::NotSubset);
    }
    let orig = &req.message;
    let same = fin.scheme == orig.scheme
        && fin.domain == orig.domain
        && fin.uri == orig.uri
        && fin.version == orig.version
        && fin.chain_id == orig.chain_id
        && fin.nonce == orig.nonce
        && fin.issued_at == orig.issued_at
        && fin.not_before == orig.not_before
        && fin.request_id == orig.request_id;
    if !same {
        return Err(NarrowError::NotSubset);
    }
    match (&orig.expiration_time, &fin.expiration_time) {
        (Some(_), None) => return Err(NarrowError::Widened),
        (Some(o), Some(f)) if f.datetime() > o.datetime() => return Err(NarrowError::Widened),
        _ => {}
    }
    let others = |m: &Message| -> Vec<String> {
        m.resources
            .iter()
            .flatten()
            .filter(|r| !r.starts_with(RECAP_PREFIX))
            .cloned()
            .collect()
    };
    if others(fin) != others(orig) {
        return Err(NarrowError::NotSubset);
    }
    let fin_recap = Recap::extract(fin.resources.as_deref().unwrap_or_default())
        .map_err(|e| NarrowError::Recap(e.to_string()))?;
    match (&req.recap, &fin_recap) {
        (None, None) => {
            if fin.statement != orig.statement {
                return Err(NarrowError::NotSubset);
            }
        }
        (Some(o), Some(f)) => {
            if !is_subset(&f.att, &o.att) || f.prf != o.prf {
                return Err(NarrowError::NotSubset);
            }
            f.verify_statement(fin.statement.as_deref())
                .map_err(|e| NarrowError::Recap(e.to_string()))?;
        }
        _ => return Err(NarrowError::NotSubset),
    }
    Ok(())
}

/// The plain-language consent text of a (final) message, from the protocol core.
pub fn consent(msg: &Message) -> Result<String, NarrowError> {
    let resources = msg.resources.clone().unwrap_or_default();
    let Some(recap) = Recap::extract(&resources).map_err(|e| NarrowError::Recap(e.to_string()))?
    else {
        return Ok(format!("Sign in to {} as {}.", msg.domain, msg.address));
    };
    let caps = recap
        .capabilities()
        .map_err(|e| NarrowError::Recap(e.to_string()))?;
    let ctx = RenderContext {
        viewer: viewer_of(&msg.address, msg.chain_id),
        expiration: expiration_of(msg),
    };
    Ok(text::consent_text(&msg.uri, &caps, &ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinycloud_auth::ability::Ability;
    use tinycloud_auth::resource::SpaceId;
    use tinycloud_auth::session::SiweDelegationRequest;

    const OWNER: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";

    fn request(expires_in: Option<i64>) -> (Request, EthAddress, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        let owner = EthAddress::parse_checksummed(OWNER).unwrap();
        let space = SpaceId::new(Did::pkh(1, owner).unwrap(), "default").unwrap();
        let res = space.resource("kv", Some("notes/")).unwrap();
        let caps = ["get", "put"]
            .iter()
            .map(|a| Capability::new(res.clone(), Ability::new("tinycloud.kv", a).unwrap()))
            .collect();
        let t = |s: i64| Timestamp::from_secs(now.unix_timestamp() + s);
        let text = SiweDelegationRequest {
            domain: "app.example".into(),
            address: owner,
            chain_id: 1,
            delegate: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK".into(),
            nonce: "abcdefgh1234".into(),
            issued_at: t(0),
            expiration: expires_in.map(t),
            not_before: None,
            capabilities: caps,
            parents: vec![],
            statement: None,
        }
        .to_message()
        .unwrap()
        .to_string();
        (read(&text, now).unwrap(), owner, now)
    }

    #[test]
    fn unchanged_narrowing_signs_the_original_text() {
        let (req, owner, now) = request(Some(3600));
        let fin = narrow(&req, &owner, &Narrowing::default(), now).unwrap();
        assert_eq!(fin, req.message);
    }

    #[test]
    fn removal_and_shorter_expiry_stay_within_the_original() {
        let (req, owner, now) = request(Some(3600));
        let exp = now + time::Duration::seconds(600);
        let n = Narrowing {
            remove: vec![1],
            expiration: Some(exp),
        };
        let fin = narrow(&req, &owner, &n, now).unwrap();
        let recap = Recap::extract(fin.resources.as_deref().unwrap())
            .unwrap()
            .unwrap();
        let abilities: Vec<&String> = recap.att.values().flat_map(|a| a.keys()).collect();
        assert_eq!(abilities, vec!["tinycloud.kv/get"]);
        assert!(check_within(&fin, &req).is_ok());
        assert!(fin.expiration_time.unwrap().datetime() <= exp);
    }

    #[test]
    fn widening_is_refused() {
        let (req, owner, now) = request(Some(3600));
        let later = Narrowing {
            remove: vec![],
            expiration: Some(now + time::Duration::seconds(7200)),
        };
        assert_eq!(narrow(&req, &owner, &later, now), Err(NarrowError::Widened));
        let all = Narrowing {
            remove: vec![0, 1],
            expiration: None,
        };
        assert_eq!(
            narrow(&req, &owner, &all, now),
            Err(NarrowError::NothingLeft)
        );
        let out_of_range = Narrowing {
            remove: vec![5],
            expiration: None,
        };
        assert_eq!(
            narrow(&req, &owner, &out_of_range, now),
            Err(NarrowError::NoSuchItem(5))
        );
        // A final message with an added ability is not within the original.
        let (wide, _, _) = request(Some(3600));
        let mut fin = wide.message.clone();
        let mut recap = wide.recap.clone().unwrap();
        let res = recap.att.keys().next().unwrap().clone();
        recap
            .att
            .get_mut(&res)
            .unwrap()
            .insert("tinycloud.kv/del".into(), vec![Default::default()]);
        fin.statement = Some(recap.statement());
        fin.resources = Some(vec![recap.to_resource()]);
        assert_eq!(check_within(&fin, &req), Err(NarrowError::NotSubset));
        // Dropping the expiry widens.
        let mut no_exp = req.message.clone();
        no_exp.expiration_time = None;
        assert_eq!(check_within(&no_exp, &req), Err(NarrowError::Widened));
    }

    #[test]
    fn another_address_is_refused_and_risks_are_named() {
        let (req, _, now) = request(None);
        let other = EthAddress::parse_checksummed(PLACEHOLDER_ADDRESS).unwrap();
        assert_eq!(
            narrow(&req, &other, &Narrowing::default(), now),
            Err(NarrowError::WrongAddress)
        );
        assert_eq!(expiry_risks(&req.message, now), vec!["Never expires."]);
        assert!(req.items[1].risks.iter().any(|r| r.contains("change")));
    }
}
