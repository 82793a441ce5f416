//! The outbox in the audit database, through drift_watch's outbox functions: the notifier's login
//! holds EXECUTE on those and nothing on any table. Claim (with a claim token), read what to
//! deliver, then acknowledge, postpone or park with that token. The database is the truth; NOTIFY
//! only says "look now".

use std::time::Duration;

use tokio_postgres::Client;

use crate::render::DeltaRow;

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub run_id: i64,
    pub marker: String,
    /// Attempts including this one: above 1, an earlier attempt may have created the task.
    pub attempts: i32,
    /// This claim's token: only it can settle the item (None for unclaimed, dry-run items).
    pub claim: Option<String>,
}

fn item(r: &tokio_postgres::Row, claimed: bool) -> Item {
    Item {
        id: r.get(0),
        kind: r.get(1),
        target: r.get(2),
        run_id: r.get(3),
        marker: r.get(4),
        attempts: r.get(5),
        claim: if claimed { r.get(7) } else { None },
    }
}

/// Claims the next due item (`drift_watch.outbox_claim`): locked with SKIP LOCKED so replicas
/// never take the same row, the attempt recorded and a lease set before anything is sent (a
/// crash mid-delivery leaves the attempt visible, and another notifier takes the item over when
/// the lease ends). Follow-ups wait for the task they follow up on.
pub async fn claim(
    db: &mut Client,
    lease: Duration,
) -> Result<Option<Item>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "SELECT id, kind, target, run_id, marker, attempts, parent_id, claim_token::text
               FROM drift_watch.outbox_claim($1)",
            &[&lease.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|r| item(&r, true)))
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
    Ok(rows.iter().map(|r| item(r, false)).collect())
}

/// The deltas an item files (new_deltas) or follows up on (resolved), in display order.
async fn deltas(db: &Client, item: &Item) -> Result<Vec<DeltaRow>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT source_name, schema_name, table_name, column_name, change, contract_type,
                    live_type, detail, first_seen
               FROM drift_watch.outbox_deltas($1)",
            &[&item.id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeltaRow {
            source_name: r.get(0),
            schema_name: r.get(1),
            table_name: r.get(2),
            column_name: r.get(3),
            change: r.get(4),
            contract_type: r.get(5),
            live_type: r.get(6),
            detail: r.get(7),
            first_seen_at: r.get(8),
        })
        .collect())
}

/// What `drift_watch.outbox_item` says of an item.
struct ItemInfo {
    parent_task_gid: Option<String>,
    all_resolved: bool,
    error_first_line: Option<String>,
    run_ended: String,
}

async fn info(db: &Client, item: &Item) -> Result<ItemInfo, tokio_postgres::Error> {
    let r = db
        .query_one(
            "SELECT parent_task_gid, all_resolved, error_first_line, run_ended
               FROM drift_watch.outbox_item($1)",
            &[&item.id],
        )
        .await?;
    Ok(ItemInfo {
        parent_task_gid: r.get(0),
        all_resolved: r.get(1),
        error_first_line: r.get(2),
        run_ended: r.get(3),
    })
}

/// The deltas an announcement files.
pub async fn announced_deltas(
    db: &Client,
    item: &Item,
) -> Result<Vec<DeltaRow>, tokio_postgres::Error> {
    deltas(db, item).await
}

/// For a follow-up: the task it follows up on, the deltas resolved now, and whether every delta
/// of that task is resolved.
pub async fn resolution(
    db: &Client,
    item: &Item,
) -> Result<(Option<String>, Vec<DeltaRow>, bool), tokio_postgres::Error> {
    let info = info(db, item).await?;
    let resolved = deltas(db, item).await?;
    Ok((info.parent_task_gid, resolved, info.all_resolved))
}

/// For a recovery: the failure task it follows up on, and when the good run ended.
pub async fn recovery(
    db: &Client,
    item: &Item,
) -> Result<(Option<String>, String), tokio_postgres::Error> {
    let info = info(db, item).await?;
    Ok((info.parent_task_gid, info.run_ended))
}

/// For a failed run: the first line of its error (the whole text stays in drift_watch.runs)
/// and when it ended.
pub async fn failed_run(
    db: &Client,
    item: &Item,
) -> Result<(String, String), tokio_postgres::Error> {
    let info = info(db, item).await?;
    Ok((
        info.error_first_line
            .unwrap_or_else(|| "unknown error".to_string()),
        info.run_ended,
    ))
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
