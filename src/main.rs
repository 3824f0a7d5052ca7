//! The `instagift` binary: parse the command line, run the subcommand, map
//! errors to exit codes (usage 2, runtime 1).

use clap::{CommandFactory, Parser};
use instagift::args::{Cli, Command};
use instagift::{admin, commands, log, server};
use std::ffi::OsString;
use std::process::ExitCode;

/// A bare `instagift [serve flags]` means `instagift serve [serve flags]`.
fn with_default_command(mut argv: Vec<OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let names: Vec<&str> = cmd
        .get_subcommands()
        .map(|c| c.get_name())
        .chain(["help"])
        .collect();
    let rest = argv.get(1..).unwrap_or(&[]);
    let named = rest
        .iter()
        .any(|a| a.to_str().is_some_and(|a| names.contains(&a)));
    let info = rest
        .iter()
        .any(|a| matches!(a.to_str(), Some("-h" | "--help" | "-V" | "--version")));
    if !named && !info {
        argv.insert(1.min(argv.len()), "serve".into());
    }
    argv
}

fn main() -> ExitCode {
    let args = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    log::set_level(&std::env::var("INSTAGIFT_LOG").unwrap_or_default());
    let result = match args.command {
        Command::Serve(serve) => {
            // Read by authentication and the writer's housekeeping.
            instagift::db::housekeeping::set_token_idle_secs(
                i64::from(serve.token_idle_days) * 86_400,
            );
            server::run(args.db, serve)
        }
        Command::Merchant(cmd) => commands::merchant(&args.db, &cmd),
        Command::Admin(cmd) => admin::commands::run(&args.db, &cmd),
        Command::Check => commands::check(&args.db),
        Command::Backup { file } => commands::backup(&args.db, &file),
        Command::Healthcheck { url } => commands::healthcheck(&url),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("instagift: {e}");
            ExitCode::from(1)
        }
    }
}
