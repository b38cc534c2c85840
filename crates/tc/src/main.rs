//! `tc`, the TinyCloud command-line tool: owner sign-in, KV, and delegations for people and
//! agents. See `tc --help`.

#![forbid(unsafe_code)]

mod artifact;
mod cli;
mod commands;
mod duration;
mod error;
mod output;
mod posture;
mod profile;
mod table;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser as _;

use crate::cli::Cli;
use crate::commands::Ctx;
use crate::error::{classify, ChildExit, CliError, Exit};
use crate::output::Output;

fn exit(code: Exit) -> ExitCode {
    ExitCode::from(code as u8)
}

/// Reports a clap error: help and version are not errors; everything else is exit 2.
fn clap_failure(e: &clap::Error, json: bool) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ if json => {
            let rendered = e.render().to_string();
            let message = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            Output { json, quiet: false }
                .error(&CliError::new(Exit::Usage, "USAGE", message).hint("see `tc --help`"));
            exit(Exit::Usage)
        }
        _ => {
            let _ = e.print();
            exit(Exit::Usage)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return clap_failure(&e, args.iter().any(|a| a == "--json")),
    };
    let ctx = Ctx::new(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctx.out
                .error(&CliError::general(format!("cannot start the runtime: {e}")));
            return exit(Exit::Error);
        }
    };
    let result = runtime.block_on(commands::run(&ctx, cli.command));
    // Do not wait for a blocked stdin reader or idle connections on the way out.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(ChildExit(code)) = e.downcast_ref::<ChildExit>() {
                return ExitCode::from(*code);
            }
            let failure = classify(&e, &ctx.hint_context());
            ctx.out.error(&failure);
            exit(failure.exit)
        }
    }
}
