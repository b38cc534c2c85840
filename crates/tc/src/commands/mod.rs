//! Command implementations and what they share: the resolved profile, host and output mode.

pub mod auth;
pub mod delegate;
pub mod kv;
pub mod node;
pub mod secrets;
pub mod sql;
pub mod watch;

use std::io::Read as _;
use std::path::Path;

use anyhow::Result;
use tinycloud_sdk::{Config, Error as SdkError, TinyCloud};

use crate::cli::{
    AuthCommand, Cli, Command, DelegateCommand, KvCommand, NodeCommand, SecretsCommand,
};
use crate::error::{CliError, HintContext};
use crate::output::Output;
use crate::profile::{Home, Posture, Profile};

/// Used when neither --host, $TC_HOST nor the profile names a node.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8000";

/// Everything a command needs to know about the invocation.
#[derive(Debug)]
pub struct Ctx {
    /// State directory.
    pub home: Home,
    /// Selected profile name.
    pub profile: String,
    /// `--host` / `$TC_HOST`.
    pub host_flag: Option<String>,
    /// Output mode.
    pub out: Output,
    /// `--connect-timeout`, `--read-timeout`, `--timeout` (seconds).
    pub timeouts: [Option<i64>; 3],
}

impl Ctx {
    /// Resolves the global options.
    pub fn new(cli: &Cli) -> Self {
        let home = Home::from_env();
        let profile = cli
            .profile
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| home.default_profile())
            .unwrap_or_else(|| "default".into());
        Ctx {
            home,
            profile,
            host_flag: cli.host.clone().filter(|h| !h.is_empty()),
            out: Output {
                json: cli.json,
                quiet: cli.quiet,
            },
            timeouts: [cli.connect_timeout, cli.read_timeout, cli.timeout],
        }
    }

    /// The node URL: --host, else the profile's, else the default.
    pub fn host(&self, profile: Option<&Profile>) -> String {
        self.host_flag
            .clone()
            .or_else(|| profile.map(|p| p.config.host.clone()))
            .unwrap_or_else(|| DEFAULT_HOST.into())
            .trim_end_matches('/')
            .to_owned()
    }

    /// The selected profile, if it exists.
    pub fn load_profile(&self) -> Result<Option<Profile>, CliError> {
        self.home.load(&self.profile)
    }

    /// The selected profile, or an "auth required" failure saying how to create one.
    pub fn require_profile(&self) -> Result<Profile, CliError> {
        self.load_profile()?.ok_or_else(|| {
            CliError::auth_required(format!("profile {:?} does not exist", self.profile))
                .hint("run `tc auth login --generate` (owner) or `tc init --session-only` (agent)")
        })
    }

    /// Hints for failures, from the profile in use.
    pub fn hint_context(&self) -> HintContext {
        HintContext {
            posture: self.load_profile().ok().flatten().map(|p| p.config.posture),
        }
    }

    /// The SDK settings for `profile`: its node URL, space, pinned node DID, and timeouts.
    pub fn config(&self, profile: Option<&Profile>) -> Result<Config, CliError> {
        let mut config = Config::new(self.host(profile));
        if let Some(p) = profile {
            config.space_name = p.config.space_name.clone();
            if let Some(pinned) = &p.config.node_did {
                config.node_did = Some(pinned.parse().map_err(|e| {
                    CliError::general(format!(
                        "the pinned node DID of profile {:?} is invalid: {e}",
                        p.config.name
                    ))
                    .hint("re-pin it with `tc auth pin-node`")
                })?);
            }
        }
        let secs = |s: Option<i64>, default: std::time::Duration| {
            s.map_or(default, |s| {
                std::time::Duration::from_secs(s.max(1).unsigned_abs())
            })
        };
        let [connect, read, overall] = self.timeouts;
        config.connect_timeout = secs(connect, config.connect_timeout);
        config.read_timeout = secs(read, config.read_timeout);
        config.request_timeout = secs(overall, config.request_timeout);
        Ok(config)
    }

    /// A client for `profile` without a session.
    pub fn client(&self, profile: Option<&Profile>) -> Result<TinyCloud> {
        Ok(TinyCloud::new(self.config(profile)?)?)
    }

    /// The profile and a client holding its (checked, unexpired) session.
    pub fn session_client(&self) -> Result<(Profile, TinyCloud)> {
        let profile = self.require_profile()?;
        let session = profile.session()?.ok_or(SdkError::NotSignedIn)?;
        let client = self.client(Some(&profile))?;
        // Whose writes count as the owner's (`tinycloud_sdk::secrets::writer_of`): an owner
        // profile's own login keys; a delegate trusts the key that issued its delegation (the
        // owner's session key that shared with it). Nothing else, not even a key holding an
        // owner-signed grant.
        let owner_keys = match profile.config.posture {
            Posture::LocalOwnerKey => profile
                .config
                .owner_session_dids
                .iter()
                .chain(std::iter::once(&profile.config.session_did))
                .filter_map(|d| d.parse().ok())
                .collect::<Vec<_>>(),
            Posture::DelegateSession => session
                .delegation()
                .map(|d| vec![d.info().issuer.clone()])
                .unwrap_or_default(),
        };
        match client.restore(session) {
            Ok(()) => {
                client.add_owner_session_keys(owner_keys);
                Ok((profile, client))
            }
            Err(e @ SdkError::SessionExpired { .. }) => Err(e.into()),
            Err(e) => Err(CliError::auth_required(format!(
                "the stored session of profile {:?} is invalid: {e}",
                profile.config.name
            ))
            .hint(match profile.config.posture {
                Posture::LocalOwnerKey => "run `tc auth login`",
                Posture::DelegateSession => "import a new delegation with `tc auth import`",
            })
            .into()),
        }
    }
}

/// Longest document (request, delegation) read from a file or stdin: real ones are a few KiB.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

fn too_large(what: &str, limit: u64) -> CliError {
    CliError::usage(format!(
        "{what} is larger than {}; refused",
        crate::output::size(limit)
    ))
}

/// Reads at most `limit` bytes of UTF-8 text from `reader`; more is refused.
fn read_capped(reader: impl std::io::Read, limit: u64, what: &str) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::usage(format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(what, limit));
    }
    String::from_utf8(bytes).map_err(|_| CliError::usage(format!("{what} is not UTF-8 text")))
}

/// Reads a text file of at most `limit` bytes (checked before reading, and while reading).
pub fn read_capped_file(path: &Path, limit: u64) -> Result<String, CliError> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::usage(format!("cannot read {what}: {e}")))?;
    if file.metadata().is_ok_and(|m| m.len() > limit) {
        return Err(too_large(&what, limit));
    }
    read_capped(file, limit, &what)
}

/// Reads a whole document (at most [`MAX_DOCUMENT_BYTES`]) from a file, or stdin for `None` /
/// `-`.
pub fn read_source(source: Option<&str>) -> Result<String, CliError> {
    match source {
        None | Some("-") => read_capped(std::io::stdin().lock(), MAX_DOCUMENT_BYTES, "stdin"),
        Some(path) => read_capped_file(Path::new(path), MAX_DOCUMENT_BYTES),
    }
}

/// Writes an artifact to `output` and confirms with `done(path)` (the JSON result and the
/// human text), or prints it on stdout when no file is named.
pub fn emit_document(
    ctx: &Ctx,
    output: Option<&Path>,
    value: &serde_json::Value,
    done: impl FnOnce(&Path) -> (serde_json::Value, String),
) -> Result<(), CliError> {
    match output {
        Some(path) => {
            write_document(path, value)?;
            let (result, human) = done(path);
            ctx.out.done(&result, || human)
        }
        None => ctx.out.document(value),
    }
}

/// Writes a JSON document to a file (mode 0600: delegations are for one recipient).
fn write_document(path: &Path, value: &serde_json::Value) -> Result<(), CliError> {
    tinycloud_sdk::session::write_private(path, crate::output::to_json_text(value).as_bytes())
        .map_err(|e| CliError::general(format!("cannot write {}: {e}", path.display())))
}

/// Runs a parsed command.
pub async fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Init(args) => auth::init(ctx, args).await,
        Command::Auth(cmd) => match cmd {
            AuthCommand::Login(args) => auth::login(ctx, &ctx.profile, &args).await,
            AuthCommand::Status => auth::status(ctx),
            AuthCommand::Logout => auth::logout(ctx),
            AuthCommand::Request(args) => auth::request(ctx, &args),
            AuthCommand::Grant(args) => auth::grant(ctx, &args).await,
            AuthCommand::Import { source } => auth::import(ctx, source.as_deref()).await,
            AuthCommand::PinNode { yes } => auth::pin_node(ctx, yes).await,
        },
        Command::Kv(cmd) => match cmd {
            KvCommand::Get { key, output, raw } => kv::get(ctx, &key, output.as_deref(), raw).await,
            KvCommand::Put(args) => kv::put(ctx, args).await,
            KvCommand::Ls { prefix, limit } => kv::ls(ctx, prefix.as_deref(), limit).await,
            KvCommand::Rm { key, if_match } => kv::rm(ctx, &key, if_match.as_deref()).await,
            KvCommand::Head { key } => kv::head(ctx, &key).await,
            KvCommand::Share { key, ttl } => kv::share(ctx, &key, ttl).await,
        },
        Command::Sql(args) => sql::run(ctx, args).await,
        Command::Watch(args) => watch::run(ctx, &args).await,
        Command::Delegate(cmd) => match cmd {
            DelegateCommand::Create(args) => delegate::create(ctx, &args).await,
            DelegateCommand::Use { source } => auth::import(ctx, Some(&source)).await,
            DelegateCommand::Ls { all: false } => delegate::ls(ctx).await,
            DelegateCommand::Ls { all: true } => delegate::ls_all(ctx).await,
            DelegateCommand::Revoke { cid } => delegate::revoke(ctx, &cid).await,
        },
        Command::Secrets(cmd) => match cmd {
            SecretsCommand::Put(args) => secrets::put(ctx, &args).await,
            SecretsCommand::Get { name, scope, raw } => {
                secrets::get(ctx, &name, scope.as_deref(), raw).await
            }
            SecretsCommand::Ls { scope } => secrets::ls(ctx, scope.as_deref()).await,
            SecretsCommand::Rm { name, scope } => secrets::rm(ctx, &name, scope.as_deref()).await,
            SecretsCommand::Rotate(args) => secrets::rotate(ctx, &args).await,
            SecretsCommand::Info { name, scope } => {
                secrets::info(ctx, &name, scope.as_deref()).await
            }
            SecretsCommand::Grant(args) => secrets::grant(ctx, &args).await,
            SecretsCommand::Revoke { cid } => delegate::revoke(ctx, &cid).await,
            SecretsCommand::Audit {
                name,
                scope,
                network,
            } => secrets::audit(ctx, name.as_deref(), scope.as_deref(), &network).await,
            SecretsCommand::Run(args) => secrets::run(ctx, &args).await,
        },
        Command::Node(cmd) => match cmd {
            NodeCommand::Serve { config } => node::serve(config.as_deref()).await,
            NodeCommand::Info => node::info(ctx).await,
        },
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tc", &mut buf);
            ctx.out.raw(&buf)?;
            Ok(())
        }
    }
}
