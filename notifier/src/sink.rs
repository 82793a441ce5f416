//! Where deliveries go: the `Sink` trait, written once for Asana (`asana::Asana`) and for the
//! dry-run printer (`DryRun`). The delivery policy (`deliver`) only ever talks to a `Sink`.

use std::path::PathBuf;
use std::time::Duration;

use crate::render::TaskDraft;

/// The longest a 429 pauses a notifier; a longer Retry-After postpones the item instead.
pub const MAX_PAUSE: Duration = Duration::from_secs(5 * 60);

/// How a request failed, as the delivery loop must treat it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// 429: every request of this notifier waits this long (at most `MAX_PAUSE`). Longer (or
    /// too many in a row): postpone the item by this long and move on. Has no side effect.
    #[error("Asana rate limit: retry after {0:?}")]
    RateLimited(Duration),
    /// 5xx, timeout, connection failure: retry with backoff; the request may have taken effect.
    #[error("Asana unavailable: {0}")]
    Transient(String),
    /// 4xx: retrying the same request will not help until the configuration or data changes.
    #[error("Asana rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// Shutdown was requested while waiting (pacing, a 429 pause): nothing was sent.
    #[error("interrupted by shutdown before the request was sent")]
    Interrupted,
}

/// A file to attach to a task, written to disk beforehand so that it can be sent (and sent
/// again after a 429) without holding it in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name Asana shows.
    pub name: String,
    /// Its MIME type, e.g. `text/csv`.
    pub content_type: String,
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
    /// How many records it holds (for logs and the dry run).
    pub rows: usize,
}

/// The operations delivery needs. Every method is one request (pacing and waits included).
#[allow(async_fn_in_trait)] // used with generics in this crate; no `dyn`, no spawning
pub trait Sink {
    /// The incomplete task in the project whose notes carry `marker` (see `render::marker_line`).
    async fn find_task_by_marker(&self, marker: &str) -> Result<Option<String>, SinkError>;
    /// Creates a task; returns its gid. A 429 is returned, not retried: the caller searches for
    /// the task again before the next create.
    async fn create_task(&self, task: &TaskDraft) -> Result<String, SinkError>;
    /// A plain-text comment on a task.
    async fn comment(&self, task_gid: &str, text: &str) -> Result<(), SinkError>;
    /// Marks a task complete.
    async fn complete(&self, task_gid: &str) -> Result<(), SinkError>;
    /// Whether the task already has an attachment of this name.
    async fn has_attachment(&self, task_gid: &str, name: &str) -> Result<bool, SinkError>;
    /// Attaches a file to a task.
    async fn attach(&self, task_gid: &str, file: &Attachment) -> Result<(), SinkError>;
    /// The Asana user gid of an owner named in dbt meta (an email or a gid), or `None` when
    /// Asana does not know it (reported once per owner; the task goes to the default assignee).
    async fn resolve_user(&self, _owner: &str) -> Result<Option<String>, SinkError> {
        Ok(None)
    }
    /// Whether a new_deltas item whose changes are all `info` goes to the week's digest task
    /// as a comment instead of a task of its own.
    fn digest_info(&self) -> bool {
        false
    }
    /// Whether delivered items are acknowledged in the outbox (a dry run acknowledges nothing).
    fn acknowledges(&self) -> bool {
        true
    }
    /// What a follow-up whose task is not filed yet is delivered to (a dry run shows it; a real
    /// sink has no such task, and the follow-up waits).
    fn unfiled_task(&self) -> Option<&str> {
        None
    }
}

/// `--dry-run`, or no token: prints what would be sent, sends nothing, acknowledges nothing.
#[derive(Debug, Default)]
pub struct DryRun;

/// The gid the dry run gives a task it "creates".
const DRY_RUN_TASK: &str = "(new task)";

impl Sink for DryRun {
    async fn find_task_by_marker(&self, _marker: &str) -> Result<Option<String>, SinkError> {
        Ok(None)
    }
    async fn create_task(&self, task: &TaskDraft) -> Result<String, SinkError> {
        println!(
            "=== dry run: would create task ===\nname: {}\nseverity: {}\nassignee: {}\nfollowers: {}\nhtml_notes:\n{}\n",
            task.name,
            task.severity.map_or("-", |s| s.as_str()),
            task.assignee.as_deref().unwrap_or("(the default assignee)"),
            if task.followers.is_empty() {
                "-".to_string()
            } else {
                task.followers.join(", ")
            },
            task.html_notes
        );
        Ok(DRY_RUN_TASK.into())
    }
    /// Asana is not asked: the owner is shown as written.
    async fn resolve_user(&self, owner: &str) -> Result<Option<String>, SinkError> {
        Ok(Some(format!("({owner})")))
    }
    async fn comment(&self, task_gid: &str, text: &str) -> Result<(), SinkError> {
        println!("=== dry run: comment on task {task_gid} ===\n{text}\n");
        Ok(())
    }
    async fn complete(&self, task_gid: &str) -> Result<(), SinkError> {
        println!("=== dry run: mark task {task_gid} complete ===\n");
        Ok(())
    }
    async fn has_attachment(&self, _task_gid: &str, _name: &str) -> Result<bool, SinkError> {
        Ok(false)
    }
    async fn attach(&self, task_gid: &str, file: &Attachment) -> Result<(), SinkError> {
        println!(
            "=== dry run: attach {} ({} rows, {} bytes) to task {task_gid} ===\n",
            file.name, file.rows, file.len
        );
        Ok(())
    }
    fn acknowledges(&self) -> bool {
        false
    }
    fn unfiled_task(&self) -> Option<&str> {
        Some("(not filed yet)")
    }
}
