//! The `openkey` binary: `openkey serve [flags]`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "openkey",
    version,
    about = "OpenKey: owner keys operated with passkeys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve(Box<openkey::config::ServeArgs>),
    /// Manage the apps allowed to receive approval results (return URLs).
    Apps(openkey::approve::apps::AppsArgs),
    /// Register, list and remove OIDC clients (on the data dir).
    Clients(openkey::oidc::clients::ClientsArgs),
}

fn finish(result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openkey: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Apps(a) => {
            return finish(openkey::approve::apps::run(a).map_err(|e| e.to_string()))
        }
        Command::Clients(a) => {
            return finish(openkey::oidc::clients::run(a).map_err(|e| e.to_string()))
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openkey: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(openkey::server::serve(*args));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openkey: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
