//! Plain-language rendering of a capability set, for people to read before they sign.
//!
//! One sentence per (space, service, resource), e.g.
//! "Read, list and write files under notes/ in your “default” space until 30 Nov 2026 12:00 UTC."
//! Unknown abilities are shown verbatim rather than guessed at.

use std::collections::BTreeMap;

use crate::capability::Capability;
use crate::did::Did;
use crate::resource::{NetworkId, Resource, SpaceResource};
use crate::timestamp::Timestamp;

/// Who reads the text and until when the grant lasts.
#[derive(Clone, Debug, Default)]
pub struct RenderContext {
    /// The person being asked; resources they own read as "your …".
    pub viewer: Option<Did>,
    /// Expiry of the grant, if any.
    pub expiration: Option<Timestamp>,
}

/// Formats an instant as `30 Nov 2026 12:00 UTC`.
pub fn format_date(t: Timestamp) -> String {
    let dt = t.to_datetime();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::from(u8::from(dt.month())) - 1];
    format!(
        "{} {} {} {:02}:{:02} UTC",
        dt.day(),
        month,
        dt.year(),
        dt.hour(),
        dt.minute()
    )
}

fn verb(namespace: &str, name: &str) -> String {
    let known = match (namespace, name) {
        ("tinycloud.kv", "get") => "read",
        ("tinycloud.kv", "list") => "list",
        ("tinycloud.kv", "metadata") => "see metadata of",
        ("tinycloud.kv", "put") => "write",
        ("tinycloud.kv", "del" | "delete") => "delete",
        ("tinycloud.sql" | "tinycloud.duckdb", "read" | "select") => "query",
        ("tinycloud.sql" | "tinycloud.duckdb", "write") => "change rows in",
        ("tinycloud.sql", "schema") => "change the tables of",
        ("tinycloud.sql" | "tinycloud.duckdb", "admin") => "administer",
        ("tinycloud.sql" | "tinycloud.duckdb", "*") => "fully manage",
        ("tinycloud.duckdb", "import") => "import into",
        ("tinycloud.duckdb", "export") => "export",
        ("tinycloud.capabilities", "read") => "see the permissions granted in",
        ("tinycloud.hooks", "subscribe") => "watch live changes to",
        ("tinycloud.hooks", "register") => "register webhooks for",
        ("tinycloud.hooks", "list") => "list webhooks for",
        ("tinycloud.hooks", "unregister") => "remove webhooks for",
        ("tinycloud.delegation", "revoke") => "revoke",
        ("tinycloud.delegation", "status") => "check the status of",
        ("tinycloud.delegation", "list") => "list",
        ("tinycloud.encryption", "decrypt") => "decrypt data protected by",
        ("tinycloud.encryption", "network.create") => "create",
        ("tinycloud.encryption", "network.revoke") => "shut down",
        ("tinycloud.space", "host") => "create and host",
        ("tinycloud.space", "create") => "create",
        ("tinycloud.space", "list") => "list",
        ("tinycloud.space", "info") => "see details of",
        _ => return format!("use '{namespace}/{name}' on"),
    };
    known.to_owned()
}

fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn short_did(did: &Did) -> String {
    match did {
        Did::Pkh { address, .. } => {
            let a = address.to_eip55();
            format!("{}…{}", &a[..6], &a[a.len() - 4..])
        }
        Did::Key(_) => {
            let s = did.to_string();
            format!("{}…", &s[..s.len().min(16)])
        }
    }
}

fn owner_phrase(owner: &Did, viewer: Option<&Did>) -> (String, bool) {
    if viewer == Some(owner) {
        ("your".to_owned(), true)
    } else {
        (format!("{}’s", short_did(owner)), false)
    }
}

fn space_object(r: &SpaceResource) -> String {
    let path = r.path();
    match r.service() {
        "kv" => match path {
            None => "all files".to_owned(),
            Some("") => "files at the top level".to_owned(),
            Some(p) if p.ends_with('/') => format!("files under {p}"),
            Some(p) => format!("{p} and anything under it"),
        },
        "sql" | "duckdb" => match path {
            None | Some("") => "all databases".to_owned(),
            Some(p) => format!("the database “{p}”"),
        },
        "hooks" => match path {
            None | Some("") => "everything".to_owned(),
            Some(p) => p.to_owned(),
        },
        "capabilities" => "this space".to_owned(),
        "delegation" => "delegations".to_owned(),
        "space" => "the space".to_owned(),
        other => match path {
            None => format!("the {other} service"),
            Some(p) => format!("{other} path {p}"),
        },
    }
}

fn constraint_note(caps: &[&Capability]) -> String {
    let constrained: Vec<&&Capability> = caps
        .iter()
        .filter(|c| !c.caveats.is_unconstrained())
        .collect();
    if constrained.is_empty() {
        return String::new();
    }
    let names: Vec<String> = constrained
        .iter()
        .filter_map(|c| c.caveats.sql_caveats().ok())
        .flatten()
        .flat_map(|c| c.statement_names())
        .collect();
    if names.is_empty() {
        " (with extra restrictions)".to_owned()
    } else {
        format!(" (only the named queries {})", names.join(", "))
    }
}

fn describe_resource(resource: &Resource, viewer: Option<&Did>) -> String {
    match resource {
        Resource::Space(r) => {
            let (owner, _) = owner_phrase(r.space().owner(), viewer);
            format!(
                "{} in {owner} “{}” space",
                space_object(r),
                r.space().name()
            )
        }
        Resource::Network(n) => network_phrase(n, viewer),
        Resource::Cid(c) => format!("the delegation {c}"),
        Resource::Other(s) => s.clone(),
    }
}

fn network_phrase(n: &NetworkId, viewer: Option<&Did>) -> String {
    let (owner, _) = owner_phrase(n.owner(), viewer);
    format!("{owner} encryption network “{}”", n.name())
}

/// Renders each resource's capabilities as one sentence, grouped by space then service then
/// path, in a stable order.
pub fn describe(caps: &[Capability], ctx: &RenderContext) -> Vec<String> {
    let mut groups: BTreeMap<String, (Resource, Vec<&Capability>)> = BTreeMap::new();
    for cap in caps {
        let key = match &cap.resource {
            Resource::Space(r) => format!("0 {} {} {}", r.space(), r.service(), cap.resource),
            other => format!("1 {other}"),
        };
        groups
            .entry(key)
            .or_insert_with(|| (cap.resource.clone(), Vec::new()))
            .1
            .push(cap);
    }
    let until = ctx
        .expiration
        .map(|t| format!(" until {}", format_date(t)))
        .unwrap_or_default();
    groups
        .into_values()
        .map(|(resource, caps)| {
            let mut verbs: Vec<String> = Vec::new();
            for c in &caps {
                let v = verb(c.ability.namespace(), c.ability.canonical().name());
                if !verbs.contains(&v) {
                    verbs.push(v);
                }
            }
            format!(
                "{} {}{}{until}.",
                capitalize(&join_words(&verbs)),
                describe_resource(&resource, ctx.viewer.as_ref()),
                constraint_note(&caps),
            )
        })
        .collect()
}

/// The full consent text: a heading naming who receives the authority, then one line per
/// sentence.
pub fn consent_text(grantee: &str, caps: &[Capability], ctx: &RenderContext) -> String {
    let mut out = format!("Allow {grantee} to:\n");
    for line in describe(caps, ctx) {
        out.push_str("  - ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ability::Ability;

    const OWNER: &str = "did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    fn cap(res: &str, ab: &str) -> Capability {
        Capability::new(res.parse().unwrap(), ab.parse::<Ability>().unwrap())
    }

    #[test]
    fn read_and_write_notes_until_date() {
        let caps = vec![
            cap(&format!("{SPACE}/kv/notes/"), "tinycloud.kv/get"),
            cap(&format!("{SPACE}/kv/notes/"), "tinycloud.kv/put"),
        ];
        let ctx = RenderContext {
            viewer: Some(OWNER.parse().unwrap()),
            expiration: Some(Timestamp::from_secs(1_796_040_000)), // 2026-11-30T12:00:00Z
        };
        assert_eq!(
            describe(&caps, &ctx),
            vec!["Read and write files under notes/ in your “default” space until 30 Nov 2026 12:00 UTC."]
        );
    }

    #[test]
    fn groups_by_resource_and_names_foreign_owners() {
        let caps = vec![
            cap(&format!("{SPACE}/kv"), "tinycloud.kv/get"),
            cap(&format!("{SPACE}/kv"), "tinycloud.kv/list"),
            cap(&format!("{SPACE}/kv"), "tinycloud.kv/delete"),
            cap(&format!("{SPACE}/sql/main"), "tinycloud.sql/read"),
            cap(
                &format!("urn:tinycloud:encryption:{OWNER}:default"),
                "tinycloud.encryption/decrypt",
            ),
            cap(&format!("{SPACE}/kv"), "example.thing/frob"),
        ];
        let lines = describe(&caps, &RenderContext::default());
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0],
            "Read, list, delete and use 'example.thing/frob' on all files in 0x7E5F…5Bdf’s “default” space."
        );
        assert_eq!(
            lines[1],
            "Query the database “main” in 0x7E5F…5Bdf’s “default” space."
        );
        assert_eq!(
            lines[2],
            "Decrypt data protected by 0x7E5F…5Bdf’s encryption network “default”."
        );
        let text = consent_text("did:key:z6Mk…", &caps, &RenderContext::default());
        assert!(
            text.starts_with("Allow did:key:z6Mk… to:\n  - Read"),
            "{text}"
        );
    }
}
