//! `tc secrets run`: a command run with the readable secrets in its environment (only
//! there: not in its argv, not in ours, not in a file), under the rule of which secrets are
//! injected, with a report of what was left out and why.

use std::ffi::OsString;

use anyhow::Result;
use serde_json::{json, Value};
use tinycloud_sdk::secrets::{self as sdk};
use tinycloud_sdk::terminal::field;
use tinycloud_sdk::Error as SdkError;

use super::args::{label, name_arg, names_from_file, scope_arg, with_scope};
use super::vault::Vault;
use crate::cli::SecretRunArgs;
use crate::commands::Ctx;
use crate::error::{ChildExit, CliError};

/// Exit code of a finished child, shell style (128 + signal when killed by one).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

/// What `run` does with one readable secret.
#[derive(Debug, PartialEq, Eq)]
enum RunChoice {
    /// Inject it.
    Inject,
    /// Inject it, warning that someone other than the owner wrote it (it was named).
    InjectWithWarning(String),
    /// Leave it out: a short code (for `--json`) and why.
    Skip(&'static str, String),
}

/// What `run` tells the user: per secret left out or injected with a warning, and the
/// injected names (never values). Human text on stderr, or with `--json` one JSON object on
/// stderr (`{"secretsRun": …}`); `--quiet` hides both.
#[derive(Default)]
struct RunReport {
    skipped: Vec<(String, &'static str, String)>,
    warnings: Vec<(String, String)>,
    missing: Vec<String>,
    lines: Vec<(bool, String)>,
}

impl RunReport {
    fn skip(&mut self, name: &str, scope: Option<&str>, code: &'static str, why: String) {
        self.lines.push((
            true,
            format!(
                "warning: secret {} not injected: {why}",
                label(&field(name), scope)
            ),
        ));
        self.skipped.push((name.to_owned(), code, why));
    }

    fn warn(&mut self, name: &str, scope: Option<&str>, why: String) {
        self.lines.push((
            true,
            format!("warning: secret {} is {why}", label(&field(name), scope)),
        ));
        self.warnings.push((name.to_owned(), why));
    }

    fn missing(&mut self, name: &str, scope: Option<&str>) {
        self.lines.push((
            false,
            format!(
                "note: secret {} is granted but does not exist; skipped",
                label(&field(name), scope)
            ),
        ));
        self.missing.push(name.to_owned());
    }

    fn emit(&self, ctx: &Ctx, injected: &[String], scope: Option<&str>) {
        if ctx.out.json {
            let skipped: Vec<Value> = self
                .skipped
                .iter()
                .map(|(n, code, why)| json!({"name": n, "reason": code, "message": why}))
                .collect();
            let warnings: Vec<Value> = self
                .warnings
                .iter()
                .map(|(n, why)| json!({"name": n, "message": why}))
                .collect();
            ctx.out.event(&with_scope(
                json!({"secretsRun": {
                    "injected": injected,
                    "skipped": skipped,
                    "warnings": warnings,
                    "missing": self.missing,
                }}),
                scope,
            ));
            return;
        }
        for (notice, line) in &self.lines {
            if *notice {
                ctx.out.notice(line);
            } else {
                ctx.out.note(line);
            }
        }
        if injected.is_empty() {
            ctx.out
                .notice("No secrets to add; running the command with the current environment.");
        } else {
            ctx.out.notice(&format!(
                "Running with {} secret{} in the environment: {}",
                injected.len(),
                if injected.len() == 1 { "" } else { "s" },
                injected.join(", ")
            ));
        }
    }
}

/// The rule of `run`: deny-listed names and values an environment cannot carry are never
/// injected; a secret the owner did not write is injected only when the user named it.
fn run_choice(name: &str, value: &str, writer: &sdk::Writer, named: bool) -> RunChoice {
    if let Some(why) = sdk::denied(name) {
        return RunChoice::Skip("refused-name", format!("its name is refused ({why})"));
    }
    if sdk::check_value(value).is_err() {
        return RunChoice::Skip("nul-value", "its value contains a NUL byte".into());
    }
    if writer.is_owner() {
        return RunChoice::Inject;
    }
    let who = writer.to_string();
    if named {
        RunChoice::InjectWithWarning(format!("written by {who}"))
    } else {
        RunChoice::Skip(
            "not-owner",
            format!("written by {who}; name it with --only to use it anyway"),
        )
    }
}

/// `tc secrets run`.
pub async fn run(ctx: &Ctx, args: &SecretRunArgs) -> Result<()> {
    let scope = scope_arg(args.scope.as_deref())?;
    let scope = scope.as_deref();
    let mut only = args
        .only
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| name_arg(n))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(file) = &args.env_file {
        only.extend(names_from_file(file)?);
    }
    only.sort();
    only.dedup();
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(CliError::usage("no command to run")
            .hint("tc secrets run -- <command> [args…]")
            .into());
    };
    let vault = Vault::open(ctx)?;
    let explicit = !only.is_empty() || args.env_file.is_some();
    let candidates = if explicit {
        only
    } else {
        vault.readable_names(scope).await?
    };
    let secrets = vault.secrets()?;
    let mut names = Vec::with_capacity(candidates.len());
    let mut env: Vec<(String, String)> = Vec::with_capacity(candidates.len());
    let mut report = RunReport::default();
    for name in candidates {
        if let Some(why) = sdk::denied(&name) {
            report.skip(
                &name,
                scope,
                "refused-name",
                format!("its name is refused ({why}); remove it with `tc secrets rm {name}`"),
            );
            continue;
        }
        match secrets.read(&name, scope).await {
            Ok(secret) => {
                match run_choice(&name, &secret.value, &secret.info.writer, explicit) {
                    RunChoice::Inject => {}
                    RunChoice::InjectWithWarning(why) => report.warn(&name, scope, why),
                    RunChoice::Skip(code, why) => {
                        report.skip(&name, scope, code, why);
                        continue;
                    }
                }
                env.push((name.clone(), secret.value));
                names.push(name);
            }
            // A delegation may name secrets the owner has not stored (yet).
            Err(SdkError::NotFound(_)) if !explicit => report.missing(&name, scope),
            // An older envelope stored again: never injected; named, the run fails.
            Err(e @ SdkError::RolledBack { .. }) if !explicit => {
                report.skip(&name, scope, "rolled-back", e.to_string());
            }
            Err(e) => return Err(vault.failure(e, &name, scope, "read")),
        }
    }
    report.emit(ctx, &names, scope);
    let mut command = std::process::Command::new(program);
    command.args(program_args);
    // Values go only into the child's environment: not its argv, not ours, not a file.
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let spawned = command.spawn();
    drop(command);
    drop(env);
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_owned()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_owned()),
                _ => (126, e.to_string()),
            };
            ctx.out.error(&CliError::general(format!(
                "cannot run {}: {what}",
                display_program(program)
            )));
            return Err(ChildExit(code).into());
        }
    };
    let mut child = child;
    let mut wait = tokio::task::spawn_blocking(move || child.wait());
    // Ctrl-C reaches the child (same process group); stay alive to report its exit code.
    let status = loop {
        tokio::select! {
            r = &mut wait => break r,
            sig = tokio::signal::ctrl_c() => {
                if sig.is_err() {
                    break (&mut wait).await;
                }
            }
        }
    };
    let status = status
        .map_err(|e| CliError::general(format!("cannot wait for the command: {e}")))?
        .map_err(|e| CliError::general(format!("cannot wait for the command: {e}")))?;
    match exit_code(status) {
        0 => Ok(()),
        code => Err(ChildExit(u8::try_from(code & 0xff).unwrap_or(1)).into()),
    }
}

fn display_program(program: &OsString) -> String {
    program.to_string_lossy().into_owned()
}
