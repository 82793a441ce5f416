//! The audit database connection and the sidecar loop: connect (TLS per libpq's parameters, see
//! `tls`), drive the connection in its own task with notifications forwarded to a channel,
//! LISTEN and drain, reconnect with backoff when the connection is lost; the waits that a
//! shutdown request interrupts.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client};
use tracing::{info, warn};

use crate::asana::Asana;
use crate::config::RunArgs;
use crate::deliver::Notifier;
use crate::metrics::{self, Metrics};
use crate::outbox;
use crate::sink::{DryRun, Sink};
use crate::tls;

/// Why a command failed, and so how the process exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A usage or configuration error (a bad connection string, a certificate that does not
    /// pass, a missing setting): exit 2, so that a service manager does not restart into it.
    Config(String),
    /// Anything else: exit 1.
    Other(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Other(message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Config(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

/// A connected client and the notifications it receives (the channel closes when the
/// connection is lost).
pub type Connected = (
    Client,
    mpsc::UnboundedReceiver<tokio_postgres::Notification>,
);

/// Connects and drives the connection in its own task. A bad connection string or certificate
/// file, or a server whose TLS does not satisfy it, is `Failure::Config`: reconnecting cannot
/// help. Refused or dropped connections are `Failure::Other`, retried by the sidecar.
pub async fn connect(url: &str) -> Result<Connected, Failure> {
    let (client, mut connection) = match tls::connect(url).await {
        Ok(c) => c,
        Err(tls::ConnectError::Fatal(message)) => {
            return Err(Failure::Config(format!(
                "cannot connect to the audit database: {message}"
            )))
        }
        Err(tls::ConnectError::Transient(message)) => {
            return Err(Failure::Other(format!(
                "cannot connect to the audit database: {message}"
            )))
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

/// A database error as a person reads it: the server's message (and hint), else the client's.
pub fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Sleeps; true if shutdown was requested before or meanwhile (the sleep is cut short).
pub async fn wait_or_stop(wait: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut stop = stop.clone();
    if *stop.borrow_and_update() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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

/// `run`: the sidecar (or `--once`), until SIGTERM/SIGINT.
pub async fn run(url: &str, args: RunArgs) -> Result<ExitCode, Failure> {
    let (stop_tx, stop) = watch::channel(false);
    // Configuration errors exit 2, like usage errors: a service manager should not restart into
    // the same mistake (the systemd unit says RestartPreventExitStatus=2).
    let asana = match (&args.asana_token, args.dry_run) {
        (Some(token), false) if !token.is_empty() => {
            let project = args.asana_project.clone().ok_or_else(|| {
                Failure::Config(
                    "set ASANA_PROJECT to the gid of the Asana project to file tasks in".into(),
                )
            })?;
            Some(
                Asana::new(
                    &args.asana_base_url,
                    token,
                    project,
                    args.asana_section.clone(),
                    args.asana_assignee.clone(),
                )
                .map_err(Failure::Config)?
                .with_routing(crate::asana::Routing {
                    tags: crate::asana::Routing::parse_map(
                        "DRIFT_ASANA_SEVERITY_TAGS",
                        &args.asana_severity_tags,
                    )
                    .map_err(Failure::Config)?,
                    sections: crate::asana::Routing::parse_map(
                        "DRIFT_ASANA_SEVERITY_SECTIONS",
                        &args.asana_severity_sections,
                    )
                    .map_err(Failure::Config)?,
                    field: args.asana_severity_field.clone().filter(|f| !f.is_empty()),
                    field_options: crate::asana::Routing::parse_map(
                        "DRIFT_ASANA_SEVERITY_OPTIONS",
                        &args.asana_severity_options,
                    )
                    .map_err(Failure::Config)?,
                    info_digest: args.asana_info_digest,
                })
                .map_err(Failure::Config)?
                .with_quota(args.asana_requests_per_minute)
                .with_stop(stop.clone()),
            )
        }
        (_, true) => None,
        _ => {
            warn!("ASANA_TOKEN is not set: running in dry-run mode (printing tasks, acknowledging nothing)");
            None
        }
    };
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
    let lease = Duration::from_secs(args.lease_seconds.max(1));
    let metrics = match args.metrics_addr {
        Some(addr) => {
            let m = Metrics::new(Duration::from_secs(args.health_unreachable_seconds));
            let bound = metrics::serve(addr, m.clone())
                .await
                .map_err(Failure::Config)?;
            info!(%bound, "serving /metrics and /healthz");
            Some(m)
        }
        None => None,
    };
    match asana {
        Some(asana) => {
            let mut notifier = Notifier::new(asana, lease);
            notifier.metrics = metrics;
            serve(url, &args, notifier, stop).await
        }
        None => {
            let mut notifier = Notifier::new(DryRun, lease);
            notifier.metrics = metrics;
            serve(url, &args, notifier, stop).await
        }
    }
}

/// LISTEN, drain, wait for a notification or the next due item; reconnect when the connection
/// is lost. With `--once`: drain and exit.
async fn serve<S: Sink>(
    url: &str,
    args: &RunArgs,
    mut notifier: Notifier<S>,
    stop: watch::Receiver<bool>,
) -> Result<ExitCode, Failure> {
    if args.once {
        let (db, _) = connect(url).await?;
        outbox::unpark(&db).await.map_err(|e| db_error(&e))?;
        let drained = notifier.drain(&db, &stop).await.map_err(|e| db_error(&e))?;
        let left = if notifier.sink.acknowledges() {
            outbox::pending_count(&db).await.map_err(|e| db_error(&e))?
        } else {
            0
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
        let metrics = notifier.metrics.clone();
        let (db, mut notifications) = match connect(url).await {
            Ok(c) => c,
            Err(Failure::Config(m)) => return Err(Failure::Config(m)),
            Err(e) => {
                if let Some(m) = &metrics {
                    m.unreachable();
                }
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
        if let Some(m) = &metrics {
            m.reachable();
        }
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
            if let Err(e) = notifier.drain(&db, &stop).await {
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
            if let Some(m) = &metrics {
                match outbox::pending_stats(&db).await {
                    Ok((pending, oldest)) => m.polled(pending, oldest),
                    Err(e) => {
                        warn!(error = %db_error(&e), "cannot read the outbox's size for /metrics")
                    }
                }
            }
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
        if let Some(m) = &metrics {
            m.unreachable();
        }
        if wait_or_stop(reconnect_wait, &stop).await {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
