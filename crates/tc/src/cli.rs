//! Command-line syntax (clap derive). Behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::duration;

const TOP_EXAMPLES: &str = "\
Examples:
  # Owner: create a local owner key, sign in (creates the space) and store a note
  tc auth login --generate
  tc kv put notes/today.md \"hello\"
  tc kv get notes/today.md

  # Agent: make a session-only profile and hand its DID to the owner
  tc init --session-only --name agent
  tc delegate create --to did:key:z6Mk… --path notes/ --actions get,list -o deleg.json
  tc -p agent delegate use deleg.json
  tc -p agent kv get notes/today.md

  # Secrets: encrypted before they leave this machine; shared as read + decrypt
  printf '%s' \"$OPENAI_API_KEY\" | tc secrets put OPENAI_API_KEY --stdin
  tc secrets run -- ./my-script.sh

  # SQL, and a live feed of writes
  tc sql notes \"SELECT * FROM note\"
  tc watch kv/notes

  # Scripts and agents: machine-readable output and exit codes
  tc --json auth status

Exit codes: 0 ok, 1 error, 2 invalid input, 3 sign-in required, 4 not found,
5 permission denied, 6 network, 7 node error.
State lives in $TC_HOME (default ~/.tinycloud).";

/// The TinyCloud command-line tool: your data spaces, and delegations for people and agents.
#[derive(Debug, Parser)]
#[command(name = "tc", version, after_help = TOP_EXAMPLES)]
pub struct Cli {
    /// Profile to use [env: TC_PROFILE; default: config.json's defaultProfile, else "default"]
    #[arg(
        short = 'p',
        long,
        env = "TC_PROFILE",
        global = true,
        hide_env = true,
        help_heading = "Global options"
    )]
    pub profile: Option<String>,

    /// Node URL [env: TC_HOST; default: the profile's host, else http://127.0.0.1:8000]
    #[arg(
        short = 'H',
        long,
        env = "TC_HOST",
        global = true,
        hide_env = true,
        help_heading = "Global options"
    )]
    pub host: Option<String>,

    /// Machine-readable JSON on stdout; errors as {"error":{…}} on stderr
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Print only results, no notes or progress
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,

    /// Longest wait to connect to the node [env: TC_CONNECT_TIMEOUT; default: 10s]
    #[arg(long, env = "TC_CONNECT_TIMEOUT", hide_env = true, global = true, value_name = "DURATION", value_parser = duration::parse_secs, help_heading = "Global options")]
    pub connect_timeout: Option<i64>,

    /// Longest silence from the node while reading an answer [env: TC_READ_TIMEOUT; default: 30s]
    #[arg(long, env = "TC_READ_TIMEOUT", hide_env = true, global = true, value_name = "DURATION", value_parser = duration::parse_secs, help_heading = "Global options")]
    pub read_timeout: Option<i64>,

    /// Longest a request may take, streamed values excepted [env: TC_TIMEOUT; default: 60s]
    #[arg(long, env = "TC_TIMEOUT", hide_env = true, global = true, value_name = "DURATION", value_parser = duration::parse_secs, help_heading = "Global options")]
    pub timeout: Option<i64>,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a profile and its session key (and sign in, unless --session-only)
    #[command(after_help = "\
Examples:
  tc init --generate                      # owner profile with a new local owner key
  tc init --session-only --name agent     # agent profile: prints its DID, no owner key
  TINYCLOUD_PRIVATE_KEY=0x… tc init --name work --host https://node.example")]
    Init(InitArgs),
    /// Sign in, check status, and the request → grant → import flow for delegates
    #[command(
        subcommand,
        after_help = "\
Examples:
  tc auth login --generate                                   # owner
  tc auth status
  tc -p agent auth request --cap kv:notes/:get --emit req.json   # agent asks
  tc auth grant req.json -o grant.json                       # owner grants
  tc -p agent auth import grant.json                         # agent imports"
    )]
    Auth(AuthCommand),
    /// Read and write keys in the space
    #[command(
        subcommand,
        after_help = "\
Examples:
  tc kv put notes/today.md \"hello\"
  tc kv get notes/today.md
  tc kv ls notes/
  tc --json kv head notes/today.md
  tc kv rm notes/today.md"
    )]
    Kv(KvCommand),
    /// Run SQL on a database in the space, or export it
    #[command(
        override_usage = "tc sql [OPTIONS] <DB> <STATEMENT>\n       tc sql [OPTIONS] <DB> --export <FILE>",
        after_help = "\
Statements whose first keyword is SELECT, WITH, VALUES or EXPLAIN run as queries (they need
sql/read); anything else, or any statement with --write, runs as a write (sql/write;
CREATE/DROP/ALTER need sql/schema, PRAGMA sql/admin). The database is created by its first
write. Parameters bind to ? placeholders in order; blobs are arrays of byte values.
Human output is a table, or \"N rows changed\" for writes; --json prints the node's
{columns, rows, rowCount} or {changes, lastInsertRowId}. Invalid SQL exits 1 (SQL_ERROR).

Examples:
  tc sql notes \"CREATE TABLE note (id INTEGER PRIMARY KEY, title TEXT NOT NULL)\"
  tc sql notes \"INSERT INTO note (title) VALUES (?)\" --params '[\"hello\"]'
  tc sql notes \"SELECT id, title FROM note ORDER BY id\"
  tc --json sql notes \"SELECT * FROM note WHERE id = ?\" --params '[1]'
  tc sql notes \"WITH t AS (SELECT 1) INSERT INTO note (title) SELECT 'x' FROM t\" --write
  tc sql notes --export notes.db"
    )]
    Sql(SqlArgs),
    /// Print writes in the space as they happen
    #[command(after_help = "\
TARGET is <service>[/<prefix>] in the profile's space (for delegates: the delegation's
space) — kv, kv/notes, sql/<db>, sql/<db>/<table> — or <space>/<service>[/<prefix>], or a
bare <space> for both kv and sql. Needs tinycloud.hooks/subscribe on
<space>/hooks/<service>[/<prefix>]. A dropped connection is resumed without losing events.
Each event prints as `SEQ TIME ACTOR ABILITY PATH`, or as one JSON object per line with
--json. Runs until Ctrl-C; exits 5 if the subscription is revoked or expires.

Examples:
  tc watch kv/notes
  tc --json watch kv --count 10
  tc watch sql/notes
  tc watch kv/notes --since 41        # resume after the event with seq 41
  tc -p agent watch kv/notes          # as a delegate holding hooks:kv/notes:subscribe")]
    Watch(WatchArgs),
    /// Delegate capabilities to other keys (apps, agents, devices), list and revoke them
    #[command(
        subcommand,
        after_help = "\
Examples:
  tc delegate create --to did:key:z6Mk… --path notes/ --actions get,list -o deleg.json
  tc -p agent delegate use deleg.json
  tc delegate ls
  tc delegate revoke bafkr4i…"
    )]
    Delegate(DelegateCommand),
    /// Store secrets encrypted to your network, share them, run commands with them
    #[command(
        subcommand,
        after_help = "\
Secrets live in your `secrets` space at vault/secrets/<NAME> (or vault/secrets/scoped/<scope>/<NAME>),
encrypted to your `default` encryption network before they leave this machine. Values are read
from stdin or a hidden prompt, never from the command line. Names: A-Z, 0-9 and _, starting
with a letter. Reading a secret needs two grants: tinycloud.kv/get on its path and
tinycloud.encryption/decrypt on the network; `tc secrets grant` gives both in one delegation.

Examples:
  printf '%s' \"$KEY\" | tc secrets put OPENAI_API_KEY --stdin
  tc secrets put DB_URL --scope prod          # prompts for the value (hidden)
  tc secrets ls
  tc secrets run -- ./deploy.sh               # secrets as environment variables
  tc secrets grant OPENAI_API_KEY --to did:key:z6Mk… --for 1h -o grant.json
  tc -p agent delegate use grant.json && tc -p agent secrets get OPENAI_API_KEY
  tc secrets audit"
    )]
    Secrets(SecretsCommand),
    /// Run or inspect a node
    #[command(
        subcommand,
        after_help = "\
Examples:
  TINYCLOUD_PORT=9000 tc node serve
  tc node info"
    )]
    Node(NodeCommand),
    /// Print a shell completion script
    #[command(after_help = "\
Examples:
  tc completion bash > ~/.local/share/bash-completion/completions/tc
  tc completion zsh > \"${fpath[1]}/_tc\"
  tc completion fish > ~/.config/fish/completions/tc.fish")]
    Completion {
        /// Shell
        shell: clap_complete::Shell,
    },
}

/// Where the owner key comes from.
#[derive(Debug, Args, Clone, Default)]
pub struct LoginArgs {
    /// Read the owner's Ethereum private key (0x hex) from this file
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    pub key_file: Option<PathBuf>,
    /// Sign with an owner key held by this OpenKey server (each signature approved there)
    #[arg(long, value_name = "URL", conflicts_with_all = ["key_file", "generate"])]
    pub openkey: Option<String>,
    /// With --openkey: approve with a code on any browser instead of a loopback callback
    #[arg(long, requires = "openkey")]
    pub device: bool,
    /// Create a new owner key (stored in the profile's owner.json, mode 0600) if the profile has none
    #[arg(long)]
    pub generate: bool,
    /// Name of the space to sign in to (created if missing) [default: default]
    #[arg(long, value_name = "NAME")]
    pub space: Option<String>,
    /// SIWE domain of the sign-in message [default: app.tinycloud.xyz]
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
}

/// `tc init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Profile name [default: the global --profile]
    #[arg(long, value_name = "PROFILE")]
    pub name: Option<String>,
    /// Delegate/agent profile: a session key only, no owner key; prints the profile's DID
    #[arg(long, conflicts_with_all = ["key_file", "generate", "openkey", "space", "domain"])]
    pub session_only: bool,
    #[command(flatten)]
    pub login: LoginArgs,
}

/// `tc auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Sign in as the owner (SIWE); creates the space on first sign-in
    #[command(after_help = "\
The owner key comes from --key-file, else $TINYCLOUD_PRIVATE_KEY (0x hex), else the
profile's owner.json, else a new key with --generate (saved to owner.json, mode 0600).

Examples:
  tc auth login --generate
  TINYCLOUD_PRIVATE_KEY=0x… tc auth login --space photos
  tc auth login --key-file ./owner.key --host https://node.example
  tc auth login --openkey https://openkey.example [--device]")]
    Login(LoginArgs),
    /// Show who this profile is and whether its session is valid
    #[command(after_help = "\
Examples:
  tc auth status
  tc --json -p agent auth status")]
    Status,
    /// Forget the session (keys stay)
    #[command(after_help = "Examples:\n  tc auth logout\n  tc -p agent auth logout")]
    Logout,
    /// (delegate) Write a capability request for the owner to grant
    #[command(after_help = "\
Cap specs: <service>:<path>:<actions>, e.g. kv:notes/:get,list (an empty path means the
whole service); the reference form tinycloud.kv:<space>:<path>:<actions> is accepted too.

Examples:
  tc -p agent auth request --cap kv:notes/:get,list --expiry 1h --emit req.json
  tc -p agent auth request --cap kv:notes/:get --cap kv:drafts/:get,put > req.json")]
    Request(RequestArgs),
    /// (owner) Grant a capability request: shows what it allows, signs, emits the delegation
    #[command(after_help = "\
Examples:
  tc auth grant req.json -o grant.json
  cat req.json | tc auth grant --yes > grant.json")]
    Grant(GrantArgs),
    /// (delegate) Import a granted delegation as this profile's session
    #[command(after_help = "\
Accepts a tinycloud.auth.delegation artifact (from `tc auth grant`) or a bare portable
delegation (from `tc delegate create`).

Examples:
  tc -p agent auth import grant.json
  tc auth grant req.json --yes | tc -p agent auth import -")]
    Import {
        /// File to read, or `-` for stdin [default: stdin]
        source: Option<String>,
    },
    /// Pin (or re-pin) the node's DID in this profile: answers from a node with another DID are refused
    #[command(after_help = "\
The DID is pinned at sign-in and import. Re-pin only when the node's identity changed on
purpose (its operator replaced its secret): the node's current DID is fetched and shown.

Examples:
  tc auth pin-node
  tc --host https://new-node.example auth pin-node --yes")]
    PinNode {
        /// Re-pin without asking
        #[arg(short, long)]
        yes: bool,
    },
}

/// `tc auth request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Capability to request: <service>:<path>:<actions-csv> (repeatable)
    #[arg(long = "cap", value_name = "SPEC", required = true)]
    pub caps: Vec<String>,
    /// How long the grant should last
    #[arg(long, default_value = "7d", value_parser = duration::parse_secs)]
    pub expiry: i64,
    /// Write the request to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub emit: Option<PathBuf>,
}

/// `tc auth grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// Request file, or `-` for stdin [default: stdin]
    pub source: Option<String>,
    /// Sign without asking
    #[arg(short, long)]
    pub yes: bool,
    /// Write the delegation artifact to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `tc kv …`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Read a value (raw bytes to stdout, or --json, or -o FILE)
    #[command(after_help = "\
Examples:
  tc kv get notes/today.md
  tc kv get photos/cat.jpg -o cat.jpg
  tc --json kv get notes/today.md | jq -r .data")]
    Get {
        /// Key
        key: String,
        /// Write the value to this file
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Raw bytes on stdout even with --json
        #[arg(long)]
        raw: bool,
    },
    /// Write a value (from the argument, --file or --stdin)
    #[command(
        override_usage = "tc kv put [OPTIONS] <KEY> <VALUE | --file <FILE> | --stdin>",
        after_help = "\
Examples:
  tc kv put notes/today.md \"hello\"
  tc kv put photos/cat.jpg --file cat.jpg --content-type image/jpeg
  echo '{\"a\":1}' | tc kv put data.json --stdin --content-type application/json
  tc kv put counter 2 --if-match '\"blake3-…\"'"
    )]
    Put(PutArgs),
    /// List keys
    #[command(
        visible_alias = "list",
        after_help = "\
Examples:
  tc kv ls
  tc kv ls notes/ --limit 10
  tc --json kv ls notes/"
    )]
    Ls {
        /// Only keys starting with this prefix
        prefix: Option<String>,
        /// At most this many keys
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Delete a key
    #[command(visible_aliases = ["delete", "del"], after_help = "\
Examples:
  tc kv rm notes/old.md
  tc kv rm counter --if-match '\"blake3-…\"'")]
    Rm {
        /// Key
        key: String,
        /// Only if its current ETag is this
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
    },
    /// Print a signed URL anyone can download the value from, without credentials, until it
    /// expires (at most 5 minutes, and never after your session or delegation)
    #[command(after_help = "\
Examples:
  tc kv share photos/cat.jpg
  curl -o cat.jpg \"$(tc kv share photos/cat.jpg --ttl 2m)\"
  tc --json kv share notes/today.md | jq -r .url

The URL serves this version of the value only: it stops working (412) if the value changes,
and (401) when it expires or the delegation it was minted under is revoked.")]
    Share {
        /// Key
        key: String,
        /// How long the URL works (e.g. 90s, 5m; at most 5m)
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration::parse_secs)]
        ttl: i64,
    },
    /// Show whether a key exists, and its metadata (exit 0 either way)
    #[command(after_help = "\
Examples:
  tc kv head notes/today.md
  tc --json kv head notes/today.md | jq .exists")]
    Head {
        /// Key
        key: String,
    },
}

/// `tc kv put`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["value", "file", "stdin"])))]
pub struct PutArgs {
    /// Key
    pub key: String,
    /// The value
    pub value: Option<String>,
    /// Read the value from this file (streamed)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Read the value from stdin (streamed)
    #[arg(long)]
    pub stdin: bool,
    /// Content-Type to store
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Only write if the current ETag is this
    #[arg(long, value_name = "ETAG", conflicts_with = "if_absent")]
    pub if_match: Option<String>,
    /// Only write if the key does not exist yet
    #[arg(long)]
    pub if_absent: bool,
}

/// `tc sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Database name (letters, digits, '.', '_' or '-')
    pub db: String,
    /// The SQL statement
    #[arg(required_unless_present = "export")]
    pub statement: Option<String>,
    /// Parameters: a JSON array bound to the ? placeholders in order
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// Run as a write even if the statement starts like a query
    #[arg(long)]
    pub write: bool,
    /// Write a consistent snapshot of the database (an SQLite file) to FILE
    #[arg(long, value_name = "FILE", conflicts_with_all = ["statement", "params", "write"])]
    pub export: Option<PathBuf>,
}

/// `tc watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// What to watch: <service>[/<prefix>], <space>/<service>[/<prefix>] or <space>
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// Exit after this many write events
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Start after this sequence number (the seq of the last event handled; 0 replays the log)
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
}

/// `tc delegate …`.
#[derive(Debug, Subcommand)]
pub enum DelegateCommand {
    /// Delegate a slice of this profile's authority to another key (no wallet prompt)
    #[command(after_help = "\
Examples:
  tc delegate create --to did:key:z6Mk… --path notes/ --actions get,list --expiry 1h -o deleg.json
  tc delegate create --to did:key:z6Mk… --path drafts/ --actions get,put,del --yes > deleg.json
  tc delegate create --to did:key:z6Mk… --space secrets --path vault/secrets/API_KEY --actions get")]
    Create(CreateArgs),
    /// Use a received portable delegation as this (session-only) profile's session
    #[command(after_help = "\
Examples:
  tc -p agent delegate use deleg.json
  cat deleg.json | tc -p agent delegate use -")]
    Use {
        /// File to read, or `-` for stdin
        source: String,
    },
    /// List the delegations of the space (needs capabilities/read), or with --all every
    /// delegation the account issued or received, with its status (needs delegation/list)
    #[command(
        visible_alias = "list",
        after_help = "\
Examples:
  tc delegate ls
  tc --json delegate ls | jq '.delegations[] | select(.revoked | not) | .cid'
  tc delegate ls --all
  tc --json delegate ls --all | jq '.delegations[] | select(.status == \"active\") | .cid'"
    )]
    Ls {
        /// Every delegation the account issued or received, on any space (paged through
        /// `POST /delegation/query`), each with its status
        #[arg(long)]
        all: bool,
    },
    /// Revoke a delegation (and everything delegated from it)
    #[command(after_help = "Examples:\n  tc delegate revoke bafkr4i…")]
    Revoke {
        /// CID of the delegation
        cid: String,
    },
}

/// `tc delegate create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who receives it: a DID (e.g. the agent's did:key from `tc init --session-only`)
    #[arg(long, value_name = "DID")]
    pub to: String,
    /// Path inside the service (e.g. notes/); empty for the whole service
    #[arg(long, value_name = "PATH")]
    pub path: String,
    /// Actions, comma-separated (e.g. get,list)
    #[arg(long, value_name = "ACTIONS", value_delimiter = ',', required = true)]
    pub actions: Vec<String>,
    /// Service
    #[arg(long, default_value = "kv")]
    pub service: String,
    /// Another space of the same owner, by name (e.g. secrets) or id [default: the session's]
    #[arg(long, value_name = "SPACE")]
    pub space: Option<String>,
    /// How long it lasts (capped at this session's expiry)
    #[arg(long, default_value = "1h", value_parser = duration::parse_secs)]
    pub expiry: i64,
    /// Write the portable delegation to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sign without asking
    #[arg(short, long)]
    pub yes: bool,
}

/// `tc secrets …`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// (owner) Store a secret; the value comes from stdin or a hidden prompt, never argv
    #[command(
        override_usage = "tc secrets put [OPTIONS] <NAME>    (value on stdin, or typed at the hidden prompt)",
        after_help = "\
The value is read from stdin when it is piped (or with --stdin), else typed at a hidden prompt
(twice). One trailing newline is removed. Creates the `secrets` space and the `default`
encryption network on first use. Replacing a secret bumps its version (see `rotate` to keep
the previous value).

Examples:
  printf '%s' \"$OPENAI_API_KEY\" | tc secrets put OPENAI_API_KEY --stdin
  tc secrets put STRIPE_KEY                     # prompts
  tc secrets put DB_URL --scope prod --stdin < db-url.txt
  tc --json secrets put API_KEY --stdin <<< \"$KEY\""
    )]
    Put(SecretValueArgs),
    /// Print a secret's value (owner, or a delegate holding a grant)
    #[command(after_help = "\
Prints the value and a newline (--raw: no newline). --json prints {name, value}.
Exit 4 if the secret does not exist; exit 5 (naming the missing capability) if this profile
may not read or decrypt it.

Examples:
  tc secrets get OPENAI_API_KEY
  curl -H \"Authorization: Bearer $(tc secrets get API_KEY --raw)\" https://api.example
  tc --json secrets get DB_URL --scope prod
  tc -p agent secrets get OPENAI_API_KEY      # as a delegate after `tc delegate use grant.json`")]
    Get {
        /// Secret name (A-Z, 0-9, _)
        name: String,
        /// Scope (e.g. an app or environment name)
        #[arg(long, value_name = "SCOPE")]
        scope: Option<String>,
        /// No trailing newline (and the bare value even with --json)
        #[arg(long)]
        raw: bool,
    },
    /// List secret names (never values)
    #[command(
        visible_alias = "list",
        after_help = "\
For delegates: the secrets the delegation lets this profile read.

Examples:
  tc secrets ls
  tc secrets ls --scope prod
  tc --json secrets ls | jq -r '.secrets[]'"
    )]
    Ls {
        /// Scope
        #[arg(long, value_name = "SCOPE")]
        scope: Option<String>,
    },
    /// Delete a secret (its previous versions stay)
    #[command(visible_aliases = ["delete", "del"], after_help = "\
Examples:
  tc secrets rm OLD_TOKEN
  tc secrets rm DB_URL --scope staging")]
    Rm {
        /// Secret name
        name: String,
        /// Scope
        #[arg(long, value_name = "SCOPE")]
        scope: Option<String>,
    },
    /// (owner) Replace a secret's value, keeping the previous version
    #[command(
        override_usage = "tc secrets rotate [OPTIONS] <NAME>    (new value on stdin, or typed at the hidden prompt)",
        after_help = "\
Like `put`, but the secret must exist; the previous value is kept as a numbered version.
Prints the new version.

Examples:
  printf '%s' \"$NEW_KEY\" | tc secrets rotate OPENAI_API_KEY --stdin
  tc secrets rotate DB_PASSWORD --scope prod"
    )]
    Rotate(SecretValueArgs),
    /// Show a secret's version and dates (not its value)
    #[command(after_help = "\
Examples:
  tc secrets info OPENAI_API_KEY
  tc --json secrets info DB_URL --scope prod")]
    Info {
        /// Secret name
        name: String,
        /// Scope
        #[arg(long, value_name = "SCOPE")]
        scope: Option<String>,
    },
    /// Share secrets with another key: read + decrypt, one delegation for all names
    #[command(after_help = "\
Shows what the delegation allows and asks before signing (pass --yes without a terminal).
The recipient imports the printed (or -o) delegation with `tc delegate use FILE` or
`tc auth import FILE`; revoke it with `tc secrets revoke CID`.

Examples:
  tc secrets grant OPENAI_API_KEY --to did:key:z6Mk… --for 1h -o grant.json
  tc secrets grant DB_URL DB_PASSWORD --scope prod --to did:key:z6Mk… --for 1d --yes > grant.json")]
    Grant(SecretGrantArgs),
    /// Revoke a secrets grant (same as `tc delegate revoke`)
    #[command(after_help = "Examples:\n  tc secrets revoke bafkr4i…")]
    Revoke {
        /// CID of the delegation
        cid: String,
    },
    /// Show who decrypted a secret (or anything on your network), when, and whether it was allowed
    #[command(after_help = "\
With NAME, only the decrypt requests for that secret (its current value and every kept
version) are shown; without, every request on the network. Each record prints as
`TIME OUTCOME ACTOR`; --json prints the node's audit document (filtered the same way).

Examples:
  tc secrets audit OPENAI_API_KEY
  tc secrets audit DB_PASSWORD --scope prod
  tc --json secrets audit | jq '.records[] | select(.outcome == \"allowed\")'")]
    Audit {
        /// Secret name (omit for the whole network)
        name: Option<String>,
        /// Scope of the secret
        #[arg(long, value_name = "SCOPE", requires = "name")]
        scope: Option<String>,
        /// Network name or id
        #[arg(long, value_name = "NETWORK", default_value = "default")]
        network: String,
    },
    /// Run a command with the secrets this profile can read as environment variables
    #[command(
        override_usage = "tc secrets run [OPTIONS] -- <COMMAND> [ARGS]...",
        after_help = "\
Adds secrets as NAME=value to the command's environment and runs it with this terminal's
stdin/stdout/stderr; exits with the command's exit code. Which secrets: the ones you name
(--only, or --env-file with one NAME per line); without either, every secret of the scope this
profile can read (owner: all; delegate: the ones its delegation grants) that the owner wrote -
a secret someone else wrote (a delegate with write access) is skipped unless you name it.
Names that change how programs run (PATH, LD_*, DYLD_*, BASH_ENV, NODE_OPTIONS, PYTHON*, …;
see the README) are never injected. The injected names (never values) are listed on stderr.
Values are never written to disk, put on a command line, or printed.

Examples:
  tc secrets run -- ./deploy.sh
  tc secrets run --scope prod --only DB_URL,DB_PASSWORD -- python manage.py migrate
  tc secrets run --env-file .tc-secrets -- npm start
  tc -p agent secrets run -- sh -c 'curl -H \"Authorization: Bearer $API_KEY\" https://api.example'"
    )]
    Run(SecretRunArgs),
}

/// `tc secrets put` / `rotate`.
#[derive(Debug, Args)]
pub struct SecretValueArgs {
    /// Secret name (A-Z, 0-9, _)
    pub name: String,
    /// Scope (e.g. an app or environment name)
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Read the value from stdin (the default when stdin is not a terminal)
    #[arg(long)]
    pub stdin: bool,
    /// Refused: values on the command line leak into shell history and the process list
    #[arg(
        hide = true,
        value_name = "VALUE",
        num_args = 0..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub value_in_argv: Vec<String>,
}

/// `tc secrets grant`.
#[derive(Debug, Args)]
pub struct SecretGrantArgs {
    /// Secret names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Who receives it: a DID (e.g. the agent's did:key from `tc init --session-only`)
    #[arg(long, value_name = "DID")]
    pub to: String,
    /// How long it lasts (capped at this session's expiry)
    #[arg(long = "for", visible_alias = "expiry", value_name = "DURATION", default_value = "1h", value_parser = duration::parse_secs)]
    pub duration: i64,
    /// Scope of the secrets
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Write the portable delegation to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sign without asking
    #[arg(short, long)]
    pub yes: bool,
}

/// `tc secrets run`.
#[derive(Debug, Args)]
pub struct SecretRunArgs {
    /// Scope
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Only these secrets (comma-separated); each must be readable
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Only the secrets named in FILE (one NAME per line; blank lines and `#` comments skipped)
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The command and its arguments (after `--`)
    #[arg(value_name = "COMMAND", required = true, last = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// `tc node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node in this process (until Ctrl-C / SIGTERM)
    #[command(after_help = "\
Configuration: defaults, then the TOML file (--config, $TINYCLOUD_CONFIG or ./tinycloud.toml),
then TINYCLOUD_* variables (e.g. TINYCLOUD_PORT=0, TINYCLOUD_STORAGE__DATADIR=./data).

Examples:
  tc node serve
  TINYCLOUD_PORT=9000 tc node serve --config tinycloud.toml")]
    Serve {
        /// TOML configuration file
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show what the node at --host reports about itself
    #[command(
        after_help = "Examples:\n  tc node info\n  tc --json -H https://node.example node info"
    )]
    Info,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
