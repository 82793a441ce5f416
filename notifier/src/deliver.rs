//! Delivery: the policy that turns one outbox item into requests to a `Sink`, and the loop that
//! drains the outbox through it, exactly once per item.
//!
//! Exactly once against an API without idempotency keys: the attempt is recorded before anything
//! is sent (outbox::claim); every task carries its item's marker; just before every create, the
//! project's incomplete tasks are searched for that marker, and a task found is the item's task.
//! While an item is being delivered, a heartbeat extends its claim's lease every third of it, so
//! no other notifier takes the item over mid-delivery; a claim lost all the same stops the
//! delivery. Only a 2xx acknowledges an item. 5xx, timeouts and connection errors back off
//! exponentially with jitter; a 429 longer than the notifier's pause postpones the item by its
//! Retry-After; a 4xx parks the item with Asana's message until the notifier is restarted (with
//! its configuration fixed). Nothing is dropped.

use std::collections::HashSet;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_postgres::Client;
use tracing::{error, info, warn};

use drift_watch_core::Severity;

use crate::outbox::{self, Item, ItemInfo, Kind};
use crate::render::{self, DeltaRow};
use crate::sink::{Attachment, Sink, SinkError, MAX_PAUSE};

/// 429s on one item's create before it is postponed instead.
const CREATE_RATE_LIMIT_RETRIES: usize = 5;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub delivered: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Data(String),
}

/// What becomes of an item that was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Due again after this long.
    Retry(Duration),
    /// Not retried until a notifier restarts (a 4xx: the configuration needs fixing).
    Park,
}

const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// Exponential backoff with full jitter, capped: attempt 1 → up to 5 s, 2 → 10 s, ... ≤ 15 min.
pub fn backoff(attempts: i32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempts.clamp(0, 16).saturating_sub(1));
    let cap = exp.min(BACKOFF_CAP);
    let jittered = rand::thread_rng().gen_range(cap.as_secs_f64() / 2.0..=cap.as_secs_f64());
    Duration::from_secs_f64(jittered)
}

/// The policy for a failed delivery (database errors are not settled: the connection is).
pub fn settle(error: &DeliverError, attempts: i32) -> Settle {
    match error {
        DeliverError::Sink(SinkError::Rejected { .. }) => Settle::Park,
        DeliverError::Sink(SinkError::RateLimited(wait)) => Settle::Retry(*wait),
        // Shutdown cut a wait short: nothing was sent; another notifier may take it now.
        DeliverError::Sink(SinkError::Interrupted) => Settle::Retry(Duration::ZERO),
        _ => Settle::Retry(backoff(attempts)),
    }
}

/// What delivery reads about an item, besides the item itself.
#[allow(async_fn_in_trait)]
pub trait Store {
    async fn info(&self, item: &Item) -> Result<ItemInfo, DeliverError>;
    /// The item's deltas (new_deltas: those it files; resolved: those it follows up on), in
    /// display order, one at a time: a run's size never decides the notifier's memory.
    async fn for_each_delta(
        &self,
        item: &Item,
        each: &mut dyn FnMut(DeltaRow) -> Result<(), DeliverError>,
    ) -> Result<(), DeliverError>;
    /// A follow-up's comment was accepted: a retry must not post it again.
    async fn commented(&self, item: &Item) -> Result<(), DeliverError>;
}

/// Rows fetched from the database at a time.
const FETCH_ROWS: usize = 1000;

static CURSORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The audit database as a `Store`.
pub struct DbStore<'a>(pub &'a Client);

impl Store for DbStore<'_> {
    async fn info(&self, item: &Item) -> Result<ItemInfo, DeliverError> {
        Ok(outbox::info(self.0, item).await?)
    }

    async fn commented(&self, item: &Item) -> Result<(), DeliverError> {
        self.0
            .execute(
                "SELECT drift_watch.outbox_commented($1, $2::text::uuid)",
                &[&item.id, &item.claim],
            )
            .await?;
        Ok(())
    }

    /// Through a cursor (`WITH HOLD`, so no transaction stays open and the lease heartbeat
    /// commits on the same connection meanwhile), `FETCH_ROWS` at a time.
    async fn for_each_delta(
        &self,
        item: &Item,
        each: &mut dyn FnMut(DeltaRow) -> Result<(), DeliverError>,
    ) -> Result<(), DeliverError> {
        let cursor = format!(
            "drift_notifier_deltas_{}",
            CURSORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let query = outbox::DELTAS_SQL.replace("$1", &item.id.to_string());
        self.0
            .batch_execute(&format!(
                "DECLARE {cursor} NO SCROLL CURSOR WITH HOLD FOR {query}"
            ))
            .await?;
        let fetch = format!("FETCH {FETCH_ROWS} FROM {cursor}");
        let result = async {
            loop {
                let rows = self.0.query(&fetch, &[]).await?;
                for r in &rows {
                    each(outbox::delta_row(r).map_err(DeliverError::Data)?)?;
                }
                if rows.len() < FETCH_ROWS {
                    return Ok(());
                }
            }
        }
        .await;
        let closed = self.0.batch_execute(&format!("CLOSE {cursor}")).await;
        result.and(closed.map_err(DeliverError::from))
    }
}

/// The complete list of a run's deltas, as a CSV file written while they stream by; removed
/// when dropped.
struct CsvFile {
    file: Attachment,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl CsvFile {
    fn create(item: &Item) -> Result<CsvFile, DeliverError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!(
            "drift-notifier-{}-{}-{}.csv",
            std::process::id(),
            item.id,
            CURSORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| DeliverError::Data(format!("{}: {e}", path.display())))?;
        let mut csv = CsvFile {
            file: Attachment {
                name: format!("drift_watch-run-{}-changes.csv", item.run_id),
                content_type: "text/csv".into(),
                path,
                len: 0,
                rows: 0,
            },
            out: Some(std::io::BufWriter::new(f)),
        };
        csv.write(render::CSV_HEADER)?;
        Ok(csv)
    }

    fn write(&mut self, text: &str) -> Result<(), DeliverError> {
        use std::io::Write;
        let out = self.out.as_mut().expect("open");
        out.write_all(text.as_bytes())
            .map_err(|e| DeliverError::Data(format!("{}: {e}", self.file.path.display())))?;
        self.file.len += text.len() as u64;
        Ok(())
    }

    fn record(&mut self, d: &DeltaRow) -> Result<(), DeliverError> {
        self.file.rows += 1;
        self.write(&render::csv_record(d))
    }

    fn finish(&mut self) -> Result<(), DeliverError> {
        use std::io::Write;
        if let Some(mut out) = self.out.take() {
            out.flush()
                .map_err(|e| DeliverError::Data(format!("{}: {e}", self.file.path.display())))?;
        }
        Ok(())
    }
}

impl Drop for CsvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file.path);
    }
}

/// The task an item files, and for a large run the file with the complete list.
async fn draft<S: Sink, D: Store>(
    sink: &S,
    store: &D,
    item: &Item,
    info: &ItemInfo,
) -> Result<(render::TaskDraft, Option<CsvFile>), DeliverError> {
    Ok(match item.kind {
        Kind::RunFailed => {
            let task = render::failure_task(
                &item.target,
                &item.marker,
                item.run_id,
                info.error_first_line.as_deref().unwrap_or("unknown error"),
                &info.run_ended,
            );
            (task, None)
        }
        _ => {
            let mut task = render::NewDeltasTask::new(&item.target, &item.marker);
            let mut csv: Option<CsvFile> = None;
            // Owners of the exposures this drift reaches follow the task.
            let mut follower_emails: Vec<String> = Vec::new();
            store
                .for_each_delta(item, &mut |d| {
                    for e in d.impact.iter().flat_map(|i| i.exposures.iter()) {
                        if let Some(email) = &e.email {
                            if follower_emails.len() < MAX_FOLLOWERS
                                && !follower_emails.contains(email)
                            {
                                follower_emails.push(email.clone());
                            }
                        }
                    }
                    if csv.is_none() && task.total() == render::MAX_LISTED {
                        let mut file = CsvFile::create(item)?;
                        for listed in task.listed() {
                            file.record(listed)?;
                        }
                        csv = Some(file);
                    }
                    if let Some(file) = csv.as_mut() {
                        file.record(&d)?;
                    }
                    task.push(d);
                    Ok(())
                })
                .await?;
            if let Some(file) = csv.as_mut() {
                file.finish()?;
            }
            let name = csv.as_ref().map(|f| f.file.name.clone());
            let mut task = task.finish(name.as_deref());
            if let Some(owner) = &info.owner {
                let gid = sink.resolve_user(owner).await?;
                task.html_notes =
                    render::with_note(&task.html_notes, &render::owner_note(owner, gid.is_some()));
                task.assignee = gid;
            }
            for email in follower_emails {
                if let Some(gid) = sink.resolve_user(&email).await? {
                    if !task.followers.contains(&gid) && task.assignee.as_ref() != Some(&gid) {
                        task.followers.push(gid);
                    }
                }
            }
            (task, csv)
        }
    })
}

/// Followers added to one task at most.
const MAX_FOLLOWERS: usize = 20;

/// An info-only run, when the notifier digests those: a comment on the week's digest task
/// (found by its marker, created when missing) instead of a task of its own.
async fn deliver_digest<S: Sink, D: Store>(
    sink: &S,
    store: &D,
    item: &Item,
    info: &ItemInfo,
) -> Result<String, DeliverError> {
    let week = render::week_of(&info.run_ended);
    let marker = format!("digest {} {week}", item.target);
    let gid = match sink.find_task_by_marker(&marker).await? {
        Some(gid) => gid,
        None => {
            sink.create_task(&render::digest_task(&item.target, &week, &marker))
                .await?
        }
    };
    if !item.commented {
        let mut rows = Vec::new();
        let mut total = 0;
        store
            .for_each_delta(item, &mut |d| {
                total += 1;
                if rows.len() < render::MAX_LISTED {
                    rows.push(d);
                }
                Ok(())
            })
            .await?;
        sink.comment(&gid, &render::digest_comment(&rows, total, &info.run_ended))
            .await?;
        store.commented(item).await?;
    }
    Ok(gid)
}

/// Comment text at most this long (JSON-encoded), so that a comment request stays well under
/// 128 KiB.
const COMMENT_BUDGET: usize = 60 * 1024;

/// The complete list on the task: attached, or (when Asana refuses the attachment) posted as
/// comments each under `COMMENT_BUDGET`. A task found by its marker may have it already.
async fn attach_list<S: Sink>(
    sink: &S,
    item: &Item,
    gid: &str,
    file: &Attachment,
    found: bool,
) -> Result<(), DeliverError> {
    if found && sink.has_attachment(gid, &file.name).await? {
        return Ok(());
    }
    match sink.attach(gid, file).await {
        Ok(()) => {
            info!(item = item.id, task = %gid, rows = file.rows, bytes = file.len, "attached the complete list");
            Ok(())
        }
        Err(SinkError::Rejected { status, message }) => {
            warn!(item = item.id, task = %gid, status, %message, "Asana refused the attachment: posting the complete list as comments");
            post_as_comments(sink, gid, file).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn post_as_comments<S: Sink>(
    sink: &S,
    gid: &str,
    file: &Attachment,
) -> Result<(), DeliverError> {
    use std::io::BufRead;
    let read_error =
        |e: std::io::Error| DeliverError::Data(format!("{}: {e}", file.path.display()));
    let reader = std::io::BufReader::new(std::fs::File::open(&file.path).map_err(read_error)?);
    let mut lines = reader.lines();
    let header = lines
        .next()
        .transpose()
        .map_err(read_error)?
        .unwrap_or_default();
    let mut part = 1;
    let start = |part: usize| {
        format!(
            "The complete list of changes (CSV, part {part}; {} in all):\n{header}\n",
            file.rows
        )
    };
    let mut text = start(part);
    let mut has_rows = false;
    for line in lines {
        let line = line.map_err(read_error)?;
        if has_rows && render::json_len(&text) + render::json_len(&line) + 2 > COMMENT_BUDGET {
            sink.comment(gid, text.trim_end()).await?;
            part += 1;
            text = start(part);
        }
        text.push_str(&line);
        text.push('\n');
        has_rows = true;
    }
    if has_rows {
        sink.comment(gid, text.trim_end()).await?;
    }
    Ok(())
}

/// The task a follow-up concerns.
fn parent_task<S: Sink>(sink: &S, info: &ItemInfo) -> Result<String, DeliverError> {
    info.parent_task_gid
        .clone()
        .or_else(|| sink.unfiled_task().map(str::to_string))
        .ok_or_else(|| DeliverError::Data("follow-up without a task".into()))
}

/// Delivers one item; returns the Asana task it concerns.
pub async fn deliver<S: Sink, D: Store>(
    sink: &S,
    store: &D,
    item: &Item,
) -> Result<String, DeliverError> {
    match item.kind {
        Kind::NewDeltas | Kind::RunFailed => {
            let info = store.info(item).await?;
            if item.kind == Kind::NewDeltas
                && sink.digest_info()
                && info.severity == Some(Severity::Info)
            {
                return deliver_digest(sink, store, item, &info).await;
            }
            let (draft, csv) = draft(sink, store, item, &info).await?;
            let mut limited = 0;
            let (gid, found) = loop {
                // Just before every create: an earlier attempt, or a notifier whose claim ran
                // out, may have created the task (Asana has no idempotency keys).
                if let Some(gid) = sink.find_task_by_marker(&item.marker).await? {
                    info!(item = item.id, task = %gid, "found the task an earlier attempt created");
                    break (gid, true);
                }
                match sink.create_task(&draft).await {
                    // The sink pauses every request meanwhile; then search again, create again.
                    Err(SinkError::RateLimited(wait))
                        if wait <= MAX_PAUSE && limited < CREATE_RATE_LIMIT_RETRIES =>
                    {
                        limited += 1;
                        warn!(item = item.id, wait_s = wait.as_secs(), "Asana rate limit (429): waiting Retry-After, then searching for the task again before creating it");
                    }
                    other => break (other?, false),
                }
            };
            if let Some(csv) = &csv {
                attach_list(sink, item, &gid, &csv.file, found).await?;
            }
            Ok(gid)
        }
        Kind::Resolved => {
            let info = store.info(item).await?;
            let gid = parent_task(sink, &info)?;
            let mut resolved = Vec::new();
            let mut total = 0;
            store
                .for_each_delta(item, &mut |d| {
                    total += 1;
                    if resolved.len() < render::MAX_LISTED {
                        resolved.push(d);
                    }
                    Ok(())
                })
                .await?;
            if !item.commented {
                let text = render::resolution_comment(&resolved, total, info.all_resolved);
                sink.comment(&gid, &text).await?;
                store.commented(item).await?;
            }
            // A digest task collects many runs: it is never completed by one of them.
            let digested = sink.digest_info() && info.severity == Some(Severity::Info);
            if info.all_resolved && !digested {
                sink.complete(&gid).await?;
            }
            Ok(gid)
        }
        Kind::Recovered => {
            let info = store.info(item).await?;
            let gid = parent_task(sink, &info)?;
            if !item.commented {
                let text = render::recovery_comment(&item.target, &info.run_ended);
                sink.comment(&gid, &text).await?;
                store.commented(item).await?;
            }
            sink.complete(&gid).await?;
            Ok(gid)
        }
    }
}

/// Extends the claim every third of the lease while a delivery runs. Returns only when the
/// claim was lost; a database error is logged and the delivery left to its lease.
async fn heartbeat(db: &Client, item: &Item, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        match outbox::extend(db, item, lease).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                warn!(item = item.id, error = %crate::connection::db_error(&e), "cannot extend the claim's lease; delivering within it");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The outbox drained into a sink.
pub struct Notifier<S> {
    pub sink: S,
    /// How long a claim is reserved for this notifier (extended while delivering).
    pub lease: Duration,
    /// Counters for /metrics, when served.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// A dry run prints each item once per process.
    printed: HashSet<i64>,
    reported_empty: bool,
}

impl<S: Sink> Notifier<S> {
    pub fn new(sink: S, lease: Duration) -> Self {
        Notifier {
            sink,
            lease,
            metrics: None,
            printed: HashSet::new(),
            reported_empty: false,
        }
    }

    /// Delivers every item due now, one at a time, until none is left or `stop` says so.
    pub async fn drain(
        &mut self,
        db: &Client,
        stop: &watch::Receiver<bool>,
    ) -> Result<Drained, tokio_postgres::Error> {
        if !self.sink.acknowledges() {
            return self.dry_run(db).await;
        }
        let mut drained = Drained::default();
        let store = DbStore(db);
        while !*stop.borrow() {
            let Some(item) = outbox::claim(db, self.lease).await? else {
                break;
            };
            let outcome = tokio::select! {
                r = deliver(&self.sink, &store, &item) => Some(r),
                () = heartbeat(db, &item, self.lease) => None,
            };
            match outcome {
                None => {
                    warn!(item = item.id, "the claim was lost: another notifier owns the item now; stopped delivering it");
                }
                Some(Ok(gid)) => {
                    if outbox::acknowledge(db, &item, &gid).await? {
                        drained.delivered += 1;
                        if let Some(m) = &self.metrics {
                            m.delivered(item.id);
                        }
                        info!(item = item.id, kind = %item.kind, target = %item.target, task = %gid, "delivered");
                    } else {
                        warn!(item = item.id, task = %gid, "delivered, but the claim had expired: another notifier owns the item now");
                    }
                }
                Some(Err(DeliverError::Db(e))) => return Err(e),
                Some(Err(e)) => {
                    drained.failed += 1;
                    let retry = match settle(&e, item.attempts) {
                        Settle::Park => {
                            match &e {
                                DeliverError::Sink(SinkError::Rejected { status: 401, .. }) => error!(item = item.id, "Asana rejected the token (401): set a valid ASANA_TOKEN and restart; the item is kept"),
                                DeliverError::Sink(SinkError::Rejected { status, message }) => error!(item = item.id, status, %message, "Asana rejected the request; fix the configuration (project, section, assignee) and restart; the item is kept"),
                                _ => error!(item = item.id, error = %e, "parked"),
                            }
                            None
                        }
                        Settle::Retry(wait) => {
                            match &e {
                                DeliverError::Sink(SinkError::Interrupted) => info!(
                                    item = item.id,
                                    "shutdown: the item is released for the next notifier"
                                ),
                                _ => {
                                    warn!(item = item.id, error = %e, retry_in_s = wait.as_secs(), "delivery failed; will retry")
                                }
                            }
                            Some(wait)
                        }
                    };
                    if let Some(m) = &self.metrics {
                        m.failed(item.id, retry.is_none());
                    }
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

    /// A dry run: what would be sent for each pending item (claiming nothing, acknowledging
    /// nothing), through the same delivery policy. Items already printed by this process are
    /// not printed again (the sidecar drains on every poll and notification).
    async fn dry_run(&mut self, db: &Client) -> Result<Drained, tokio_postgres::Error> {
        let items = outbox::pending(db).await?;
        if items.is_empty() && !self.reported_empty {
            println!("dry run: nothing pending");
        }
        self.reported_empty = true;
        let store = DbStore(db);
        for item in items {
            if !self.printed.insert(item.id) {
                continue;
            }
            match deliver(&self.sink, &store, &item).await {
                Ok(_) => {}
                Err(DeliverError::Db(e)) => return Err(e),
                Err(e) => println!("=== dry run: item {} cannot be rendered: {e} ===", item.id),
            }
        }
        Ok(Drained::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::TaskDraft;
    use drift_watch_core::Change;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A sink that records every call and answers from a script (default: success).
    #[derive(Default)]
    struct Recording {
        calls: RefCell<Vec<String>>,
        /// Answers to find_task_by_marker, in order (default: none found).
        found: RefCell<VecDeque<Option<String>>>,
        /// Errors for the next calls, in order (None: succeed).
        errors: RefCell<VecDeque<Option<SinkError>>>,
        tasks: RefCell<Vec<TaskDraft>>,
        attached: RefCell<Vec<String>>,
        comments: RefCell<Vec<String>>,
    }

    impl Recording {
        fn next_error(&self) -> Result<(), SinkError> {
            match self.errors.borrow_mut().pop_front().flatten() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Sink for Recording {
        async fn find_task_by_marker(&self, marker: &str) -> Result<Option<String>, SinkError> {
            self.calls.borrow_mut().push(format!("find {marker}"));
            self.next_error()?;
            Ok(self.found.borrow_mut().pop_front().flatten())
        }
        async fn create_task(&self, task: &TaskDraft) -> Result<String, SinkError> {
            self.calls.borrow_mut().push("create".into());
            self.next_error()?;
            self.tasks.borrow_mut().push(task.clone());
            Ok(format!("{}", 100 + self.tasks.borrow().len()))
        }
        async fn comment(&self, task_gid: &str, text: &str) -> Result<(), SinkError> {
            self.calls.borrow_mut().push(format!(
                "comment {task_gid}: {}",
                text.lines().next().unwrap()
            ));
            self.next_error()?;
            self.comments.borrow_mut().push(text.to_string());
            Ok(())
        }
        async fn complete(&self, task_gid: &str) -> Result<(), SinkError> {
            self.calls.borrow_mut().push(format!("complete {task_gid}"));
            self.next_error()
        }
        async fn has_attachment(&self, task_gid: &str, name: &str) -> Result<bool, SinkError> {
            self.calls
                .borrow_mut()
                .push(format!("has_attachment {task_gid} {name}"));
            self.next_error()?;
            Ok(false)
        }
        async fn attach(&self, task_gid: &str, file: &Attachment) -> Result<(), SinkError> {
            self.calls
                .borrow_mut()
                .push(format!("attach {task_gid} {} {}", file.name, file.rows));
            self.next_error()?;
            let text = std::fs::read_to_string(&file.path).unwrap();
            assert_eq!(text.len() as u64, file.len);
            self.attached.borrow_mut().push(text);
            Ok(())
        }
    }

    /// An in-memory store.
    #[derive(Default)]
    struct Memory {
        info: ItemInfo,
        deltas: Vec<DeltaRow>,
    }

    impl Store for Memory {
        async fn info(&self, _item: &Item) -> Result<ItemInfo, DeliverError> {
            Ok(self.info.clone())
        }
        async fn for_each_delta(
            &self,
            _item: &Item,
            each: &mut dyn FnMut(DeltaRow) -> Result<(), DeliverError>,
        ) -> Result<(), DeliverError> {
            for d in &self.deltas {
                each(d.clone())?;
            }
            Ok(())
        }
        async fn commented(&self, _item: &Item) -> Result<(), DeliverError> {
            Ok(())
        }
    }

    fn item(kind: Kind) -> Item {
        Item {
            id: 7,
            kind,
            target: "app_replica".into(),
            run_id: 3,
            marker: "m7".into(),
            attempts: 1,
            parent_id: None,
            claim: Some("c".into()),
            commented: false,
        }
    }

    fn delta(table: &str, column: &str, change: Change) -> DeltaRow {
        DeltaRow {
            source_name: "app".into(),
            schema_name: "public".into(),
            table_name: table.into(),
            column_name: Some(column.into()),
            change,
            contract_type: None,
            live_type: Some("text".into()),
            detail: None,
            first_seen_at: "2026-11-25 06:00 UTC".into(),
            renamed_from: None,
            severity: None,
            impact: None,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_new_task_is_searched_for_by_marker_just_before_it_is_created() {
        let sink = Recording::default();
        let store = Memory {
            deltas: vec![delta("users", "a", Change::Added)],
            ..Default::default()
        };
        let gid = block_on(deliver(&sink, &store, &item(Kind::NewDeltas))).unwrap();
        assert_eq!(gid, "101");
        assert_eq!(sink.calls(), ["find m7", "create"]);
        assert!(sink.tasks.borrow()[0]
            .html_notes
            .contains("drift_watch marker: m7"));
    }

    #[test]
    fn a_task_found_by_its_marker_is_not_created_again_even_on_a_first_attempt() {
        let sink = Recording::default();
        sink.found.borrow_mut().push_back(Some("555".into()));
        let store = Memory {
            deltas: vec![delta("users", "a", Change::Added)],
            ..Default::default()
        };
        let mut failed = item(Kind::RunFailed);
        failed.attempts = 1;
        assert_eq!(block_on(deliver(&sink, &store, &failed)).unwrap(), "555");
        assert_eq!(sink.calls(), ["find m7"]);
    }

    #[test]
    fn a_create_answered_429_is_preceded_by_a_new_search_and_a_long_wait_postpones() {
        let sink = Recording::default();
        sink.errors.borrow_mut().extend([
            None,
            Some(SinkError::RateLimited(Duration::from_secs(6))),
            None,
        ]);
        sink.found.borrow_mut().extend([None, Some("777".into())]);
        let store = Memory::default();
        let gid = block_on(deliver(&sink, &store, &item(Kind::NewDeltas))).unwrap();
        assert_eq!(gid, "777", "another notifier created it meanwhile");
        assert_eq!(sink.calls(), ["find m7", "create", "find m7"]);

        let sink = Recording::default();
        sink.errors.borrow_mut().extend([
            None,
            Some(SinkError::RateLimited(Duration::from_secs(3600))),
        ]);
        let e = block_on(deliver(&sink, &store, &item(Kind::NewDeltas))).unwrap_err();
        assert_eq!(settle(&e, 1), Settle::Retry(Duration::from_secs(3600)));
        assert_eq!(sink.calls(), ["find m7", "create"], "not held");
    }

    #[test]
    fn resolutions_comment_and_complete_only_when_everything_is_resolved() {
        for (all, expected) in [
            (false, vec!["comment 42: 1 of the changes in this task is resolved: the live schema and the dbt contract agree "]),
            (true, vec!["comment 42: 1 of the changes in this task is resolved: the live schema and the dbt contract agree ", "complete 42"]),
        ] {
            let sink = Recording::default();
            let store = Memory {
                info: ItemInfo {
                    parent_task_gid: Some("42".into()),
                    all_resolved: all,
                    ..Default::default()
                },
                deltas: vec![delta("users", "a", Change::Added)],
            };
            assert_eq!(block_on(deliver(&sink, &store, &item(Kind::Resolved))).unwrap(), "42");
            let calls = sink.calls();
            assert_eq!(calls.len(), expected.len(), "{calls:?}");
            assert!(calls[0].starts_with("comment 42: 1 of the changes"), "{calls:?}");
            assert_eq!(calls.last().unwrap() == "complete 42", all);
        }
    }

    #[test]
    fn a_recovery_comments_on_the_failure_task_and_completes_it() {
        let sink = Recording::default();
        let store = Memory {
            info: ItemInfo {
                parent_task_gid: Some("9".into()),
                run_ended: "2026-11-25 06:00 UTC".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        block_on(deliver(&sink, &store, &item(Kind::Recovered))).unwrap();
        let calls = sink.calls();
        assert!(calls[0].starts_with("comment 9: The check of app_replica succeeds again"));
        assert_eq!(calls[1], "complete 9");
    }

    /// The soak found it: a comment accepted, then the completion failing, reposted the comment
    /// on every retry. A follow-up whose comment was posted only completes the task.
    #[test]
    fn a_retried_follow_up_does_not_post_its_comment_again() {
        let sink = Recording::default();
        let store = Memory {
            info: ItemInfo {
                parent_task_gid: Some("9".into()),
                all_resolved: true,
                run_ended: "2026-11-25 06:00 UTC".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        for kind in [Kind::Recovered, Kind::Resolved] {
            let mut retried = item(kind);
            retried.commented = true;
            block_on(deliver(&sink, &store, &retried)).unwrap();
        }
        assert_eq!(sink.calls(), ["complete 9", "complete 9"]);
    }

    #[test]
    fn a_follow_up_without_its_task_waits_except_in_a_dry_run() {
        let sink = Recording::default();
        let e = block_on(deliver(&sink, &Memory::default(), &item(Kind::Recovered))).unwrap_err();
        assert!(matches!(e, DeliverError::Data(ref m) if m == "follow-up without a task"));
        assert!(sink.calls().is_empty(), "nothing sent");
        assert!(matches!(settle(&e, 1), Settle::Retry(_)));
    }

    #[test]
    fn a_failed_create_is_not_acknowledged_and_the_error_is_settled_by_kind() {
        let sink = Recording::default();
        sink.errors
            .borrow_mut()
            .extend([None, Some(SinkError::Transient("HTTP 503".into()))]);
        let store = Memory::default();
        let e = block_on(deliver(&sink, &store, &item(Kind::NewDeltas))).unwrap_err();
        assert_eq!(sink.calls(), ["find m7", "create"]);
        match settle(&e, 2) {
            Settle::Retry(w) => {
                assert!(w >= Duration::from_secs(5) && w <= Duration::from_secs(10))
            }
            other => panic!("{other:?}"),
        }
        let rejected = DeliverError::Sink(SinkError::Rejected {
            status: 403,
            message: "no".into(),
        });
        assert_eq!(settle(&rejected, 1), Settle::Park);
        let limited = DeliverError::Sink(SinkError::RateLimited(Duration::from_secs(900)));
        assert_eq!(settle(&limited, 1), Settle::Retry(Duration::from_secs(900)));
        let interrupted = DeliverError::Sink(SinkError::Interrupted);
        assert_eq!(settle(&interrupted, 1), Settle::Retry(Duration::ZERO));
    }

    fn wide_run(n: usize) -> Memory {
        Memory {
            deltas: (0..n)
                .map(|i| {
                    delta(
                        &format!("t{:02}", i / 1000),
                        &format!("c,\"{i}\""),
                        Change::Added,
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_large_run_lists_300_summarises_the_rest_and_attaches_every_row() {
        let sink = Recording::default();
        let store = wide_run(20_000);
        block_on(deliver(&sink, &store, &item(Kind::NewDeltas))).unwrap();
        assert_eq!(
            sink.calls(),
            [
                "find m7",
                "create",
                "attach 101 drift_watch-run-3-changes.csv 20000"
            ]
        );
        let task = sink.tasks.borrow()[0].clone();
        assert!(render::json_len(&task.html_notes) <= render::BODY_BUDGET);
        assert_eq!(
            task.html_notes.matches("<li>").count() - 20,
            300,
            "300 listed, 20 summary lines"
        );
        assert!(
            task.name.starts_with(
                "dbt source drift on app_replica: 20000 changes (t00, t01, t02 +17 more)"
            ),
            "{}",
            task.name
        );
        assert!(
            task.html_notes
                .contains("<li>public.t00 (source app): 700 added</li>"),
            "{}",
            task.html_notes
        );
        assert!(task
            .html_notes
            .contains("<li>public.t19 (source app): 1000 added</li>"));
        assert!(task
            .html_notes
            .ends_with("drift_watch marker: m7</em></body>"));
        let csv = sink.attached.borrow()[0].clone();
        assert_eq!(csv.lines().count(), 20_001);
        assert!(csv.contains(
            "\r\napp,public,t19,\"c,\"\"19999\"\"\",added,,text,,2026-11-25 06:00 UTC\r\n"
        ));
        // Nothing is left behind in the temporary directory.
        assert!(!std::fs::read_dir(std::env::temp_dir()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("drift-notifier-{}-7-", std::process::id()))));
    }

    #[test]
    fn a_refused_attachment_becomes_comments_under_the_size_limit() {
        let sink = Recording::default();
        sink.errors.borrow_mut().extend([
            None,
            None,
            Some(SinkError::Rejected {
                status: 403,
                message: "attachments are disabled".into(),
            }),
        ]);
        block_on(deliver(&sink, &wide_run(5_000), &item(Kind::NewDeltas))).unwrap();
        let comments = sink.comments.borrow().clone();
        assert!(comments.len() > 1, "{:?}", sink.calls());
        let mut rows = 0;
        for c in &comments {
            assert!(render::json_len(c) <= COMMENT_BUDGET, "{}", c.len());
            rows += c.lines().count() - 2;
        }
        assert_eq!(rows, 5_000);
    }

    #[test]
    fn a_task_found_by_marker_gets_the_list_only_if_it_lacks_it() {
        let sink = Recording::default();
        sink.found.borrow_mut().push_back(Some("55".into()));
        block_on(deliver(&sink, &wide_run(301), &item(Kind::NewDeltas))).unwrap();
        assert_eq!(
            sink.calls(),
            [
                "find m7",
                "has_attachment 55 drift_watch-run-3-changes.csv",
                "attach 55 drift_watch-run-3-changes.csv 301"
            ]
        );
    }

    #[test]
    fn a_small_run_is_one_create_with_every_delta_listed() {
        let sink = Recording::default();
        block_on(deliver(&sink, &wide_run(300), &item(Kind::NewDeltas))).unwrap();
        assert_eq!(sink.calls(), ["find m7", "create"]);
        assert_eq!(
            sink.tasks.borrow()[0].html_notes.matches("<li>").count(),
            300
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_secs(5));
        assert!(backoff(3) >= Duration::from_secs(10) && backoff(3) <= Duration::from_secs(20));
        assert!(backoff(40) <= BACKOFF_CAP && backoff(40) >= BACKOFF_CAP / 2);
    }
}
