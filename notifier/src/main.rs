//! drift-notifier: the entry point. Everything else is the `drift_notifier` library.

use std::process::ExitCode;

use clap::Parser;
use drift_notifier::commands;
use drift_notifier::config::{Cli, Command, ContractAction, LogFormat};
use drift_notifier::connection::{self, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRIFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(url) = cli.database_url.clone() else {
        eprintln!("error: set DATABASE_URL (or --database-url) to the audit database");
        return ExitCode::from(2);
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => connection::run(&url, args).await,
            Command::Contract {
                action: ContractAction::Push { path },
            } => commands::push(&url, &path).await,
            Command::Contract {
                action:
                    ContractAction::Check {
                        path,
                        target,
                        format,
                    },
            } => Ok(commands::gate(&url, &path, target.as_deref(), format).await),
            Command::Check { target } => commands::check(&url, target.as_deref()).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(Failure::Config(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Other(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
