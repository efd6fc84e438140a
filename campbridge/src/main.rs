//! `campbridge`: the operator command. Thin over `shared`: it parses arguments, wires adapters and
//! prints; every rule lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod config_cmd;
mod server;

#[derive(Debug, Parser)]
#[command(name = "campbridge", version, about = "Two-way sync between Basecamp and Jira/Bitbucket")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with campbridge.toml.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file; prints every problem as `file:line: message` and exits 1 if any.
    Check {
        /// The config file.
        #[arg(default_value = "campbridge.toml")]
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { command: ConfigCommand::Check { path } } => config_cmd::check(&path),
    }
}
