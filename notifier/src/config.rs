//! Configuration: the command line and the environment (clap). Every setting of `run` is a flag
//! with an environment variable, except the Asana token (environment only, never printed).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// drift-notifier: deliver drift_watch's findings to Asana, load the dbt contract, run a check.
///
/// Configuration comes from flags or the environment. The Asana token is read from the
/// environment only and is never printed or logged.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Audit database (where drift_watch is installed), a libpq connection string, e.g.
    /// postgres://user@host/audit?sslmode=verify-full&sslrootcert=/etc/drift-watch/ca.crt
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "DRIFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once at startup
pub enum Command {
    /// Run the sidecar: LISTEN for drift_watch, deliver the outbox to Asana, until SIGTERM/SIGINT.
    Run(RunArgs),
    /// Manage the dbt source contract stored in the audit database.
    Contract {
        #[command(subcommand)]
        action: ContractAction,
    },
    /// Run one check now (drift_watch.run_check) and print its deltas.
    Check {
        /// Foreign server naming the replica; omit to check the audit database itself.
        target: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ContractAction {
    /// Load a dbt project directory (every YAML file under its model-paths), a single YAML
    /// file, or a manifest.json, in one transaction.
    Push {
        /// dbt project directory, properties file, or target/manifest.json.
        path: PathBuf,
    },
    /// A CI gate for the dbt repository: load the project into a transaction that is rolled
    /// back, compare it with the live schema of TARGET, print the drift merging it would leave
    /// (and what it would fix). Stores nothing. Exit 0: no drift; 1: drift; 2: error.
    Check {
        /// dbt project directory, properties file, or target/manifest.json.
        path: PathBuf,
        /// Foreign server naming the replica; omit to compare with the audit database itself.
        #[arg(long)]
        target: Option<String>,
        /// Output format: a plain table, or Markdown for a pull request comment.
        #[arg(long, value_enum, default_value_t = GateFormat::Text)]
        format: GateFormat,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum GateFormat {
    Text,
    Markdown,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Deliver everything pending, then exit (0, or 1 if something could not be delivered).
    #[arg(long)]
    pub once: bool,
    /// Print the tasks that would be created instead of calling Asana; acknowledge nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Asana personal access token: from the environment variable ASANA_TOKEN only (a flag
    /// would show it in the process list).
    #[arg(skip = asana_token_from_env())]
    pub asana_token: Option<String>,
    /// Asana project gid where tasks are filed.
    #[arg(long, env = "ASANA_PROJECT")]
    pub asana_project: Option<String>,
    /// Asana section gid inside the project (optional).
    #[arg(long, env = "ASANA_SECTION")]
    pub asana_section: Option<String>,
    /// Assignee: a user gid, an email, or "me" (optional).
    #[arg(long, env = "ASANA_ASSIGNEE")]
    pub asana_assignee: Option<String>,
    /// Per-severity tags: `breaking:TAG_GID,risky:TAG_GID,info:TAG_GID` (any subset).
    #[arg(long, env = "DRIFT_ASANA_SEVERITY_TAGS", default_value = "")]
    pub asana_severity_tags: String,
    /// Per-severity sections of the project (instead of ASANA_SECTION): `breaking:GID,...`.
    #[arg(long, env = "DRIFT_ASANA_SEVERITY_SECTIONS", default_value = "")]
    pub asana_severity_sections: String,
    /// An enum custom field for severity (its gid; needs a paid Asana plan) ...
    #[arg(long, env = "DRIFT_ASANA_SEVERITY_FIELD")]
    pub asana_severity_field: Option<String>,
    /// ... and its option gids: `breaking:OPTION_GID,risky:OPTION_GID,info:OPTION_GID`.
    #[arg(long, env = "DRIFT_ASANA_SEVERITY_OPTIONS", default_value = "")]
    pub asana_severity_options: String,
    /// Runs whose new drift is all `info` (added or undocumented columns) become a comment on
    /// the week's digest task instead of a task of their own.
    #[arg(long, env = "DRIFT_ASANA_INFO_DIGEST", default_value_t = false)]
    pub asana_info_digest: bool,
    /// Asana API base URL: https (http only for a loopback host).
    #[arg(
        long,
        env = "ASANA_BASE_URL",
        default_value = "https://app.asana.com/api/1.0"
    )]
    pub asana_base_url: String,
    /// Seconds between outbox polls (NOTIFY wakes the notifier earlier).
    #[arg(long, env = "DRIFT_POLL_SECONDS", default_value_t = 30)]
    pub poll_seconds: u64,
    /// Seconds a claimed item is reserved for this notifier before another may take it over.
    #[arg(long, env = "DRIFT_LEASE_SECONDS", default_value_t = 300)]
    pub lease_seconds: u64,
    /// Requests per minute sent to Asana at most (150: Asana's free plans; 1500 on paid ones).
    #[arg(long, env = "DRIFT_ASANA_REQUESTS_PER_MINUTE", default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..))]
    pub asana_requests_per_minute: u32,
    /// Serve Prometheus metrics at /metrics and a health check at /healthz on this address
    /// (e.g. 127.0.0.1:9187); off when unset.
    #[arg(long, env = "DRIFT_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// /healthz answers 503 once the audit database has been unreachable this many seconds.
    #[arg(long, env = "DRIFT_HEALTH_UNREACHABLE_SECONDS", default_value_t = 120)]
    pub health_unreachable_seconds: u64,
    /// Seconds to finish in-flight work after SIGTERM/SIGINT.
    #[arg(long, env = "DRIFT_SHUTDOWN_SECONDS", default_value_t = 30)]
    pub shutdown_seconds: u64,
}

/// ASANA_TOKEN. A value that is not UTF-8 is kept (lossily) so that it fails as a token does
/// instead of passing for "not set".
pub fn asana_token_from_env() -> Option<String> {
    std::env::var_os("ASANA_TOKEN").map(|t| t.to_string_lossy().into_owned())
}
