//! `tinycloud-node`: runs a node with the embedded storage (SQLite + files under `./data`).

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

fn usage() -> ! {
    eprintln!(
        "usage: tinycloud-node [--config <file.toml>]\n\n\
         Runs a TinyCloud node. Configuration: defaults, then the TOML file (or $TINYCLOUD_CONFIG,\n\
         or ./tinycloud.toml), then TINYCLOUD_* environment variables, e.g.\n  \
         TINYCLOUD_ADDRESS=127.0.0.1 TINYCLOUD_PORT=8000 TINYCLOUD_STORAGE__DATADIR=./data\n  \
         TINYCLOUD_KEYS__SECRET=<base64url secret> TINYCLOUD_STORAGE__LIMIT='10 MiB'\n\
         Logs: RUST_LOG (default info)."
    );
    std::process::exit(2)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut config_file: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => {
                config_file = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage()))
            }
            "--help" | "-h" => usage(),
            "--version" | "-V" => {
                println!("tinycloud-node {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            _ => usage(),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match tinycloud_node::server::raise_open_files_limit() {
        Ok(l) => {
            let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |n| n.to_string());
            tracing::info!(
                soft = %show(l.soft),
                hard = %show(l.hard),
                raised = l.raised,
                "open file descriptor limit"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file descriptor limit"),
    }
    let config = tinycloud_node::config::Config::load(config_file.as_deref(), std::env::vars())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tinycloud_node::server::serve(
        config,
        tinycloud_node::server::shutdown_signal(),
    ))
}
