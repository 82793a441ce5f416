//! Delivery: drain the outbox into Asana, exactly once per item.
//!
//! Exactly once against an API without idempotency keys: the attempt is recorded before the POST
//! (outbox::claim); every task carries its item's marker; an item on its second or later attempt
//! first looks for a task with its marker among the project's incomplete tasks, and only creates
//! one if there is none. Only a 2xx acknowledges an item. 429 waits `Retry-After`; 5xx, timeouts
//! and connection errors back off exponentially with jitter; a 4xx parks the item with Asana's
//! message until the notifier is restarted (with its configuration fixed). Nothing is dropped.

use std::time::Duration;

use rand::Rng;
use tokio_postgres::Client;
use tracing::{error, info, warn};

use crate::asana::{Asana, AsanaError};
use crate::outbox::{self, Item};
use crate::render;

/// Where tasks go: Asana, or standard output (dry run), each pending item printed once.
pub enum Sink {
    Asana(Asana),
    DryRun(std::sync::Mutex<std::collections::HashSet<i64>>),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Drained {
    pub delivered: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Asana(#[from] AsanaError),
    #[error("{0}")]
    Data(String),
}

/// Retries of one request after 429s before the item is postponed instead.
const RATE_LIMIT_RETRIES: usize = 5;
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// Exponential backoff with full jitter, capped: attempt 1 → up to 5 s, 2 → 10 s, ... ≤ 15 min.
pub fn backoff(attempts: i32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempts.clamp(0, 16).saturating_sub(1));
    let cap = exp.min(BACKOFF_CAP);
    let jittered = rand::thread_rng().gen_range(cap.as_secs_f64() / 2.0..=cap.as_secs_f64());
    Duration::from_secs_f64(jittered)
}

/// Runs an Asana call, waiting out 429s (a 429 has no side effect, so repeating is safe).
async fn rate_limited<T, F, Fut>(mut call: F) -> Result<T, AsanaError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AsanaError>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Err(AsanaError::RateLimited(wait)) if tries < RATE_LIMIT_RETRIES => {
                tries += 1;
                warn!(
                    wait_s = wait.as_secs(),
                    "Asana rate limit (429): waiting Retry-After"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Delivers every item due now, one at a time, until none is left or `stop` says so.
pub async fn drain(
    db: &mut Client,
    sink: &Sink,
    lease: Duration,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Drained, tokio_postgres::Error> {
    let mut drained = Drained::default();
    let asana = match sink {
        Sink::Asana(asana) => asana,
        Sink::DryRun(printed) => {
            print_dry_run(db, printed).await?;
            return Ok(drained);
        }
    };
    while !*stop.borrow() {
        let Some(item) = outbox::claim(db, lease).await? else {
            break;
        };
        match deliver(db, asana, &item).await {
            Ok(gid) => {
                if outbox::acknowledge(db, &item, &gid).await? {
                    drained.delivered += 1;
                    info!(item = item.id, kind = %item.kind, target = %item.target, task = %gid, "delivered");
                } else {
                    warn!(item = item.id, task = %gid, "delivered, but the claim had expired: another notifier owns the item now");
                }
            }
            Err(DeliverError::Db(e)) => return Err(e),
            Err(e) => {
                drained.failed += 1;
                let retry = match &e {
                    DeliverError::Asana(AsanaError::Rejected { status: 401, .. }) => {
                        error!(item = item.id, "Asana rejected the token (401): set a valid ASANA_TOKEN and restart; the item is kept");
                        None
                    }
                    DeliverError::Asana(AsanaError::Rejected { status, message }) => {
                        error!(item = item.id, status, %message, "Asana rejected the request; fix the configuration (project, section, assignee) and restart; the item is kept");
                        None
                    }
                    _ => {
                        let wait = backoff(item.attempts);
                        warn!(item = item.id, error = %e, retry_in_s = wait.as_secs(), "delivery failed; will retry");
                        Some(wait)
                    }
                };
                if !outbox::postpone(db, &item, retry, &e.to_string()).await? {
                    warn!(
                        item = item.id,
                        "the claim had expired: another notifier owns the item now"
                    );
                }
            }
        }
    }
    Ok(drained)
}

/// Delivers one claimed item; returns the Asana task it concerns.
async fn deliver(db: &Client, asana: &Asana, item: &Item) -> Result<String, DeliverError> {
    match item.kind.as_str() {
        "new_deltas" | "run_failed" => {
            if item.attempts > 1 {
                // An earlier attempt may have created the task before failing or crashing.
                if let Some(gid) = rate_limited(|| asana.find_task_by_marker(&item.marker)).await? {
                    info!(item = item.id, task = %gid, "found the task an earlier attempt created");
                    return Ok(gid);
                }
            }
            let draft = draft(db, item).await?;
            Ok(rate_limited(|| asana.create_task(&draft)).await?)
        }
        "resolved" => {
            let (gid, resolved, all_resolved) = outbox::resolution(db, item).await?;
            let gid = gid.ok_or_else(|| DeliverError::Data("follow-up without a task".into()))?;
            let text = render::resolution_comment(&resolved, all_resolved);
            rate_limited(|| asana.comment(&gid, &text)).await?;
            if all_resolved {
                rate_limited(|| asana.complete(&gid)).await?;
            }
            Ok(gid)
        }
        "recovered" => {
            let (gid, at) = outbox::recovery(db, item).await?;
            let gid = gid.ok_or_else(|| DeliverError::Data("follow-up without a task".into()))?;
            let text = render::recovery_comment(&item.target, &at);
            rate_limited(|| asana.comment(&gid, &text)).await?;
            rate_limited(|| asana.complete(&gid)).await?;
            Ok(gid)
        }
        other => Err(DeliverError::Data(format!("unknown outbox kind {other}"))),
    }
}

async fn draft(db: &Client, item: &Item) -> Result<render::TaskDraft, DeliverError> {
    Ok(match item.kind.as_str() {
        "run_failed" => {
            let (error, at) = outbox::failed_run(db, item).await?;
            render::failure_task(&item.target, &item.marker, item.run_id, &error, &at)
        }
        _ => {
            let deltas = outbox::announced_deltas(db, item).await?;
            render::new_deltas_task(&item.target, &item.marker, &deltas)
        }
    })
}

/// --dry-run: what would be sent, acknowledging nothing. Items already printed by this process
/// are not printed again (the sidecar drains on every poll and notification).
async fn print_dry_run(
    db: &Client,
    printed: &std::sync::Mutex<std::collections::HashSet<i64>>,
) -> Result<(), tokio_postgres::Error> {
    let items = outbox::pending(db).await?;
    // -1 (no outbox id) marks that this process has printed its first report.
    let first_time = printed.lock().map(|mut p| p.insert(-1)).unwrap_or(false);
    if items.is_empty() && first_time {
        println!("dry run: nothing pending");
    }
    for item in items {
        let new = printed
            .lock()
            .map(|mut p| p.insert(item.id))
            .unwrap_or(true);
        if !new {
            continue;
        }
        match item.kind.as_str() {
            "resolved" => {
                let (gid, resolved, all) = outbox::resolution(db, &item).await?;
                println!(
                    "=== dry run: comment on task {}{} ===\n{}\n",
                    gid.as_deref().unwrap_or("(not filed yet)"),
                    if all { " and mark it complete" } else { "" },
                    render::resolution_comment(&resolved, all)
                );
            }
            "recovered" => {
                let (gid, at) = outbox::recovery(db, &item).await?;
                println!(
                    "=== dry run: comment on task {} and mark it complete ===\n{}\n",
                    gid.as_deref().unwrap_or("(not filed yet)"),
                    render::recovery_comment(&item.target, &at)
                );
            }
            _ => match draft(db, &item).await {
                Ok(task) => println!(
                    "=== dry run: would create task ===\nname: {}\nhtml_notes:\n{}\n",
                    task.name, task.html_notes
                ),
                Err(DeliverError::Db(e)) => return Err(e),
                Err(e) => println!("=== dry run: item {} cannot be rendered: {e} ===", item.id),
            },
        }
    }
    Ok(())
}
