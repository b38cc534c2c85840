//! `tc watch <target>`: prints the writes in a space as they happen, from the node's hooks
//! feed (resumed without loss when the connection drops).

use anyhow::Result;
use futures_util::StreamExt as _;
use tinycloud_auth::resource::{validate_path, SpaceId};
use tinycloud_sdk::hooks::{HookEvent, HookEventKind, Scope};

use tinycloud_sdk::terminal::field;

use super::Ctx;
use crate::cli::WatchArgs;
use crate::error::CliError;

/// What `TARGET` names.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The space, when given; else the session's.
    space: Option<SpaceId>,
    /// `kv`, `sql`, or both for a bare space.
    services: Vec<&'static str>,
    /// Path prefix inside the service.
    prefix: Option<String>,
}

fn target_hint() -> &'static str {
    "watch kv, kv/<prefix>, sql/<db>, <space>/kv/<prefix> or <space>"
}

fn service(name: &str) -> Result<&'static str, CliError> {
    match name {
        "kv" => Ok("kv"),
        "sql" => Ok("sql"),
        other => Err(
            CliError::usage(format!("cannot watch {other:?}: hooks cover kv and sql"))
                .hint(target_hint()),
        ),
    }
}

/// Parses `<service>[/<prefix>]`, `<space>/<service>[/<prefix>]` or `<space>`.
fn parse_target(target: &str) -> Result<Target, CliError> {
    let (space, rest) = if target.starts_with("tinycloud:") {
        let (space, rest) = target.split_once('/').unwrap_or((target, ""));
        let space = space
            .parse::<SpaceId>()
            .map_err(|e| CliError::usage(format!("invalid space {space:?}: {e}")))?;
        (Some(space), rest)
    } else {
        (None, target)
    };
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        return match space {
            Some(space) => Ok(Target {
                space: Some(space),
                services: vec!["kv", "sql"],
                prefix: None,
            }),
            None => Err(CliError::usage("nothing to watch").hint(target_hint())),
        };
    }
    let (name, prefix) = match rest.split_once('/') {
        Some((name, prefix)) => (name, Some(prefix.trim_matches('/'))),
        None => (rest, None),
    };
    let prefix = prefix.filter(|p| !p.is_empty());
    if let Some(p) = prefix {
        validate_path(p).map_err(|e| CliError::usage(format!("invalid prefix {p:?}: {e}")))?;
    }
    Ok(Target {
        space,
        services: vec![service(name)?],
        prefix: prefix.map(str::to_owned),
    })
}

/// `SEQ TIME ACTOR ABILITY PATH` (the event id in place of `SEQ` from a node that does not
/// number events, such as a reference node).
fn human_line(e: &HookEvent) -> String {
    let seq = e
        .seq
        .map_or_else(|| field(&e.id).into_owned(), |s| s.to_string());
    format!(
        "{} {} {} {} {}",
        seq,
        field(&e.timestamp.to_string()),
        field(&e.actor.to_string()),
        field(&e.ability.to_string()),
        field(&e.path.to_string())
    )
}

/// `tc watch`.
pub async fn run(ctx: &Ctx, args: &WatchArgs) -> Result<()> {
    let target = parse_target(&args.target)?;
    let (_, client) = ctx.session_client()?;
    let space = match target.space {
        Some(s) => s,
        None => client.space()?,
    };
    let scopes: Vec<Scope> = target
        .services
        .iter()
        .map(|svc| {
            let scope = Scope::new(&space, svc);
            match &target.prefix {
                Some(p) => scope.with_prefix(p.clone()),
                None => scope,
            }
        })
        .collect();
    let watched: Vec<String> = scopes.iter().map(Scope::resource).collect();
    let mut events = client.hooks().open(scopes, args.since).await?;
    ctx.out
        .note(&format!("Watching {} (Ctrl-C to stop)", watched.join(", ")));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut seen = 0u64;
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = &mut ctrl_c => return Ok(()),
        };
        let event = match next {
            None => return Ok(()),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(event)) => event,
        };
        let is_write = event.kind == HookEventKind::Write;
        let text = if ctx.out.json {
            serde_json::to_string(&event)?
        } else if is_write {
            human_line(&event)
        } else {
            ctx.out.notice(&format!(
                "note: some events were missed ({}); continuing after seq {}",
                field(event.reason.as_deref().unwrap_or("reset")),
                event.seq.unwrap_or_default()
            ));
            continue;
        };
        if !ctx.out.line(&text)? {
            return Ok(());
        }
        if is_write {
            seen += 1;
            if args.count == Some(seen) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    #[test]
    fn targets() {
        let t = parse_target("kv/notes/").unwrap();
        assert_eq!(
            (t.space, t.services, t.prefix.as_deref()),
            (None, vec!["kv"], Some("notes"))
        );
        let t = parse_target("sql").unwrap();
        assert_eq!((t.services, t.prefix), (vec!["sql"], None));
        let t = parse_target(&format!("{SPACE}/kv/a/b")).unwrap();
        assert_eq!(t.space.unwrap().to_string(), SPACE);
        assert_eq!(t.prefix.as_deref(), Some("a/b"));
        let t = parse_target(SPACE).unwrap();
        assert_eq!(t.services, vec!["kv", "sql"]);
        for bad in ["", "/", "files/x", "kv/a/../b", "tinycloud:nope/kv"] {
            assert_eq!(parse_target(bad).unwrap_err().exit, Exit::Usage, "{bad:?}");
        }
    }
}
