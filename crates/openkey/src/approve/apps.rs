//! Which return URLs may receive approval codes: apps registered by the operator
//! (`openkey apps add --name N --return-url U`, `apps list`, `apps remove ID`), matched exactly,
//! and loopback URLs `http://127.0.0.1:<port>/…` / `http://[::1]:<port>/…` for native and CLI
//! clients (RFC 8252 §7.3: any port, since the client picks a free one at run time).

use std::path::PathBuf;

use url::{Host, Url};

use crate::clock::now_ms;
use crate::store::sqlite::SqliteStore;
use crate::store::{ApprovalApp, ApprovalStore, StoreError};

/// Why a return URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReturnUrlError {
    /// Not an absolute URL.
    #[error("return_url is not an absolute URL")]
    Malformed,
    /// Has a fragment or user info.
    #[error("return_url must not carry a fragment or user info")]
    Shape,
    /// Neither registered nor loopback.
    #[error("return_url is not registered for any app (and not a loopback http://127.0.0.1:<port>/ URL)")]
    NotRegistered,
    /// `client_id` names another app than the one registered for this URL.
    #[error("client_id does not match the app registered for return_url")]
    ClientMismatch,
}

/// The app a return URL belongs to: a registered one, or `None` for loopback.
pub fn check_return_url(
    store: &dyn ApprovalStore,
    raw: &str,
    client_id: Option<&str>,
) -> Result<Option<ApprovalApp>, ReturnUrlErrorOrStore> {
    let url = Url::parse(raw).map_err(|_| ReturnUrlError::Malformed)?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(ReturnUrlError::Shape.into());
    }
    if let Some(app) = store.approval_app_by_return_url(raw)? {
        if client_id.is_some_and(|c| c != app.id) {
            return Err(ReturnUrlError::ClientMismatch.into());
        }
        return Ok(Some(app));
    }
    let loopback = url.scheme() == "http"
        && url.port().is_some()
        && match url.host() {
            Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            _ => false,
        };
    if loopback && client_id.is_none() {
        Ok(None)
    } else {
        Err(ReturnUrlError::NotRegistered.into())
    }
}

/// A refused URL or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum ReturnUrlErrorOrStore {
    /// Refused.
    #[error(transparent)]
    Refused(#[from] ReturnUrlError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `openkey apps …`.
#[derive(Debug, clap::Args)]
pub struct AppsArgs {
    /// Directory of the database (as for `openkey serve`).
    #[arg(
        long,
        env = "OPENKEY_DATA_DIR",
        default_value = "openkey-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: AppsCommand,
}

/// The app commands.
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// Register an app and its exact return URL; prints its client id.
    Add {
        /// Shown to people on the approval page.
        #[arg(long)]
        name: String,
        /// Exact return URL (https, or http for development).
        #[arg(long)]
        return_url: String,
    },
    /// List registered apps.
    List,
    /// Remove an app by client id.
    Remove {
        /// The client id.
        id: String,
    },
}

/// An apps command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// Runs `openkey apps …`, printing to stdout.
pub fn run(args: AppsArgs) -> Result<(), AppsError> {
    let store = SqliteStore::open(&args.data_dir)?;
    match args.command {
        AppsCommand::Add { name, return_url } => {
            let url = Url::parse(&return_url)
                .map_err(|_| AppsError::Invalid("--return-url is not an absolute URL".into()))?;
            if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() {
                return Err(AppsError::Invalid(
                    "--return-url must be http(s) without a fragment".into(),
                ));
            }
            let name = name.trim().to_string();
            if name.is_empty() || name.len() > 100 {
                return Err(AppsError::Invalid("--name must be 1–100 characters".into()));
            }
            let app = ApprovalApp {
                id: uuid::Uuid::new_v4().to_string(),
                name,
                return_url,
                created_at: now_ms(),
            };
            store.add_approval_app(&app)?;
            println!("{}", app.id);
        }
        AppsCommand::List => {
            for app in store.approval_apps()? {
                println!("{}\t{}\t{}", app.id, app.name, app.return_url);
            }
        }
        AppsCommand::Remove { id } => {
            if !store.remove_approval_app(&id)? {
                return Err(AppsError::Invalid(format!("no app {id}")));
            }
            println!("removed {id}");
        }
    }
    Ok(())
}
