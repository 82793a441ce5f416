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
            let url = format!(
                "{}/projects/{}/tasks",
                self.base_url,
                path_gid(&self.project)?
            );
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
        let task_gid = path_gid(task_gid)?;
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
        let task_gid = path_gid(task_gid)?;
        self.send(
            self.http
                .put(format!("{}/tasks/{task_gid}", self.base_url))
                .json(&json!({ "data": { "completed": true } })),
        )
        .await
        .map(|_| ())
    }
}

/// Whether `gid` is an Asana gid: 1 to 32 decimal digits.
pub fn is_gid(gid: &str) -> bool {
    (1..=32).contains(&gid.len()) && gid.bytes().all(|b| b.is_ascii_digit())
}

/// `gid`, checked before it goes into a URL path: anything else (a `/`, `..`, `?`, a full URL
/// from a tampered outbox row or an odd response) could point the token-carrying request at
/// another resource. Refused as a 4xx is, so the delivery loop parks the item with the message
/// instead of retrying it; nothing is sent.
fn path_gid(gid: &str) -> Result<&str, AsanaError> {
    if is_gid(gid) {
        return Ok(gid);
    }
    let shown: String = gid.chars().take(40).collect();
    Err(AsanaError::Rejected {
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
                    Err(AsanaError::Rejected {
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
            Err(AsanaError::Rejected { status: 400, .. })
        ));
        // A numeric gid does go out (and fails to connect).
        assert!(matches!(
            asana.complete("1200000000001").await,
            Err(AsanaError::Transient(_))
        ));
    }
}
