//! The outbox in the audit database: claim, read what to deliver, acknowledge. The database is the
//! truth; NOTIFY only says "look now".

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
    pub parent_id: Option<i64>,
}

/// Claims the next due item: locked with SKIP LOCKED so replicas never take the same row, the
/// attempt recorded and a lease set before anything is sent (a crash mid-delivery leaves the
/// attempt visible, and another notifier takes the item over when the lease ends). Follow-ups
/// wait for the task they follow up on.
pub async fn claim(
    db: &mut Client,
    lease: Duration,
) -> Result<Option<Item>, tokio_postgres::Error> {
    let tx = db.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT o.id FROM drift_watch.outbox o
              WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
                AND (o.parent_id IS NULL OR EXISTS (
                       SELECT 1 FROM drift_watch.outbox p
                        WHERE p.id = o.parent_id AND p.delivered_at IS NOT NULL))
              ORDER BY o.id LIMIT 1
              FOR UPDATE OF o SKIP LOCKED",
            &[],
        )
        .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let id: i64 = row.get(0);
    let row = tx
        .query_one(
            "UPDATE drift_watch.outbox
                SET attempts = attempts + 1, last_attempt_at = now(),
                    next_attempt_at = now() + make_interval(secs => $2)
              WHERE id = $1
              RETURNING id, kind, target, run_id, marker, attempts, parent_id",
            &[&id, &lease.as_secs_f64()],
        )
        .await?;
    tx.commit().await?;
    Ok(Some(Item {
        id: row.get(0),
        kind: row.get(1),
        target: row.get(2),
        run_id: row.get(3),
        marker: row.get(4),
        attempts: row.get(5),
        parent_id: row.get(6),
    }))
}

/// Items not delivered yet, without claiming them (for --dry-run).
pub async fn pending(db: &Client) -> Result<Vec<Item>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT id, kind, target, run_id, marker, attempts, parent_id FROM drift_watch.outbox
              WHERE delivered_at IS NULL ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Item {
            id: r.get(0),
            kind: r.get(1),
            target: r.get(2),
            run_id: r.get(3),
            marker: r.get(4),
            attempts: r.get(5),
            parent_id: r.get(6),
        })
        .collect())
}

const DELTA_COLUMNS: &str = "source_name, schema_name, table_name, column_name, change, \
     contract_type, live_type, detail, to_char(first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')";

fn delta_row(r: &tokio_postgres::Row) -> DeltaRow {
    DeltaRow {
        source_name: r.get(0),
        schema_name: r.get(1),
        table_name: r.get(2),
        column_name: r.get(3),
        change: r.get(4),
        contract_type: r.get(5),
        live_type: r.get(6),
        detail: r.get(7),
        first_seen_at: r.get(8),
    }
}

/// Which outbox link of `drift_watch.delta` to follow.
#[derive(Clone, Copy)]
enum Link {
    Announced,
    Resolved,
}

/// The deltas an outbox item announces or resolves, in display order.
async fn linked_deltas(
    db: &Client,
    link: Link,
    id: i64,
) -> Result<Vec<DeltaRow>, tokio_postgres::Error> {
    let column = match link {
        Link::Announced => "announce_outbox_id",
        Link::Resolved => "resolve_outbox_id",
    };
    let rows = db
        .query(
            &format!(
                "SELECT {DELTA_COLUMNS} FROM drift_watch.delta WHERE {column} = $1
                  ORDER BY source_name, schema_name, table_name, column_name NULLS FIRST, change"
            ),
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(delta_row).collect())
}

/// The deltas an announcement files.
pub async fn announced_deltas(
    db: &Client,
    item: &Item,
) -> Result<Vec<DeltaRow>, tokio_postgres::Error> {
    linked_deltas(db, Link::Announced, item.id).await
}

/// For a follow-up: the task it follows up on, the deltas resolved now, and whether every delta
/// of that task is resolved.
pub async fn resolution(
    db: &Client,
    item: &Item,
) -> Result<(Option<String>, Vec<DeltaRow>, bool), tokio_postgres::Error> {
    let parent = item.parent_id.unwrap_or_default();
    let gid: Option<String> = db
        .query_opt(
            "SELECT asana_task_gid FROM drift_watch.outbox WHERE id = $1",
            &[&parent],
        )
        .await?
        .and_then(|r| r.get(0));
    let resolved = linked_deltas(db, Link::Resolved, item.id).await?;
    let still_open: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM drift_watch.delta
                             WHERE announce_outbox_id = $1 AND resolved_run IS NULL)",
            &[&parent],
        )
        .await?
        .get(0);
    Ok((gid, resolved, !still_open))
}

/// When a check run ended, as the tasks and comments print it.
const RUN_ENDED: &str = "to_char(coalesce(finished_at, started_at) AT TIME ZONE 'UTC', \
                         'YYYY-MM-DD HH24:MI \"UTC\"')";

/// For a recovery: the failure task it follows up on, and when the good run ended.
pub async fn recovery(
    db: &Client,
    item: &Item,
) -> Result<(Option<String>, String), tokio_postgres::Error> {
    let row = db
        .query_one(
            &format!(
                "SELECT (SELECT asana_task_gid FROM drift_watch.outbox WHERE id = $2), {RUN_ENDED}
                   FROM drift_watch.check_run WHERE id = $1"
            ),
            &[&item.run_id, &item.parent_id.unwrap_or_default()],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// For a failed run: its error and when it ended.
pub async fn failed_run(
    db: &Client,
    item: &Item,
) -> Result<(String, String), tokio_postgres::Error> {
    let row = db
        .query_one(
            &format!(
                "SELECT coalesce(error, 'unknown error'), {RUN_ENDED}
                   FROM drift_watch.check_run WHERE id = $1"
            ),
            &[&item.run_id],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Delivered: only a 2xx from Asana gets here.
pub async fn acknowledge(
    db: &Client,
    item: &Item,
    task_gid: &str,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE drift_watch.outbox SET delivered_at = now(), asana_task_gid = $2, last_error = NULL
          WHERE id = $1",
        &[&item.id, &task_gid],
    )
    .await
    .map(|_| ())
}

/// Not delivered: try again after `retry_in`, or never by itself (`None`: a 4xx that needs the
/// configuration fixed; a restarted notifier retries those).
pub async fn postpone(
    db: &Client,
    item: &Item,
    retry_in: Option<Duration>,
    error: &str,
) -> Result<(), tokio_postgres::Error> {
    match retry_in {
        Some(wait) => {
            db.execute(
                "UPDATE drift_watch.outbox
                    SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                  WHERE id = $1",
                &[&item.id, &wait.as_secs_f64(), &error],
            )
            .await?
        }
        None => {
            db.execute(
                "UPDATE drift_watch.outbox SET next_attempt_at = 'infinity', last_error = $2
                  WHERE id = $1",
                &[&item.id, &error],
            )
            .await?
        }
    };
    Ok(())
}

/// At start: items parked by a 4xx get another chance (the configuration may have been fixed).
pub async fn unpark(db: &Client) -> Result<u64, tokio_postgres::Error> {
    db.execute(
        "UPDATE drift_watch.outbox SET next_attempt_at = now()
          WHERE delivered_at IS NULL AND next_attempt_at = 'infinity'",
        &[],
    )
    .await
}

/// The earliest time something becomes due, to sleep no longer than needed.
pub async fn next_due_in(db: &Client) -> Result<Option<Duration>, tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
               FROM drift_watch.outbox
              WHERE delivered_at IS NULL AND next_attempt_at < 'infinity'",
            &[],
        )
        .await?;
    let secs: Option<f64> = row.get(0);
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}
