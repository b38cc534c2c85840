//! `tc node …`: run a node in this process, or ask one about itself.

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::Result;
use serde_json::json;
use tracing_subscriber::EnvFilter;

use super::Ctx;

/// `tc node serve`: the same node as the `tinycloud-node` binary. Prints
/// `listening on http://<addr>` on stdout once bound; logs go to stderr.
pub async fn serve(config_file: Option<&Path>) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let config = tinycloud_node::config::Config::load(config_file, std::env::vars())?;
    tinycloud_node::server::serve(config, tinycloud_node::server::shutdown_signal()).await
}

/// `tc node info`.
pub async fn info(ctx: &Ctx) -> Result<()> {
    let profile = ctx.load_profile()?;
    let client = ctx.client(profile.as_ref())?;
    let host = ctx.host(profile.as_ref());
    let info = client.info().await?;
    ctx.out.result(
        &json!({
            "host": host,
            "protocol": info.protocol,
            "version": info.version,
            "nodeId": info.node_id,
            "features": info.features,
        }),
        || {
            format!(
                "host:     {host}\nnode:     {}\nversion:  {}\nprotocol: {}\nfeatures: {}",
                info.node_id,
                info.version,
                info.protocol,
                info.features.join(", ")
            )
        },
    )?;
    Ok(())
}
