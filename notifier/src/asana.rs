//! The Asana REST client: transport and error classification only (what to do about an error is
//! the delivery loop's business). Requests and responses use Asana's `{"data": ...}` envelope.
//! SECURITY: the token is sent as a sensitive header and never formatted into logs or errors.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::render::TaskDraft;

/// How a request failed, as the delivery loop must treat it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AsanaError {
    /// 429: wait this long, then retry. Has no side effect.
    #[error("Asana rate limit: retry after {0:?}")]
    RateLimited(Duration),
    /// 5xx, timeout, connection failure: retry with backoff; the request may have taken effect.
    #[error("Asana unavailable: {0}")]
    Transient(String),
    /// 4xx: retrying the same request will not help until the configuration or data changes.
    #[error("Asana rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
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
        })
    }

    /// Sends a request and returns the whole response body of a 2xx, or the classified error.
    async fn request(&self, request: reqwest::RequestBuilder) -> Result<Value, AsanaError> {
        let response = request
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(|e| AsanaError::Transient(without_url(e)))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(60);
            return Err(AsanaError::RateLimited(Duration::from_secs(wait)));
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["errors"][0]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_string();
        if status.is_server_error() {
            Err(AsanaError::Transient(format!(
                "HTTP {}: {message}",
                status.as_u16()
            )))
        } else {
            Err(AsanaError::Rejected {
                status: status.as_u16(),
                message,
            })
        }
    }

    /// `data` of a 2xx response.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, AsanaError> {
        Ok(self.request(request).await?["data"].take())
    }

    /// `POST /tasks` in the project (and section, via memberships), assigned when configured.
    pub async fn create_task(&self, task: &TaskDraft) -> Result<String, AsanaError> {
        let mut data = json!({
            "name": task.name,
            "html_notes": task.html_notes,
            "projects": [self.project],
        });
        if let Some(section) = &self.section {
            data["memberships"] = json!([{ "project": self.project, "section": section }]);
        }
        if let Some(assignee) = &self.assignee {
            data["assignee"] = json!(assignee);
        }
        let created = self
            .send(
                self.http
                    .post(format!("{}/tasks", self.base_url))
                    .json(&json!({ "data": data })),
            )
            .await?;
        created["gid"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| AsanaError::Transient("created task has no gid".into()))
    }

    /// Looks for the task carrying `marker` among the project's incomplete tasks, every page.
    pub async fn find_task_by_marker(&self, marker: &str) -> Result<Option<String>, AsanaError> {
        let needle = crate::render::marker_line(marker);
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
            let url = format!("{}/projects/{}/tasks", self.base_url, self.project);
            let response = self.send_paged(self.http.get(url).query(&query)).await?;
            for task in response.0.as_array().into_iter().flatten() {
                if task["notes"].as_str().is_some_and(|n| n.contains(&needle)) {
                    return Ok(task["gid"].as_str().map(str::to_string));
                }
            }
            match response.1 {
                Some(next) => offset = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// `data` and `next_page.offset` of a list response.
    async fn send_paged(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Value, Option<String>), AsanaError> {
        let mut body = self.request(request).await?;
        let next = body["next_page"]["offset"].as_str().map(str::to_string);
        Ok((body["data"].take(), next))
    }

    /// `POST /tasks/{gid}/stories`: a comment.
    pub async fn comment(&self, task_gid: &str, text: &str) -> Result<(), AsanaError> {
        self.send(
            self.http
                .post(format!("{}/tasks/{task_gid}/stories", self.base_url))
                .json(&json!({ "data": { "text": text } })),
        )
        .await
        .map(|_| ())
    }

    /// `PUT /tasks/{gid}` with `completed: true`.
    pub async fn complete(&self, task_gid: &str) -> Result<(), AsanaError> {
        self.send(
            self.http
                .put(format!("{}/tasks/{task_gid}", self.base_url))
                .json(&json!({ "data": { "completed": true } })),
        )
        .await
        .map(|_| ())
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
