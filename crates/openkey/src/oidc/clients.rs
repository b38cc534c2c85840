//! Client registration by the operator (no dynamic registration): `openkey clients add --name N
//! --redirect-uri U [--redirect-uri U2] [--public]`, `openkey clients list`, `openkey clients
//! remove ID`, on the data dir directly (`--data-dir` / `OPENKEY_DATA_DIR`, as `serve`).
//!
//! A confidential client gets a 256-bit secret, printed once; only its SHA-256 is stored.
//! Redirect URIs must be absolute `https` URLs, or `http` on a loopback host (development),
//! without a fragment or user info; they are matched exactly.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use url::Url;

use super::random_token;
use crate::clock::{now_ms, rfc3339};
use crate::store::sqlite::SqliteStore;
use crate::store::{OidcClient, OidcStore, StoreError};

/// `openkey clients …`.
#[derive(Debug, Args)]
pub struct ClientsArgs {
    /// Data directory of the server.
    #[arg(
        long,
        env = "OPENKEY_DATA_DIR",
        default_value = "openkey-data",
        global = true
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    command: ClientsCommand,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Registers a client; prints its client_id (and, unless --public, its secret, once).
    Add {
        /// Name shown on the consent screen.
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE S256 required).
        #[arg(long)]
        public: bool,
    },
    /// Lists registered clients.
    List,
    /// Removes a client and every grant and token issued to it.
    Remove {
        /// The client_id.
        id: String,
    },
}

/// A client command that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a redirect URI (see the module doc).
pub fn check_redirect_uri(raw: &str) -> Result<(), ClientsError> {
    let bad = |why: &str| ClientsError::Invalid(format!("redirect URI {raw:?}: {why}"));
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if url.fragment().is_some() {
        return Err(bad("no fragment allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("no user info allowed"));
    }
    let loopback = matches!(
        url.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    );
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad("http is allowed only on a loopback host")),
        _ => Err(bad("use https (or http on a loopback host)")),
    }
}

/// Registers a client; returns it and, for a confidential client, its secret.
pub fn add(
    store: &dyn OidcStore,
    name: &str,
    redirect_uris: &[String],
    public: bool,
) -> Result<(OidcClient, Option<String>), ClientsError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(ClientsError::Invalid(
            "a name has 1 to 80 characters, no control characters".into(),
        ));
    }
    if redirect_uris.is_empty() {
        return Err(ClientsError::Invalid(
            "give at least one --redirect-uri".into(),
        ));
    }
    for u in redirect_uris {
        check_redirect_uri(u)?;
    }
    let secret = (!public).then(random_token);
    let client = OidcClient {
        id: random_token()[..22].to_string(),
        name: name.to_string(),
        secret_hash: secret
            .as_ref()
            .map(|s| Sha256::digest(s.as_bytes()).to_vec()),
        redirect_uris: redirect_uris.to_vec(),
        created_at: now_ms(),
    };
    store.add_client(&client)?;
    Ok((client, secret))
}

/// Runs `openkey clients …`.
pub fn run(args: ClientsArgs) -> Result<(), ClientsError> {
    let store = SqliteStore::open(&args.data_dir)?;
    match args.command {
        ClientsCommand::Add {
            name,
            redirect_uris,
            public,
        } => {
            let (client, secret) = add(&store, &name, &redirect_uris, public)?;
            println!("client_id: {}", client.id);
            match secret {
                Some(s) => {
                    println!("client_secret: {s}");
                    eprintln!("The secret is shown only now: store it with the client.");
                }
                None => eprintln!("Public client: no secret; it must use PKCE (S256)."),
            }
        }
        ClientsCommand::List => {
            for c in store.clients()? {
                let kind = if c.secret_hash.is_some() {
                    "confidential"
                } else {
                    "public"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.id,
                    kind,
                    c.name,
                    rfc3339(c.created_at),
                    c.redirect_uris.join(" ")
                );
            }
        }
        ClientsCommand::Remove { id } => match store.remove_client(&id) {
            Ok(()) => println!("removed {id}"),
            Err(StoreError::NotFound) => {
                return Err(ClientsError::Invalid(format!("no client {id}")))
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_redirect_uri;

    #[test]
    fn redirect_uris() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("https://u:p@app.example/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("/relative").is_err());
    }
}
