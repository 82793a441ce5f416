//! The Asana REST client: transport, pacing and error classification only (what to do about an
//! error is the delivery policy's business). Requests and responses use Asana's `{"data": ...}`
//! envelope; attachments are multipart/form-data.
//!
//! Pacing: every request (429s and retries included, as Asana counts them) takes a token from a
//! bucket refilled at `DRIFT_ASANA_REQUESTS_PER_MINUTE` (less 2%, for clock and network jitter),
//! holding one token: never more requests in any minute than the quota, so a backlog drains at
//! the quota's pace instead of tripping 429. A 429 pauses every request of this notifier for its
//! `Retry-After` (at most `MAX_PAUSE`; a longer wait is returned to the caller, which postpones
//! the item instead of holding it). Shutdown interrupts every wait.
//! SECURITY: the token is sent as a sensitive header and never formatted into logs or errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use crate::render::TaskDraft;
use crate::sink::{Attachment, Sink, SinkError};

pub use crate::sink::MAX_PAUSE;
use drift_watch_core::Severity;
/// 429s in a row for one request before the item is postponed instead.
const RATE_LIMIT_RETRIES: usize = 5;
/// When a 429 carries no usable Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The request pacer: a token bucket of one token, and the pause a 429 imposes.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// When the next token is available.
    next: Instant,
    /// No request before this (a 429's Retry-After).
    paused_until: Instant,
}

impl Pacer {
    /// At most `per_minute` requests in any minute (0 is taken as 1).
    pub fn new(per_minute: u32) -> Pacer {
        let interval = Duration::from_secs_f64(60.0 / f64::from(per_minute.max(1)) * 1.02);
        let now = Instant::now();
        Pacer {
            interval,
            state: Mutex::new(PacerState {
                next: now,
                paused_until: now,
            }),
        }
    }

    /// Waits for a token (and for any pause to end); `Interrupted` if `stop` says so first.
    pub async fn acquire(&self, stop: Option<&watch::Receiver<bool>>) -> Result<(), SinkError> {
        loop {
            let (at, reserved) = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if st.paused_until > now {
                    (st.paused_until, false)
                } else {
                    let at = st.next.max(now);
                    st.next = at + self.interval;
                    (at, true)
                }
            };
            if !sleep_until(at, stop).await {
                return Err(SinkError::Interrupted);
            }
            if reserved {
                return Ok(());
            }
        }
    }

    /// A 429: nothing is sent for `wait` (at most `MAX_PAUSE`).
    pub fn pause(&self, wait: Duration) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + wait.min(MAX_PAUSE);
        st.paused_until = st.paused_until.max(until);
    }
}

/// Sleeps until `at`; false if `stop` turned true first.
async fn sleep_until(at: Instant, stop: Option<&watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        tokio::time::sleep_until(at).await;
        return true;
    };
    let mut stop = stop.clone();
    if *stop.borrow_and_update() {
        return false;
    }
    if at <= Instant::now() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

/// Where and how tasks are filed.
#[derive(Clone)]
pub struct Asana {
    http: reqwest::Client,
    base_url: String,
    auth: HeaderValue,
    pub project: String,
    pub section: Option<String>,
    pub assignee: Option<String>,
    pacer: Arc<Pacer>,
    stop: Option<watch::Receiver<bool>>,
    pub routing: Routing,
    /// Owners resolved so far (None: Asana does not know them; reported once).
    users: Arc<std::sync::Mutex<std::collections::HashMap<String, Option<String>>>>,
}

/// Where a task goes by severity, all optional: a tag, a section (instead of ASANA_SECTION), an
/// option of an enum custom field; and whether info-only runs go to a weekly digest task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    pub tags: Vec<(Severity, String)>,
    pub sections: Vec<(Severity, String)>,
    pub field: Option<String>,
    pub field_options: Vec<(Severity, String)>,
    pub info_digest: bool,
}

impl Routing {
    /// Parses `breaking:GID,risky:GID,info:GID` (any subset); `what` names the setting.
    pub fn parse_map(what: &str, text: &str) -> Result<Vec<(Severity, String)>, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (sev, gid) = part.split_once(':').ok_or_else(|| {
                format!(
                    "{what}: expected severity:gid pairs (breaking:123,risky:456), not {part:?}"
                )
            })?;
            let sev = Severity::parse(sev.trim()).ok_or_else(|| {
                format!(
                    "{what}: unknown severity {:?} (breaking, risky or info)",
                    sev.trim()
                )
            })?;
            let gid = gid.trim();
            if !is_gid(gid) {
                return Err(format!(
                    "{what}: {gid:?} is not an Asana gid (1 to 32 digits)"
                ));
            }
            out.push((sev, gid.to_string()));
        }
        Ok(out)
    }

    fn get(map: &[(Severity, String)], sev: Option<Severity>) -> Option<&str> {
        let sev = sev?;
        map.iter().find(|(s, _)| *s == sev).map(|(_, g)| g.as_str())
    }
}

impl std::fmt::Debug for Asana {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asana")
            .field("base_url", &self.base_url)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl Asana {
    pub fn new(
        base_url: &str,
        token: &str,
        project: String,
        section: Option<String>,
        assignee: Option<String>,
    ) -> Result<Self, String> {
        validate_base_url(base_url)?;
        if !is_gid(&project) {
            return Err(
                "ASANA_PROJECT must be an Asana project gid: 1 to 32 digits (the number in the project's URL)"
                    .into(),
            );
        }
        // `ASANA_SECTION=` (empty, as an EnvironmentFile may say) means no section.
        let section = section.filter(|s| !s.is_empty());
        if section.as_deref().is_some_and(|s| !is_gid(s)) {
            return Err("ASANA_SECTION must be an Asana section gid: 1 to 32 digits".into());
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            "ASANA_TOKEN contains characters not allowed in an HTTP header".to_string()
        })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
            project,
            section,
            assignee,
            pacer: Arc::new(Pacer::new(150)),
            stop: None,
            routing: Routing::default(),
            users: Arc::default(),
        })
    }

    /// Per-severity tags, sections, custom field, and the info digest.
    pub fn with_routing(mut self, routing: Routing) -> Result<Self, String> {
        if routing.field.as_deref().is_some_and(|f| !is_gid(f)) {
            return Err("DRIFT_ASANA_SEVERITY_FIELD must be an Asana custom field gid".into());
        }
        if routing.field.is_some() == routing.field_options.is_empty() {
            return Err(
                "DRIFT_ASANA_SEVERITY_FIELD and DRIFT_ASANA_SEVERITY_OPTIONS go together".into(),
            );
        }
        self.routing = routing;
        Ok(self)
    }

    /// Paces requests to at most `per_minute` (Asana: 150 on free plans, 1,500 on paid ones).
    pub fn with_quota(mut self, per_minute: u32) -> Self {
        self.pacer = Arc::new(Pacer::new(per_minute));
        self
    }

    /// Waits (pacing, 429 pauses) end early with `SinkError::Interrupted` when `stop` is true.
    pub fn with_stop(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Sends a request built by `build` and returns the whole body of a 2xx, or the classified
    /// error. After a 429 the request is sent again once the pause is over, unless `retry_429`
    /// is false (a create: the caller searches for the task again first).
    async fn request<F>(&self, retry_429: bool, build: F) -> Result<Value, SinkError>
    where
        F: Fn() -> Result<reqwest::RequestBuilder, SinkError>,
    {
        let mut limited = 0;
        loop {
            self.pacer.acquire(self.stop.as_ref()).await?;
            let response = build()?
                .header(AUTHORIZATION, self.auth.clone())
                .send()
                .await
                .map_err(|e| SinkError::Transient(without_url(e)))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
                self.pacer.pause(wait);
                limited += 1;
                if !retry_429 || wait > MAX_PAUSE || limited > RATE_LIMIT_RETRIES {
                    return Err(SinkError::RateLimited(wait));
                }
                warn!(
                    wait_s = wait.as_secs(),
                    "Asana rate limit (429): waiting Retry-After (every request of this notifier pauses)"
                );
                continue;
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(body);
            }
            let message = body["errors"][0]["message"]
                .as_str()
                .unwrap_or("no error message")
                .to_string();
            return if status.is_server_error() {
                Err(SinkError::Transient(format!(
                    "HTTP {}: {message}",
                    status.as_u16()
                )))
            } else {
                Err(SinkError::Rejected {
                    status: status.as_u16(),
                    message,
                })
            };
        }
    }

    /// `data` of a 2xx response to a JSON request.
    async fn send_json(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
        retry_429: bool,
    ) -> Result<Value, SinkError> {
        let payload = serde_json::to_vec(body).map_err(|e| SinkError::Transient(e.to_string()))?;
        Ok(self
            .request(retry_429, || {
                Ok(self
                    .http
                    .request(method.clone(), url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(payload.clone()))
            })
            .await?["data"]
            .take())
    }

    /// `data` and `next_page.offset` of a list response.
    async fn get_paged(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<(Value, Option<String>), SinkError> {
        let mut body = self
            .request(true, || Ok(self.http.get(url).query(query)))
            .await?;
        let next = body["next_page"]["offset"].as_str().map(str::to_string);
        Ok((body["data"].take(), next))
    }
}

impl Sink for Asana {
    /// Looks for the task carrying `marker` among the project's incomplete tasks, every page.
    async fn find_task_by_marker(&self, marker: &str) -> Result<Option<String>, SinkError> {
        let needle = crate::render::marker_line(marker);
        let url = format!(
            "{}/projects/{}/tasks",
            self.base_url,
            path_gid(&self.project)?
        );
        let mut offset: Option<String> = None;
        loop {
            let mut query = vec![
                ("completed_since", "now".to_string()),
                ("opt_fields", "name,notes".to_string()),
                ("limit", "100".to_string()),
            ];
            if let Some(o) = &offset {
                query.push(("offset", o.clone()));
            }
            let (tasks, next) = self.get_paged(&url, &query).await?;
            for task in tasks.as_array().into_iter().flatten() {
                if task["notes"].as_str().is_some_and(|n| n.contains(&needle)) {
                    return Ok(task["gid"].as_str().map(str::to_string));
                }
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// `POST /tasks` in the project (and section, via memberships), assigned when configured.
    async fn create_task(&self, task: &TaskDraft) -> Result<String, SinkError> {
        let mut data = json!({
            "name": task.name,
            "html_notes": task.html_notes,
            "projects": [self.project],
        });
        let section =
            Routing::get(&self.routing.sections, task.severity).or(self.section.as_deref());
        if let Some(section) = section {
            data["memberships"] = json!([{ "project": self.project, "section": section }]);
        }
        if let Some(assignee) = task.assignee.as_ref().or(self.assignee.as_ref()) {
            data["assignee"] = json!(assignee);
        }
        if !task.followers.is_empty() {
            data["followers"] = json!(task.followers);
        }
        if let Some(tag) = Routing::get(&self.routing.tags, task.severity) {
            data["tags"] = json!([tag]);
        }
        if let (Some(field), Some(option)) = (
            &self.routing.field,
            Routing::get(&self.routing.field_options, task.severity),
        ) {
            data["custom_fields"] = json!({ field.as_str(): option });
        }
        let created = self
            .send_json(
                reqwest::Method::POST,
                &format!("{}/tasks", self.base_url),
                &json!({ "data": data }),
                false,
            )
            .await?;
        created["gid"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SinkError::Transient("created task has no gid".into()))
    }

    /// `GET /users/{email or gid}`, once per owner.
    async fn resolve_user(&self, owner: &str) -> Result<Option<String>, SinkError> {
        if let Some(known) = self.users.lock().unwrap().get(owner) {
            return Ok(known.clone());
        }
        let looks_right = is_gid(owner)
            || (owner.contains('@') && !owner.chars().any(|c| c.is_whitespace() || c == '/'));
        let resolved = if !looks_right {
            warn!(owner = %owner, "owner in dbt meta is neither an email nor an Asana user gid: its drift goes to the default assignee");
            None
        } else {
            let mut url = reqwest::Url::parse(&self.base_url)
                .map_err(|e| SinkError::Transient(e.to_string()))?;
            url.path_segments_mut()
                .map_err(|_| SinkError::Transient("base URL cannot take a path".into()))?
                .push("users")
                .push(owner);
            let result = self
                .request(true, || {
                    Ok(self
                        .http
                        .get(url.clone())
                        .query(&[("opt_fields", "gid,name")]))
                })
                .await;
            match result {
                Ok(body) => body["data"]["gid"]
                    .as_str()
                    .filter(|g| is_gid(g))
                    .map(str::to_string),
                Err(SinkError::Rejected { status, message }) if (400..500).contains(&status) => {
                    warn!(owner = %owner, status, %message, "Asana does not know this owner from dbt meta: its drift goes to the default assignee (reported once)");
                    None
                }
                Err(e) => return Err(e),
            }
        };
        self.users
            .lock()
            .unwrap()
            .insert(owner.to_string(), resolved.clone());
        Ok(resolved)
    }

    fn digest_info(&self) -> bool {
        self.routing.info_digest
    }

    /// `POST /tasks/{gid}/stories`: a comment.
    async fn comment(&self, task_gid: &str, text: &str) -> Result<(), SinkError> {
        let task_gid = path_gid(task_gid)?;
        self.send_json(
            reqwest::Method::POST,
            &format!("{}/tasks/{task_gid}/stories", self.base_url),
            &json!({ "data": { "text": text } }),
            true,
        )
        .await
        .map(|_| ())
    }

    /// `PUT /tasks/{gid}` with `completed: true`.
    async fn complete(&self, task_gid: &str) -> Result<(), SinkError> {
        let task_gid = path_gid(task_gid)?;
        self.send_json(
            reqwest::Method::PUT,
            &format!("{}/tasks/{task_gid}", self.base_url),
            &json!({ "data": { "completed": true } }),
            true,
        )
        .await
        .map(|_| ())
    }

    /// `GET /attachments?parent=<task>`, every page, looking for `name`.
    async fn has_attachment(&self, task_gid: &str, name: &str) -> Result<bool, SinkError> {
        let task_gid = path_gid(task_gid)?;
        let url = format!("{}/attachments", self.base_url);
        let mut offset: Option<String> = None;
        loop {
            let mut query = vec![
                ("parent", task_gid.to_string()),
                ("opt_fields", "name".to_string()),
                ("limit", "100".to_string()),
            ];
            if let Some(o) = &offset {
                query.push(("offset", o.clone()));
            }
            let (attachments, next) = self.get_paged(&url, &query).await?;
            if attachments
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["name"].as_str() == Some(name))
            {
                return Ok(true);
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// `POST /attachments`, multipart/form-data: `parent` = the task, `file` = the file,
    /// streamed from disk.
    async fn attach(&self, task_gid: &str, file: &Attachment) -> Result<(), SinkError> {
        let task_gid = path_gid(task_gid)?.to_string();
        let url = format!("{}/attachments", self.base_url);
        self.request(true, || {
            let f = std::fs::File::open(&file.path)
                .map_err(|e| SinkError::Transient(format!("{}: {e}", file.path.display())))?;
            let body = reqwest::Body::wrap_stream(file_chunks(tokio::fs::File::from_std(f)));
            let part = reqwest::multipart::Part::stream_with_length(body, file.len)
                .file_name(file.name.clone())
                .mime_str(&file.content_type)
                .map_err(|e| SinkError::Transient(e.to_string()))?;
            let form = reqwest::multipart::Form::new()
                .text("parent", task_gid.clone())
                .part("file", part);
            Ok(self.http.post(&url).multipart(form))
        })
        .await
        .map(|_| ())
    }
}

/// A file as a stream of chunks (64 KiB at most in memory).
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((buf, file)))
    })
}

/// Whether `gid` is an Asana gid: 1 to 32 decimal digits.
pub fn is_gid(gid: &str) -> bool {
    (1..=32).contains(&gid.len()) && gid.bytes().all(|b| b.is_ascii_digit())
}

/// `gid`, checked before it goes into a URL path: anything else (a `/`, `..`, `?`, a full URL
/// from a tampered outbox row or an odd response) could point the token-carrying request at
/// another resource. Refused as a 4xx is, so the delivery loop parks the item with the message
/// instead of retrying it; nothing is sent.
fn path_gid(gid: &str) -> Result<&str, SinkError> {
    if is_gid(gid) {
        return Ok(gid);
    }
    let shown: String = gid.chars().take(40).collect();
    Err(SinkError::Rejected {
        status: 400,
        message: format!(
            "refusing non-numeric Asana gid {shown:?}{}: not sent to Asana",
            if shown.len() < gid.len() { "..." } else { "" }
        ),
    })
}

/// ASANA_BASE_URL: https, or http to a loopback host (127.0.0.0/8, ::1, localhost) only, where
/// nothing crosses a network (the test suite's fake Asana). The token must not travel in clear.
pub fn validate_base_url(base_url: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(base_url)
        .map_err(|e| format!("ASANA_BASE_URL is not a valid URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "ASANA_BASE_URL must not contain credentials (the token comes from ASANA_TOKEN)".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("ASANA_BASE_URL must not have a query or a fragment".into());
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "ASANA_BASE_URL must use https: plain http is allowed only for a loopback host \
             (127.0.0.0/8, ::1, localhost), and {host} is not one"
        )),
        _ => Err("ASANA_BASE_URL must be an https:// URL".into()),
    }
}

/// reqwest's error text without the URL (which is harmless, but keep errors short and stable).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_spaces_requests_pauses_them_all_and_stops_on_shutdown() {
        // 6,000 a minute: one every 10.2 ms.
        let pacer = Pacer::new(6000);
        let start = Instant::now();
        for _ in 0..11 {
            pacer.acquire(None).await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");

        pacer.pause(Duration::from_millis(300));
        let start = Instant::now();
        pacer.acquire(None).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(290));

        // A pause is capped, and shutdown ends the wait.
        pacer.pause(Duration::from_secs(3600));
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tx.send(true);
        });
        let start = Instant::now();
        assert_eq!(pacer.acquire(Some(&rx)).await, Err(SinkError::Interrupted));
        assert!(start.elapsed() < Duration::from_secs(1));
        let paused = pacer.state.lock().unwrap().paused_until - Instant::now();
        assert!(paused <= MAX_PAUSE, "{paused:?}");
    }

    #[test]
    fn base_url_is_https_or_loopback_http() {
        for ok in [
            "https://app.asana.com/api/1.0",
            "http://127.0.0.1:8080/api/1.0",
            "http://127.1.2.3/api",
            "http://[::1]:9/api/1.0",
            "http://LOCALHOST:9",
        ] {
            assert_eq!(validate_base_url(ok), Ok(()), "{ok}");
        }
        for (bad, expected) in [
            ("http://example.com/api/1.0", "and example.com is not one"),
            ("http://localhost.example.com", "is not one"),
            ("http://128.0.0.1", "is not one"),
            ("http://[::2]", "is not one"),
            ("ftp://127.0.0.1", "must be an https:// URL"),
            ("app.asana.com/api/1.0", "not a valid URL"),
            (
                "https://user:pw@app.asana.com",
                "must not contain credentials",
            ),
            ("https://app.asana.com/api?x=1", "query"),
        ] {
            let e = validate_base_url(bad).unwrap_err();
            assert!(e.contains(expected), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn gids_are_digits_only() {
        assert!(is_gid("1200000000001"));
        assert!(is_gid(&"9".repeat(32)));
        for bad in [
            "",
            "12a",
            "../1",
            "1/stories",
            "１２",
            " 12",
            &"9".repeat(33),
        ] {
            assert!(!is_gid(bad), "{bad:?}");
        }
    }

    #[test]
    fn project_and_section_are_checked_at_startup() {
        let new = |project: &str, section: Option<&str>| {
            Asana::new(
                "https://app.asana.com/api/1.0",
                "token",
                project.into(),
                section.map(str::to_string),
                None,
            )
            .map(|_| ())
        };
        assert_eq!(new("1200000000001", Some("1200000000002")), Ok(()));
        assert!(new("my-project", None)
            .unwrap_err()
            .contains("ASANA_PROJECT"));
        assert!(new("12", Some("12/x"))
            .unwrap_err()
            .contains("ASANA_SECTION"));
        assert!(new("12", None).is_ok());
        assert!(
            new("12", Some("")).is_ok(),
            "an empty ASANA_SECTION is no section"
        );
    }

    /// An owner from dbt meta that could change the request's path is never sent: the base URL
    /// points at a closed port, so a request would fail as Transient instead.
    #[tokio::test]
    async fn an_owner_that_is_neither_an_email_nor_a_gid_is_never_sent() {
        let asana = Asana::new("http://127.0.0.1:9", "token", "12".into(), None, None).unwrap();
        for owner in ["../../tasks/1", "a@b/../../x", "@team data", "me", ""] {
            assert_eq!(asana.resolve_user(owner).await.unwrap(), None, "{owner}");
        }
        // An email or a gid is asked for (and this port refuses: transient, not cached).
        assert!(matches!(
            asana.resolve_user("ana@example.com").await,
            Err(SinkError::Transient(_))
        ));
    }

    /// A non-numeric task gid is refused before any request: the base URL points at a closed
    /// port, so a request would fail as Transient instead.
    #[tokio::test]
    async fn a_non_numeric_task_gid_is_never_sent() {
        let asana = Asana::new("http://127.0.0.1:9", "token", "12".into(), None, None).unwrap();
        for gid in [
            "../../users/me",
            "12?opt_fields=x",
            "https://evil.example/",
            "",
        ] {
            for result in [asana.comment(gid, "text").await, asana.complete(gid).await] {
                match result {
                    Err(SinkError::Rejected {
                        status: 400,
                        message,
                    }) => {
                        assert!(
                            message.contains("refusing non-numeric Asana gid"),
                            "{message}"
                        )
                    }
                    other => panic!("{gid}: {other:?}"),
                }
            }
        }
        let mut tampered = asana.clone();
        tampered.project = "12/../34".into();
        assert!(matches!(
            tampered.find_task_by_marker("m").await,
            Err(SinkError::Rejected { status: 400, .. })
        ));
        // A numeric gid does go out (and fails to connect).
        assert!(matches!(
            asana.complete("1200000000001").await,
            Err(SinkError::Transient(_))
        ));
    }
}
