//! The outbox in the audit database, through drift_watch's outbox functions: the notifier's login
//! holds EXECUTE on those and nothing on any table. Claim (with a claim token), read what to
//! deliver, extend the lease while delivering, then acknowledge, postpone or park with that
//! token. The database is the truth; NOTIFY only says "look now".

use std::time::Duration;

use drift_watch_core::{Change, Severity};
use tokio_postgres::Client;
use tracing::warn;

use crate::render::DeltaRow;

/// What an outbox item announces (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A run's new deltas: one task.
    NewDeltas,
    /// Deltas of an earlier task resolved: a comment, and the task completed when all are.
    Resolved,
    /// A run that could not read its target, after one that could: one task per outage.
    RunFailed,
    /// The first good run after a failure: a comment on the failure task, which is completed.
    Recovered,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::NewDeltas,
        Kind::Resolved,
        Kind::RunFailed,
        Kind::Recovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NewDeltas => "new_deltas",
            Kind::Resolved => "resolved",
            Kind::RunFailed => "run_failed",
            Kind::Recovered => "recovered",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the item files a task (rather than following up on one).
    pub fn files_a_task(self) -> bool {
        matches!(self, Kind::NewDeltas | Kind::RunFailed)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outbox row, claimed (or, for a dry run, only read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    pub kind: Kind,
    pub target: String,
    pub run_id: i64,
    pub marker: String,
    /// Attempts including this one: above 1, an earlier attempt may have created the task.
    pub attempts: i32,
    /// The item this one follows up on (resolved, recovered).
    pub parent_id: Option<i64>,
    /// This claim's token: only it can settle the item (None for unclaimed, dry-run items).
    pub claim: Option<String>,
    /// A follow-up whose comment an earlier attempt posted: only the completion is left.
    pub commented: bool,
}

/// An item, or the kind text nobody knows how to deliver.
fn item(r: &tokio_postgres::Row, claimed: bool) -> Result<Item, (i64, String, Option<String>)> {
    let kind: String = r.get(1);
    let claim: Option<String> = if claimed { r.get(7) } else { None };
    let Some(k) = Kind::parse(&kind) else {
        return Err((r.get(0), kind, claim));
    };
    Ok(Item {
        id: r.get(0),
        kind: k,
        target: r.get(2),
        run_id: r.get(3),
        marker: r.get(4),
        attempts: r.get(5),
        parent_id: r.get(6),
        commented: claimed && r.get::<_, Option<bool>>(8).unwrap_or(false),
        claim,
    })
}

/// Claims the next due item (`drift_watch.outbox_claim`): locked with SKIP LOCKED so replicas
/// never take the same row, the attempt recorded and a lease set before anything is sent (a
/// crash mid-delivery leaves the attempt visible, and another notifier takes the item over when
/// the lease ends). Follow-ups wait for the task they follow up on. An item of a kind this
/// notifier does not know is parked, saying so, and the next one is claimed.
pub async fn claim(db: &Client, lease: Duration) -> Result<Option<Item>, tokio_postgres::Error> {
    loop {
        let row = db
            .query_opt(
                "SELECT id, kind, target, run_id, marker, attempts, parent_id, claim_token::text,
                        commented
                   FROM drift_watch.outbox_claim($1)",
                &[&lease.as_secs_f64()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        match item(&row, true) {
            Ok(item) => return Ok(Some(item)),
            Err((id, kind, claim)) => {
                warn!(
                    item = id,
                    kind, "unknown outbox kind: parked (a newer notifier delivers it)"
                );
                db.query_one(
                    "SELECT drift_watch.outbox_postpone($1, $2::text::uuid, NULL, $3)",
                    &[&id, &claim, &format!("unknown outbox kind {kind}")],
                )
                .await?;
            }
        }
    }
}

/// Items not delivered yet, without claiming them (for --dry-run).
pub async fn pending(db: &Client) -> Result<Vec<Item>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT id, kind, target, run_id, marker, attempts, parent_id
               FROM drift_watch.outbox_pending()",
            &[],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| item(r, false).ok()).collect())
}

/// How many items are pending (for `run --once`'s exit status).
pub async fn pending_count(db: &Client) -> Result<usize, tokio_postgres::Error> {
    Ok(db
        .query("SELECT id FROM drift_watch.outbox_pending()", &[])
        .await?
        .len())
}

/// How many items are pending, and how long ago the oldest one's run ended (seconds).
pub async fn pending_stats(db: &Client) -> Result<(i64, Option<f64>), tokio_postgres::Error> {
    let r = db
        .query_one(
            "SELECT count(*), extract(epoch FROM now() - min(coalesce(r.finished_at, r.started_at)))::float8
               FROM drift_watch.outbox_pending() p
               LEFT JOIN drift_watch.runs r ON r.run_id = p.run_id",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}

/// One row of `drift_watch.outbox_deltas`. A change kind the core does not know (a newer
/// extension) is an error: better an item that waits than a task that says the wrong thing.
pub fn delta_row(r: &tokio_postgres::Row) -> Result<DeltaRow, String> {
    let change: String = r.get(4);
    Ok(DeltaRow {
        source_name: r.get(0),
        schema_name: r.get(1),
        table_name: r.get(2),
        column_name: r.get(3),
        change: Change::parse(&change).ok_or_else(|| format!("unknown change kind {change}"))?,
        contract_type: r.get(5),
        live_type: r.get(6),
        detail: r.get(7),
        first_seen_at: r.get(8),
        renamed_from: r.get(9),
        severity: r
            .get::<_, Option<String>>(10)
            .map(|s| Severity::parse(&s).ok_or_else(|| format!("unknown severity {s}")))
            .transpose()?,
        impact: r
            .get::<_, Option<String>>(11)
            .map(|j| serde_json::from_str(&j).map_err(|e| format!("impact: {e}")))
            .transpose()?,
    })
}

/// The query that reads an item's deltas (new_deltas: those it files; resolved: those it
/// follows up on), in display order; `delta_row` reads its rows.
pub const DELTAS_SQL: &str = "SELECT source_name, schema_name, table_name, column_name, change, \
     contract_type, live_type, detail, first_seen, renamed_from, severity, impact \
     FROM drift_watch.outbox_deltas($1)";

/// What `drift_watch.outbox_item` says of an item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemInfo {
    /// For a follow-up: the task it follows up on (None until that task is filed).
    pub parent_task_gid: Option<String>,
    /// For a resolution: whether every delta of the parent task is resolved now.
    pub all_resolved: bool,
    /// For a failed run: the first line of its error (the whole text stays in the database).
    pub error_first_line: Option<String>,
    /// When the item's run ended, formatted.
    pub run_ended: String,
    /// new_deltas (and its follow-ups): the owner the item is for (NULL: unowned), and its most
    /// urgent severity.
    pub owner: Option<String>,
    pub severity: Option<Severity>,
}

pub async fn info(db: &Client, item: &Item) -> Result<ItemInfo, tokio_postgres::Error> {
    let r = db
        .query_one(
            "SELECT parent_task_gid, all_resolved, error_first_line, run_ended, owner, severity
               FROM drift_watch.outbox_item($1)",
            &[&item.id],
        )
        .await?;
    Ok(ItemInfo {
        parent_task_gid: r.get(0),
        all_resolved: r.get(1),
        error_first_line: r.get(2),
        run_ended: r.get(3),
        owner: r.get(4),
        severity: r
            .get::<_, Option<String>>(5)
            .and_then(|s| Severity::parse(&s)),
    })
}

/// Delivered: only a 2xx from Asana gets here. False when this notifier's claim was lost (the
/// lease ran out and another notifier took the item over): nothing is changed then.
pub async fn acknowledge(
    db: &Client,
    item: &Item,
    task_gid: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(db
        .query_one(
            "SELECT drift_watch.outbox_ack($1, $2::text::uuid, $3)",
            &[&item.id, &item.claim, &task_gid],
        )
        .await?
        .get(0))
}

/// The delivery is still in progress: the claim's lease starts over (`outbox_extend`). False
/// when the claim was lost.
pub async fn extend(
    db: &Client,
    item: &Item,
    lease: Duration,
) -> Result<bool, tokio_postgres::Error> {
    Ok(db
        .query_one(
            "SELECT drift_watch.outbox_extend($1, $2::text::uuid, $3)",
            &[&item.id, &item.claim, &lease.as_secs_f64()],
        )
        .await?
        .get(0))
}

/// Not delivered: try again after `retry_in`, or never by itself (`None`: a 4xx that needs the
/// configuration fixed; a restarted notifier retries those). False when the claim was lost.
pub async fn postpone(
    db: &Client,
    item: &Item,
    retry_in: Option<Duration>,
    error: &str,
) -> Result<bool, tokio_postgres::Error> {
    let secs = retry_in.map(|w| w.as_secs_f64());
    Ok(db
        .query_one(
            "SELECT drift_watch.outbox_postpone($1, $2::text::uuid, $3, $4)",
            &[&item.id, &item.claim, &secs, &error],
        )
        .await?
        .get(0))
}

/// At start: items parked by a 4xx get another chance (the configuration may have been fixed).
pub async fn unpark(db: &Client) -> Result<u64, tokio_postgres::Error> {
    let n: i64 = db
        .query_one("SELECT drift_watch.outbox_unpark()", &[])
        .await?
        .get(0);
    Ok(n.max(0) as u64)
}

/// The earliest time something becomes due, to sleep no longer than needed.
pub async fn next_due_in(db: &Client) -> Result<Option<Duration>, tokio_postgres::Error> {
    let secs: Option<f64> = db
        .query_one("SELECT drift_watch.outbox_next_due()", &[])
        .await?
        .get(0);
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_sql_text() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("new_delta"), None);
        assert!(Kind::NewDeltas.files_a_task() && Kind::RunFailed.files_a_task());
        assert!(!Kind::Resolved.files_a_task() && !Kind::Recovered.files_a_task());
    }
}
