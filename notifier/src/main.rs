//! drift-notifier: the sidecar that turns drift_watch's outbox into Asana tasks, plus the
//! `contract push` and `check` commands an analytics engineer runs by hand.

mod asana;
mod deliver;
mod outbox;
mod render;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client};
use tracing::{info, warn};

use crate::deliver::Sink;

/// drift-notifier: deliver drift_watch's findings to Asana, load the dbt contract, run a check.
///
/// Configuration comes from flags or the environment. The Asana token is read from the
/// environment only and is never printed or logged.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Audit database (where drift_watch is installed), a libpq connection string, e.g.
    /// postgres://user@host/audit?sslmode=verify-full&sslrootcert=/etc/drift-watch/ca.crt
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "DRIFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
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
enum ContractAction {
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
enum GateFormat {
    Text,
    Markdown,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Deliver everything pending, then exit (0, or 1 if something could not be delivered).
    #[arg(long)]
    once: bool,
    /// Print the tasks that would be created instead of calling Asana; acknowledge nothing.
    #[arg(long)]
    dry_run: bool,
    /// Asana personal access token: from the environment variable ASANA_TOKEN only (a flag
    /// would show it in the process list).
    #[arg(skip = asana_token_from_env())]
    asana_token: Option<String>,
    /// Asana project gid where tasks are filed.
    #[arg(long, env = "ASANA_PROJECT")]
    asana_project: Option<String>,
    /// Asana section gid inside the project (optional).
    #[arg(long, env = "ASANA_SECTION")]
    asana_section: Option<String>,
    /// Assignee: a user gid, an email, or "me" (optional).
    #[arg(long, env = "ASANA_ASSIGNEE")]
    asana_assignee: Option<String>,
    /// Asana API base URL: https (http only for a loopback host).
    #[arg(
        long,
        env = "ASANA_BASE_URL",
        default_value = "https://app.asana.com/api/1.0"
    )]
    asana_base_url: String,
    /// Seconds between outbox polls (NOTIFY wakes the notifier earlier).
    #[arg(long, env = "DRIFT_POLL_SECONDS", default_value_t = 30)]
    poll_seconds: u64,
    /// Seconds a claimed item is reserved for this notifier before another may take it over.
    #[arg(long, env = "DRIFT_LEASE_SECONDS", default_value_t = 300)]
    lease_seconds: u64,
    /// Seconds to finish in-flight work after SIGTERM/SIGINT.
    #[arg(long, env = "DRIFT_SHUTDOWN_SECONDS", default_value_t = 30)]
    shutdown_seconds: u64,
}

/// ASANA_TOKEN. A value that is not UTF-8 is kept (lossily) so that it fails as a token does
/// instead of passing for "not set".
fn asana_token_from_env() -> Option<String> {
    std::env::var_os("ASANA_TOKEN").map(|t| t.to_string_lossy().into_owned())
}

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
            Command::Run(args) => run(&url, args).await,
            Command::Contract {
                action: ContractAction::Push { path },
            } => push(&url, &path).await,
            Command::Contract {
                action:
                    ContractAction::Check {
                        path,
                        target,
                        format,
                    },
            } => Ok(gate(&url, &path, target.as_deref(), format).await),
            Command::Check { target } => check(&url, target.as_deref()).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Connects and drives the connection in its own task; notifications arrive on the channel,
/// which closes when the connection is lost.
async fn connect(
    url: &str,
) -> Result<
    (
        Client,
        mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    ),
    String,
> {
    let (client, mut connection) = match tls::connect(url).await {
        Ok(c) => c,
        // A bad connection string or certificate file, or a server whose TLS does not satisfy
        // it: reconnecting cannot help, so exit 2 like any configuration error (the systemd unit
        // does not restart on it). Refused or dropped connections are retried by the callers.
        Err(tls::ConnectError::Fatal(message)) => {
            eprintln!("error: cannot connect to the audit database: {message}");
            std::process::exit(2);
        }
        Err(tls::ConnectError::Transient(message)) => {
            return Err(format!("cannot connect to the audit database: {message}"))
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "audit database connection lost");
                    break;
                }
            }
        }
    });
    Ok((client, rx))
}

fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Asana with a token (and then a project), a dry run otherwise.
fn sink(args: &RunArgs) -> Result<Sink, String> {
    Ok(match (&args.asana_token, args.dry_run) {
        (Some(token), false) if !token.is_empty() => {
            let project = args
                .asana_project
                .clone()
                .ok_or("set ASANA_PROJECT to the gid of the Asana project to file tasks in")?;
            Sink::Asana(asana::Asana::new(
                &args.asana_base_url,
                token,
                project,
                args.asana_section.clone(),
                args.asana_assignee.clone(),
            )?)
        }
        (_, true) => Sink::DryRun(Default::default()),
        _ => {
            warn!("ASANA_TOKEN is not set: running in dry-run mode (printing tasks, acknowledging nothing)");
            Sink::DryRun(Default::default())
        }
    })
}

async fn run(url: &str, args: RunArgs) -> Result<ExitCode, String> {
    // Configuration errors exit 2, like usage errors: a service manager should not restart into
    // the same mistake (the systemd unit says RestartPreventExitStatus=2).
    let sink = match sink(&args) {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let lease = Duration::from_secs(args.lease_seconds);
    let (stop_tx, stop) = watch::channel(false);
    let deadline = Duration::from_secs(args.shutdown_seconds);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!(
            deadline_s = deadline.as_secs(),
            "shutdown requested: finishing in-flight work"
        );
        let _ = stop_tx.send(true);
        // Past the deadline, leave: an unfinished item keeps its recorded attempt and lease, and
        // is taken over (and found by its marker) by the next notifier. Nothing is lost.
        tokio::time::sleep(deadline).await;
        warn!("shutdown deadline reached: in-flight work released to the lease");
        std::process::exit(0);
    });

    if args.once {
        let (mut db, _) = connect(url).await?;
        outbox::unpark(&db).await.map_err(|e| db_error(&e))?;
        let drained = deliver::drain(&mut db, &sink, lease, &stop)
            .await
            .map_err(|e| db_error(&e))?;
        let left = match sink {
            Sink::DryRun(_) => 0,
            Sink::Asana(_) => outbox::pending(&db).await.map_err(|e| db_error(&e))?.len(),
        };
        info!(
            delivered = drained.delivered,
            failed = drained.failed,
            pending = left,
            "done"
        );
        return Ok(if drained.failed > 0 || left > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }

    let poll = Duration::from_secs(args.poll_seconds.max(1));
    let mut reconnect_wait = Duration::from_millis(500);
    let mut unparked = false;
    loop {
        if *stop.borrow() {
            return Ok(ExitCode::SUCCESS);
        }
        let (mut db, mut notifications) = match connect(url).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, retry_in_ms = reconnect_wait.as_millis() as u64, "reconnecting");
                if wait_or_stop(reconnect_wait, &stop).await {
                    return Ok(ExitCode::SUCCESS);
                }
                reconnect_wait = (reconnect_wait * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // LISTEN first, then catch up: nothing committed in between can be missed.
        if let Err(e) = db.batch_execute("LISTEN drift_watch").await {
            warn!(error = %db_error(&e), "LISTEN failed; reconnecting");
            continue;
        }
        info!("listening on drift_watch");
        reconnect_wait = Duration::from_millis(500);
        if !unparked {
            match outbox::unpark(&db).await {
                Ok(n) if n > 0 => info!(
                    items = n,
                    "retrying items parked by an earlier Asana rejection"
                ),
                Ok(_) => {}
                Err(e) => warn!(error = %db_error(&e), "could not unpark items"),
            }
            unparked = true;
        }
        loop {
            if let Err(e) = deliver::drain(&mut db, &sink, lease, &stop).await {
                warn!(error = %db_error(&e), "delivery interrupted by a database error; reconnecting");
                break;
            }
            if *stop.borrow() {
                return Ok(ExitCode::SUCCESS);
            }
            let due = match outbox::next_due_in(&db).await {
                Ok(d) => d.map_or(poll, |d| d.min(poll)),
                Err(e) => {
                    warn!(error = %db_error(&e), "reconnecting");
                    break;
                }
            };
            let mut stop_changed = stop.clone();
            tokio::select! {
                n = notifications.recv() => match n {
                    Some(n) => info!(payload = %n.payload(), "notified"),
                    None => break,
                },
                _ = tokio::time::sleep(due.max(Duration::from_millis(200))) => {}
                _ = stop_changed.changed() => return Ok(ExitCode::SUCCESS),
            }
        }
        if wait_or_stop(reconnect_wait, &stop).await {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Sleeps; true if shutdown was requested meanwhile.
async fn wait_or_stop(wait: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut stop = stop.clone();
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `contract push PATH`: every document through load_contract, in one transaction.
async fn push(url: &str, path: &Path) -> Result<ExitCode, String> {
    let project = contract_documents(path)?;
    let (mut db, _) = connect(url).await?;
    let tx = db.transaction().await.map_err(|e| db_error(&e))?;
    let origins = load_project(&tx, &project).await?;
    let row = tx
        .query_one(
            "SELECT sources, tables, columns FROM drift_watch.contract_summary($1)",
            &[&origins],
        )
        .await
        .map_err(|e| db_error(&e))?;
    tx.commit().await.map_err(|e| db_error(&e))?;
    let (sources, tables, columns): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    println!(
        "loaded {} file{}: {sources} sources, {tables} tables, {columns} columns",
        project.documents.len(),
        if project.documents.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Replaces, inside `tx`, what the project held with its documents; returns their origins.
async fn load_project(
    tx: &tokio_postgres::Transaction<'_>,
    project: &Project,
) -> Result<Vec<String>, String> {
    // Files that moved or were deleted, or the YAML a manifest now replaces, must not linger.
    for prefix in &project.prefixes {
        tx.execute("SELECT drift_watch.forget_contracts_under($1)", &[prefix])
            .await
            .map_err(|e| db_error(&e))?;
    }
    let mut origins = Vec::new();
    for (origin, text) in &project.documents {
        tx.query_one("SELECT drift_watch.load_contract($1, $2)", &[origin, text])
            .await
            .map_err(|e| format!("{}; nothing was changed", db_error(&e)))?;
        origins.push(origin.clone());
    }
    Ok(origins)
}

/// (origin, text) of one document.
type Document = (String, String);

/// What a push loads: the documents, and the origin prefixes it owns (replaced as a whole).
struct Project {
    documents: Vec<Document>,
    prefixes: Vec<String>,
}

/// Folders of a dbt project that never hold the project's own sources: installed packages,
/// build output, logs.
const SKIPPED_DIRS: &[&str] = &["dbt_packages", "dbt_modules", "target", "logs"];

/// The documents to load. A project directory: every YAML file under its model-paths (from
/// `dbt_project.yml`, dbt's default `models`), origins prefixed by the project's name, so that
/// several projects can feed one audit database and pushing one replaces only its own origins.
/// A `manifest.json`: one document, origin `<project>/manifest.json` when the manifest names its
/// project (replacing that project's YAML origins). A single YAML file: its path as given.
fn contract_documents(path: &Path) -> Result<Project, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    if path.is_file() {
        let text = read(path)?;
        if path.extension().is_some_and(|e| e == "json") {
            #[derive(serde::Deserialize)]
            struct Manifest {
                #[serde(default)]
                metadata: Option<Metadata>,
            }
            #[derive(serde::Deserialize)]
            struct Metadata {
                #[serde(default)]
                project_name: Option<String>,
            }
            let project = serde_json::from_str::<Manifest>(&text)
                .ok()
                .and_then(|m| m.metadata)
                .and_then(|m| m.project_name)
                .filter(|n| !n.is_empty() && !n.contains('/'));
            if let Some(name) = project {
                return Ok(Project {
                    documents: vec![(format!("{name}/manifest.json"), text)],
                    prefixes: vec![format!("{name}/")],
                });
            }
        }
        let origin = path.to_string_lossy().to_string();
        return Ok(Project {
            documents: vec![(origin, text)],
            prefixes: Vec::new(),
        });
    }
    if !path.is_dir() {
        return Err(format!("{}: no such file or directory", path.display()));
    }
    #[derive(serde::Deserialize)]
    struct DbtProject {
        #[serde(default)]
        name: Option<String>,
        #[serde(rename = "model-paths", alias = "source-paths", default)]
        model_paths: Option<Vec<String>>,
    }
    let project_file = path.join("dbt_project.yml");
    let (name, model_paths) = if project_file.is_file() {
        let project: DbtProject = serde_saphyr::from_str(&read(&project_file)?).map_err(|e| {
            format!(
                "{}: {}",
                project_file.display(),
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
        (
            project.name,
            project.model_paths.unwrap_or_else(|| vec!["models".into()]),
        )
    } else {
        (None, vec!["models".into()])
    };
    let name = name
        .or_else(|| {
            path.canonicalize()
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
        })
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("{}: cannot tell the dbt project's name", path.display()))?;
    let mut documents = Vec::new();
    let mut files = Vec::new();
    for mp in &model_paths {
        collect_yaml(&path.join(mp), &mut files)?;
    }
    files.sort();
    files.dedup();
    for file in files {
        let relative = file
            .strip_prefix(path)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        documents.push((format!("{name}/{relative}"), read(&file)?));
    }
    if documents.is_empty() {
        return Err(format!(
            "{}: no YAML files found under {}",
            path.display(),
            model_paths.join(", ")
        ));
    }
    Ok(Project {
        documents,
        prefixes: vec![format!("{name}/")],
    })
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                collect_yaml(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// One row of `drift_diff`.
type DiffRow = [String; 7];

async fn drift_rows(
    tx: &tokio_postgres::Transaction<'_>,
    target: Option<&str>,
) -> Result<Vec<DiffRow>, String> {
    let rows = tx
        .query(
            "SELECT source_name, schema_name || '.' || table_name, coalesce(column_name, ''),
                    change, coalesce(contract_type, ''), coalesce(live_type, ''),
                    coalesce(detail, '')
               FROM drift_watch.drift_diff($1)
              ORDER BY 2, 3, 4, 1",
            &[&target],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows
        .iter()
        .map(|r| std::array::from_fn(|i| r.get::<_, String>(i)))
        .collect())
}

/// `contract check PATH --target T`: exit 0 when merging leaves no drift, 1 when it leaves
/// some, 2 on any error. Runs in one transaction that is always rolled back.
async fn gate(url: &str, path: &Path, target: Option<&str>, format: GateFormat) -> ExitCode {
    match gate_inner(url, path, target, format).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn gate_inner(
    url: &str,
    path: &Path,
    target: Option<&str>,
    format: GateFormat,
) -> Result<ExitCode, String> {
    let project = contract_documents(path)?;
    let (mut db, _) = connect(url).await?;
    let tx = db.transaction().await.map_err(|e| db_error(&e))?;
    let key = |r: &DiffRow| (r[1].clone(), r[2].clone(), r[3].clone());
    let before = drift_rows(&tx, target).await?;
    load_project(&tx, &project).await?;
    let after = drift_rows(&tx, target).await?;
    tx.rollback().await.map_err(|e| db_error(&e))?;
    // Undocumented columns are coverage, not drift, and never fail the gate; except a column
    // this change stops documenting while it is live (coverage lost by the change itself).
    let before_columns: std::collections::HashSet<_> = before
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    let is_drift = |r: &&DiffRow| {
        r[3] != "undocumented" || !before_columns.contains(&(r[1].clone(), r[2].clone()))
    };
    let before_keys: std::collections::HashSet<_> = before.iter().map(key).collect();
    let after_keys: std::collections::HashSet<_> = after.iter().map(key).collect();
    let left: Vec<&DiffRow> = after.iter().filter(is_drift).collect();
    let fixed: Vec<&DiffRow> = before
        .iter()
        .filter(|r| r[3] != "undocumented")
        .filter(|r| !after_keys.contains(&key(r)))
        .collect();
    let introduced = left
        .iter()
        .filter(|r| !before_keys.contains(&key(r)))
        .count();
    let undocumented = after.iter().filter(|r| r[3] == "undocumented").count();
    let label = target.unwrap_or("the audit database");
    match format {
        GateFormat::Text => {
            println!(
                "contract check of {} against {label}: {} change{} left after merging ({introduced} introduced by this change), {} fixed, {undocumented} undocumented column{}",
                path.display(),
                left.len(),
                if left.len() == 1 { "" } else { "s" },
                fixed.len(),
                if undocumented == 1 { "" } else { "s" },
            );
            let header = [
                "source",
                "table",
                "column",
                "change",
                "contract type",
                "live type",
                "detail",
            ];
            if !left.is_empty() {
                println!("\nleft after merging:");
                print_table(
                    &header,
                    &left.iter().map(|r| (*r).clone()).collect::<Vec<_>>(),
                );
            }
            if !fixed.is_empty() {
                println!("\nfixed by merging:");
                print_table(
                    &header,
                    &fixed.iter().map(|r| (*r).clone()).collect::<Vec<_>>(),
                );
            }
        }
        GateFormat::Markdown => print!(
            "{}",
            render::gate_markdown(label, &left, &fixed, introduced, undocumented)
        ),
    }
    Ok(if left.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check [TARGET]`: one run now, and its deltas as a table.
async fn check(url: &str, target: Option<&str>) -> Result<ExitCode, String> {
    let (db, _) = connect(url).await?;
    let run: i64 = db
        .query_one("SELECT drift_watch.run_check($1)", &[&target])
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    let r = db
        .query_one(
            "SELECT status, error, deltas_new, deltas_resolved, deltas_open
               FROM drift_watch.runs WHERE run_id = $1",
            &[&run],
        )
        .await
        .map_err(|e| db_error(&e))?;
    let status: String = r.get(0);
    let label = target.unwrap_or("(the audit database)");
    if status == "failed" {
        let error: Option<String> = r.get(1);
        println!(
            "check {run} of {label} FAILED: {}",
            error.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    let (new, resolved, open): (Option<i32>, Option<i32>, Option<i32>) =
        (r.get(2), r.get(3), r.get(4));
    println!(
        "check {run} of {label}: {} open ({} new, {} resolved)",
        open.unwrap_or(0),
        new.unwrap_or(0),
        resolved.unwrap_or(0)
    );
    let rows = db
        .query(
            "SELECT source_name, schema_name || '.' || table_name, coalesce(column_name, ''), change,
                    coalesce(contract_type, ''), coalesce(live_type, ''), coalesce(detail, '')
               FROM drift_watch.open_deltas WHERE target IS NOT DISTINCT FROM $1",
            &[&target],
        )
        .await
        .map_err(|e| db_error(&e))?;
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| std::array::from_fn(|i| r.get::<_, String>(i)))
        .collect();
    print_table(
        &[
            "source",
            "table",
            "column",
            "change",
            "contract type",
            "live type",
            "detail",
        ],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

fn print_table(header: &[&str; 7], rows: &[[String; 7]]) {
    if rows.is_empty() {
        println!("no drift");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.to_vec()));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}
