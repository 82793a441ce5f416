//! A fake Asana that behaves as Asana's spec says (shared/reference/asana.md): `{"data": ...}`
//! envelopes, bearer auth (401), placement required on create (400), rich text validated as XML
//! with a `<body>` root and only the tags Asana allows (400 otherwise), `limit` 1–100 and offset
//! pagination on project task lists, `Retry-After` on 429, `{"errors": [...]}` bodies — plus a
//! fault script to exercise retries and duplicate recovery.
//!
//! Users, tags, sections and custom fields (asana_oas.yaml: TaskCreateRequest, `/users/{user_gid}`):
//! - `add_user` registers a user; `GET /users/{user_gid}` takes a gid, an email (any case) or `me`
//!   (a bot user made on first use) → 200 `{"data": {gid, resource_type, name, email, workspaces}}`,
//!   404 `user: Not a recognized ID: <x>` otherwise. Logged as `GET /users/<x>`, verbatim.
//! - `add_tag`, `add_section` (a section belongs to one project), `add_enum_field` and
//!   `add_field_to_project`. Project `FIXTURE_PROJECT` has section `FIXTURE_SECTION` from the start
//!   (the ids every test's notifier is configured with).
//! - `POST /tasks` also rejects (400): an `assignee` or a `followers` entry that is not a known user
//!   gid, email or `me`; a `tags` entry that is not a known tag gid; a `memberships` entry without
//!   a `project`, or whose `section` is not a section of that project; a `custom_fields` key that is
//!   not a field on one of the task's projects, or an enum value that is not one of the field's
//!   option gids (an option *name* is refused, as Asana does); any of these of the wrong JSON type.
//!   `memberships` counts as placement (no `projects` needed); the task's projects are `projects`
//!   plus those of `memberships`. Users are stored as gids (emails and `me` resolved). Other keys
//!   of `data` are ignored.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const TOKEN: &str = "test-token-do-not-log";

#[derive(Debug, Clone)]
pub struct Task {
    pub gid: String,
    pub name: String,
    pub html_notes: String,
    pub notes: String,
    pub projects: Vec<String>,
    pub section: Option<String>,
    /// A user gid (an email or `me` in the request is resolved).
    pub assignee: Option<String>,
    pub completed: bool,
    pub comments: Vec<String>,
    /// User gids, in request order, without duplicates.
    pub followers: Vec<String>,
    /// Tag gids.
    pub tags: Vec<String>,
    /// `(field gid, value)`; for an enum field the value is the option gid.
    pub custom_fields: Vec<(String, String)>,
}

/// An Asana user (`GET /users/{user_gid}`).
#[derive(Debug, Clone)]
pub struct User {
    pub gid: String,
    pub email: String,
    pub name: String,
}

/// A section of one project.
#[derive(Debug, Clone)]
pub struct Section {
    pub gid: String,
    pub project: String,
    pub name: String,
}

/// An enum custom field, its options `(gid, name)` and the projects it is on.
#[derive(Debug, Clone)]
pub struct CustomField {
    pub gid: String,
    pub name: String,
    pub options: Vec<(String, String)>,
    pub projects: Vec<String>,
}

/// The project and section the tests' notifier is configured with (`common::spawn_sidecar`):
/// the fake knows this section from the start.
pub const FIXTURE_PROJECT: &str = "1100000000001";
pub const FIXTURE_SECTION: &str = "1100000000002";
/// The workspace every user of the fake belongs to.
pub const WORKSPACE: &str = "1000000000001";

/// A scripted fault, consumed by the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with this Retry-After (seconds); no side effect.
    RateLimit(u64),
    /// The same, for the next `POST /tasks` only (other requests pass it by).
    RateLimitCreate(u64),
    /// 503 before doing anything.
    Unavailable,
    /// Create the task, then answer 500 (the client cannot know it exists).
    CreateThenFail,
    /// Create the task, then wait this long before answering (a client can die meanwhile).
    CreateThenStall(Duration),
    /// The next `POST /attachments` is refused with this 4xx (e.g. 403: no access to attach).
    RefuseAttachment(u16),
}

/// A file attached to a task (`POST /attachments`).
#[derive(Debug, Clone)]
pub struct Attachment {
    pub gid: String,
    pub parent: String,
    pub name: String,
    pub content_type: Option<String>,
    pub content: Vec<u8>,
}

#[derive(Default)]
pub struct Inner {
    pub tasks: Vec<Task>,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<String>,
    /// When each task was created (for the benchmark's latency figures).
    pub created_at: Vec<std::time::Instant>,
    pub attachments: Vec<Attachment>,
    /// The size of every request body received, by request.
    pub body_sizes: Vec<(String, usize)>,
    /// Asana's rate limit, when enforced: at most this many requests (429s included, as Asana
    /// counts them) in any window of this length; more get 429 with Retry-After.
    pub quota: Option<(usize, Duration)>,
    sent: VecDeque<std::time::Instant>,
    /// 429s the quota gave.
    pub quota_429s: usize,
    next_gid: u64,
    pub users: Vec<User>,
    /// The gid of the user `me` stands for (made on first use).
    me: Option<String>,
    /// `(gid, name)`.
    pub tags: Vec<(String, String)>,
    pub sections: Vec<Section>,
    pub custom_fields: Vec<CustomField>,
}

impl Inner {
    fn gid(&mut self, prefix: &str) -> String {
        self.next_gid += 1;
        format!("{prefix}{}", self.next_gid)
    }

    /// The bot user `me` stands for, made on first use.
    fn me(&mut self) -> String {
        if let Some(gid) = &self.me {
            return gid.clone();
        }
        let gid = self.gid("15000000");
        self.users.push(User {
            gid: gid.clone(),
            email: "drift-bot@example.com".into(),
            name: "Drift bot".into(),
        });
        self.me = Some(gid.clone());
        gid
    }

    /// A user by gid, email (case-insensitive) or `me`.
    fn user(&mut self, who: &str) -> Option<User> {
        let who = if who == "me" {
            self.me()
        } else {
            who.to_string()
        };
        self.users
            .iter()
            .find(|u| u.gid == who || (who.contains('@') && u.email.eq_ignore_ascii_case(&who)))
            .cloned()
    }
}

#[derive(Clone)]
pub struct FakeAsana(pub Arc<Mutex<Inner>>);

impl Default for FakeAsana {
    fn default() -> Self {
        let inner = Inner {
            sections: vec![Section {
                gid: FIXTURE_SECTION.into(),
                project: FIXTURE_PROJECT.into(),
                name: "Drift".into(),
            }],
            ..Inner::default()
        };
        FakeAsana(Arc::new(Mutex::new(inner)))
    }
}

impl FakeAsana {
    /// A user; returns its gid.
    pub fn add_user(&self, email: &str, name: &str) -> String {
        let mut inner = self.0.lock().unwrap();
        let gid = inner.gid("15000000");
        inner.users.push(User {
            gid: gid.clone(),
            email: email.into(),
            name: name.into(),
        });
        gid
    }
    /// The gid of the user `me` stands for (the token's owner, a bot).
    pub fn me(&self) -> String {
        self.0.lock().unwrap().me()
    }
    pub fn users(&self) -> Vec<User> {
        self.0.lock().unwrap().users.clone()
    }
    /// A tag in the workspace; returns its gid.
    pub fn add_tag(&self, name: &str) -> String {
        let mut inner = self.0.lock().unwrap();
        let gid = inner.gid("16000000");
        inner.tags.push((gid.clone(), name.into()));
        gid
    }
    /// A section of `project`; returns its gid.
    pub fn add_section(&self, project: &str, name: &str) -> String {
        let mut inner = self.0.lock().unwrap();
        let gid = inner.gid("17000000");
        inner.sections.push(Section {
            gid: gid.clone(),
            project: project.into(),
            name: name.into(),
        });
        gid
    }
    /// An enum custom field (on no project yet); returns its gid and its options' gids, in order.
    pub fn add_enum_field(&self, name: &str, options: &[&str]) -> (String, Vec<String>) {
        let mut inner = self.0.lock().unwrap();
        let gid = inner.gid("18000000");
        let options: Vec<(String, String)> = options
            .iter()
            .map(|o| (inner.gid("19000000"), o.to_string()))
            .collect();
        let option_gids = options.iter().map(|(g, _)| g.clone()).collect();
        inner.custom_fields.push(CustomField {
            gid: gid.clone(),
            name: name.into(),
            options,
            projects: Vec::new(),
        });
        (gid, option_gids)
    }
    /// Puts the custom field on `project` (panics if the field is unknown).
    pub fn add_field_to_project(&self, project: &str, field_gid: &str) {
        let mut inner = self.0.lock().unwrap();
        let field = inner
            .custom_fields
            .iter_mut()
            .find(|f| f.gid == field_gid)
            .unwrap_or_else(|| panic!("no custom field {field_gid}"));
        if !field.projects.iter().any(|p| p == project) {
            field.projects.push(project.into());
        }
    }
    pub fn tasks(&self) -> Vec<Task> {
        self.0.lock().unwrap().tasks.clone()
    }
    /// Tasks someone else filed in the project (so a marker search has pages to go through).
    pub fn seed_tasks(&self, project: &str, n: usize) {
        let mut inner = self.0.lock().unwrap();
        for i in 0..n {
            inner.next_gid += 1;
            let gid = format!("11000000{}", inner.next_gid);
            inner.tasks.push(Task {
                gid,
                name: format!("unrelated task {i}"),
                html_notes: "<body>unrelated</body>".into(),
                notes: "unrelated".into(),
                projects: vec![project.to_string()],
                section: None,
                assignee: None,
                completed: false,
                comments: Vec::new(),
                followers: Vec::new(),
                tags: Vec::new(),
                custom_fields: Vec::new(),
            });
            inner.created_at.push(std::time::Instant::now());
        }
    }
    /// A task someone (another notifier) filed, its notes carrying `text`.
    pub fn add_task(&self, project: &str, name: &str, text: &str) -> String {
        let mut inner = self.0.lock().unwrap();
        inner.next_gid += 1;
        let gid = format!("13000000{}", inner.next_gid);
        inner.tasks.push(Task {
            gid: gid.clone(),
            name: name.into(),
            html_notes: format!("<body>{text}</body>"),
            notes: text.into(),
            projects: vec![project.to_string()],
            section: None,
            assignee: None,
            completed: false,
            comments: Vec::new(),
            followers: Vec::new(),
            tags: Vec::new(),
            custom_fields: Vec::new(),
        });
        inner.created_at.push(std::time::Instant::now());
        gid
    }
    /// Enforces a rate limit of `limit` requests in any `window`.
    pub fn set_quota(&self, limit: usize, window: Duration) {
        self.0.lock().unwrap().quota = Some((limit, window));
    }
    pub fn quota_429s(&self) -> usize {
        self.0.lock().unwrap().quota_429s
    }
    pub fn push_fault(&self, fault: Fault) {
        self.0.lock().unwrap().faults.push_back(fault);
    }
    pub fn created_at(&self) -> Vec<std::time::Instant> {
        self.0.lock().unwrap().created_at.clone()
    }
    pub fn attachments(&self) -> Vec<Attachment> {
        self.0.lock().unwrap().attachments.clone()
    }
    pub fn body_sizes(&self) -> Vec<(String, usize)> {
        self.0.lock().unwrap().body_sizes.clone()
    }
    pub fn requests(&self) -> Vec<String> {
        self.0.lock().unwrap().requests.clone()
    }

    /// Serves on 127.0.0.1 (random port); returns the base URL.
    pub async fn start(&self) -> String {
        let app = Router::new()
            .route("/api/1.0/tasks", post(create_task))
            .route("/api/1.0/tasks/{gid}", axum::routing::put(update_task))
            .route("/api/1.0/tasks/{gid}/stories", post(add_story))
            .route("/api/1.0/projects/{gid}/tasks", get(project_tasks))
            .route("/api/1.0/users/{user_gid}", get(get_user))
            // Asana enforces a 100 MB limit on attachments.
            .route(
                "/api/1.0/attachments",
                post(upload_attachment)
                    .get(list_attachments)
                    .layer(axum::extract::DefaultBodyLimit::max(100 * 1024 * 1024)),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/api/1.0")
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message, "help": "see the API docs"}]})),
    )
        .into_response()
}

/// Auth and the fault script, common to every route. `Err` is the response to send instead.
#[allow(clippy::result_large_err)] // a test server; the response is the natural error
fn gate(
    fake: &FakeAsana,
    headers: &HeaderMap,
    what: &str,
    create: bool,
) -> Result<Option<Fault>, Response> {
    let mut inner = fake.0.lock().unwrap();
    inner.requests.push(what.to_string());
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Err(error(StatusCode::UNAUTHORIZED, "Not Authorized"));
    }
    if let Some((limit, window)) = inner.quota {
        let now = std::time::Instant::now();
        while inner
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            inner.sent.pop_front();
        }
        let over = inner.sent.len() >= limit;
        let retry = inner.sent.front().map_or(Duration::ZERO, |t| {
            window.saturating_sub(now.duration_since(*t))
        });
        inner.sent.push_back(now);
        if over {
            inner.quota_429s += 1;
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                [(
                    "Retry-After",
                    retry.as_secs_f64().ceil().max(1.0).to_string(),
                )],
                Json(json!({"errors": [{"message": "You have made too many requests recently."}]})),
            )
                .into_response());
        }
    }
    let Some(fault) = inner.faults.front().cloned() else {
        return Ok(None);
    };
    match fault {
        Fault::RateLimit(secs) | Fault::RateLimitCreate(secs)
            if create || matches!(fault, Fault::RateLimit(_)) =>
        {
            inner.faults.pop_front();
            Err((
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", secs.to_string())],
                Json(json!({"errors": [{"message": "You have made too many requests recently."}]})),
            )
                .into_response())
        }
        Fault::Unavailable => {
            inner.faults.pop_front();
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
            ))
        }
        Fault::RefuseAttachment(status) if what == "POST /attachments" => {
            inner.faults.pop_front();
            Err(error(
                StatusCode::from_u16(status).unwrap(),
                "You do not have permission to attach files here",
            ))
        }
        Fault::CreateThenFail | Fault::CreateThenStall(_) if create => {
            inner.faults.pop_front();
            Ok(Some(fault))
        }
        _ => Ok(None),
    }
}

const ALLOWED: [&str; 13] = [
    "body", "strong", "em", "u", "s", "code", "ol", "ul", "li", "a", "h1", "h2", "hr",
];

/// Asana's rich-text rules: well-formed XML, one `<body>` root, allowed tags only, attributes only
/// on `<a>`. Returns the plain text (what Asana shows as `notes`).
pub fn validate_rich_text(html: &str) -> Result<String, String> {
    use quick_xml::events::{BytesStart, Event};
    let check = |e: &BytesStart, depth: usize| -> Result<(), String> {
        let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
        if depth == 0 && name != "body" {
            return Err(format!("root element must be <body>, not <{name}>"));
        }
        if !ALLOWED.contains(&name.as_str()) {
            return Err(format!("tag <{name}> is not allowed"));
        }
        if name != "a" && e.attributes().next().is_some() {
            return Err(format!("attributes are not allowed on <{name}>"));
        }
        Ok(())
    };
    let mut reader = quick_xml::Reader::from_str(html);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots, mut text) = (0usize, 0usize, String::new());
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                check(&e, depth)?;
                roots += usize::from(depth == 0);
                depth += 1;
            }
            Ok(Event::Empty(e)) => {
                check(&e, depth)?;
                roots += usize::from(depth == 0);
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Text(t)) => {
                let t = t.unescape().map_err(|e| format!("bad entity: {e}"))?;
                if depth == 0 && !t.trim().is_empty() {
                    return Err("text outside <body>".into());
                }
                text.push_str(&t);
            }
            Ok(Event::Eof) => break,
            Ok(Event::CData(_)) | Ok(Event::PI(_)) | Ok(Event::DocType(_)) => {
                return Err("CDATA, processing instructions and doctypes are not allowed".into())
            }
            Ok(_) => {}
            Err(e) => return Err(format!("XML is not well-formed: {e}")),
        }
    }
    if roots != 1 || depth != 0 {
        return Err("expected exactly one <body> element".into());
    }
    Ok(text)
}

/// A JSON request body, its size recorded.
fn json_body(fake: &FakeAsana, what: &str, body: &[u8]) -> Option<Value> {
    fake.0
        .lock()
        .unwrap()
        .body_sizes
        .push((what.to_string(), body.len()));
    serde_json::from_slice(body).ok()
}

async fn create_task(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fault = match gate(&fake, &headers, "POST /tasks", true) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(body) = json_body(&fake, "POST /tasks", &body) else {
        return error(StatusCode::BAD_REQUEST, "Request body must be JSON");
    };
    let Some(data) = body.get("data").filter(|d| d.is_object()) else {
        return error(StatusCode::BAD_REQUEST, "data: Missing input");
    };
    let projects: Vec<String> = data["projects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // `memberships: [{project, section?}]` (create-only) also places the task.
    let mut memberships: Vec<(String, Option<String>)> = Vec::new();
    match data.get("memberships") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for m in items {
                let Some(project) = m.get("project").and_then(Value::as_str) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "memberships: project: Missing input (a project gid, as a string)",
                    );
                };
                let section = match m.get("section") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "memberships: section: must be a section gid (a string)",
                        )
                    }
                };
                memberships.push((project.to_string(), section));
            }
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "memberships: must be an array of {project, section}",
            )
        }
    }
    if projects.is_empty()
        && memberships.is_empty()
        && data.get("workspace").is_none()
        && data.get("parent").is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "You should specify one of workspace, parent, projects",
        );
    }
    if data["projects"]
        .as_array()
        .is_some_and(|a| a.iter().any(|p| !p.is_string()))
    {
        return error(StatusCode::BAD_REQUEST, "projects: gids must be strings");
    }
    let html = data["html_notes"]
        .as_str()
        .unwrap_or("<body></body>")
        .to_string();
    let notes = match validate_rich_text(&html) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("html_notes: {e}")),
    };
    let mut projects = projects;
    for (project, _) in &memberships {
        if !projects.contains(project) {
            projects.push(project.clone());
        }
    }
    let task = {
        let mut inner = fake.0.lock().unwrap();
        let refs = match check_refs(&mut inner, data, &projects, &memberships) {
            Ok(refs) => refs,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        inner.next_gid += 1;
        let task = Task {
            gid: format!("12000000{}", inner.next_gid),
            name: data["name"].as_str().unwrap_or_default().to_string(),
            html_notes: html,
            notes,
            projects,
            section: refs.section,
            assignee: refs.assignee,
            completed: false,
            comments: Vec::new(),
            followers: refs.followers,
            tags: refs.tags,
            custom_fields: refs.custom_fields,
        };
        inner.tasks.push(task.clone());
        inner.created_at.push(std::time::Instant::now());
        task
    };
    match fault {
        Some(Fault::CreateThenFail) => error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
        Some(Fault::CreateThenStall(wait)) => {
            tokio::time::sleep(wait).await;
            error(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        _ => (
            StatusCode::CREATED,
            Json(json!({"data": {"gid": task.gid, "resource_type": "task", "name": task.name}})),
        )
            .into_response(),
    }
}

/// What a `POST /tasks` refers to, checked against what the fake knows.
struct Refs {
    section: Option<String>,
    assignee: Option<String>,
    followers: Vec<String>,
    tags: Vec<String>,
    custom_fields: Vec<(String, String)>,
}

/// An optional array of strings (`null` is none); anything else is a 400.
fn string_list(data: &Value, key: &str) -> Result<Vec<String>, String> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{key}: must be an array of strings")),
        Some(_) => Err(format!("{key}: must be an array of strings")),
    }
}

/// Sections, users, tags and custom fields of a new task; `Err` is the 400's message.
fn check_refs(
    inner: &mut Inner,
    data: &Value,
    projects: &[String],
    memberships: &[(String, Option<String>)],
) -> Result<Refs, String> {
    let mut section = None;
    for (project, s) in memberships {
        let Some(s) = s else { continue };
        if !inner
            .sections
            .iter()
            .any(|x| &x.gid == s && &x.project == project)
        {
            return Err(format!(
                "memberships: section {s} is not in project {project}"
            ));
        }
        section.get_or_insert_with(|| s.clone());
    }
    let assignee = match data.get("assignee") {
        None | Some(Value::Null) => None,
        Some(Value::String(who)) => Some(
            inner
                .user(who)
                .ok_or_else(|| format!("assignee: Not a recognized ID: {who}"))?
                .gid,
        ),
        Some(v) => return Err(format!("assignee: Not a recognized ID: {v}")),
    };
    let mut followers = Vec::new();
    for who in string_list(data, "followers")? {
        let gid = inner
            .user(&who)
            .ok_or_else(|| format!("followers: Not a recognized ID: {who}"))?
            .gid;
        if !followers.contains(&gid) {
            followers.push(gid);
        }
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in string_list(data, "tags")? {
        if !inner.tags.iter().any(|(gid, _)| *gid == tag) {
            return Err(format!("tags: Not a recognized ID: {tag}"));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let mut custom_fields = Vec::new();
    match data.get("custom_fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(values)) => {
            for (gid, value) in values {
                let Some(field) = inner.custom_fields.iter().find(|f| &f.gid == gid) else {
                    return Err(format!("custom_fields: Not a recognized ID: {gid}"));
                };
                if !field.projects.iter().any(|p| projects.contains(p)) {
                    return Err(format!(
                        "custom_fields: Custom field with ID {gid} is not on given object"
                    ));
                }
                match value {
                    // An enum field's value is one of its option gids; `null` leaves it empty.
                    Value::Null => {}
                    Value::String(v) if field.options.iter().any(|(o, _)| o == v) => {
                        custom_fields.push((gid.clone(), v.clone()))
                    }
                    v => {
                        let name = &field.name;
                        return Err(format!(
                            "custom_fields: {v} is not an option gid of enum field {gid} ({name})"
                        ));
                    }
                }
            }
        }
        Some(_) => return Err("custom_fields: must be an object {field gid: value}".into()),
    }
    Ok(Refs {
        section,
        assignee,
        followers,
        tags,
        custom_fields,
    })
}

/// `GET /users/{user_gid}`: a gid, an email or `me`.
async fn get_user(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    Path(who): Path<String>,
) -> Response {
    if let Err(r) = gate(&fake, &headers, &format!("GET /users/{who}"), false) {
        return r;
    }
    let Some(user) = fake.0.lock().unwrap().user(&who) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("user: Not a recognized ID: {who}"),
        );
    };
    (
        StatusCode::OK,
        Json(json!({"data": {
            "gid": user.gid,
            "resource_type": "user",
            "name": user.name,
            "email": user.email,
            "workspaces": [{"gid": WORKSPACE, "resource_type": "workspace", "name": "Fake workspace"}],
        }})),
    )
        .into_response()
}

async fn update_task(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = gate(&fake, &headers, &format!("PUT /tasks/{gid}"), false) {
        return r;
    }
    let mut inner = fake.0.lock().unwrap();
    let Some(task) = inner.tasks.iter_mut().find(|t| t.gid == gid) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("task: Not a recognized ID: {gid}"),
        );
    };
    if let Some(done) = body["data"]["completed"].as_bool() {
        task.completed = done;
    }
    (
        StatusCode::OK,
        Json(json!({"data": {"gid": gid, "completed": task.completed}})),
    )
        .into_response()
}

async fn add_story(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let what = format!("POST /tasks/{gid}/stories");
    if let Err(r) = gate(&fake, &headers, &what, false) {
        return r;
    }
    let Some(body) = json_body(&fake, &what, &body) else {
        return error(StatusCode::BAD_REQUEST, "Request body must be JSON");
    };
    let data = &body["data"];
    let text = match (data["text"].as_str(), data["html_text"].as_str()) {
        (Some(t), None) => t.to_string(),
        (None, Some(h)) => match validate_rich_text(h) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("html_text: {e}")),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "Specify exactly one of text or html_text",
            )
        }
    };
    let mut inner = fake.0.lock().unwrap();
    let Some(task) = inner.tasks.iter_mut().find(|t| t.gid == gid) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("task: Not a recognized ID: {gid}"),
        );
    };
    task.comments.push(text);
    (
        StatusCode::CREATED,
        Json(json!({"data": {"gid": "9", "resource_type": "story"}})),
    )
        .into_response()
}

async fn project_tasks(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(r) = gate(
        &fake,
        &headers,
        &format!("GET /projects/{gid}/tasks"),
        false,
    ) {
        return r;
    }
    let limit: usize = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        _ => return error(StatusCode::BAD_REQUEST, "limit: Must be between 1 and 100"),
    };
    let offset: usize = match q
        .get("offset")
        .map(|o| o.strip_prefix("tok-").and_then(|n| n.parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "offset: Your pagination token is invalid or expired",
            )
        }
    };
    let incomplete_only = q.get("completed_since").map(String::as_str) == Some("now");
    let fields = q.get("opt_fields").cloned().unwrap_or_default();
    let inner = fake.0.lock().unwrap();
    let matching: Vec<&Task> = inner
        .tasks
        .iter()
        .filter(|t| t.projects.contains(&gid) && (!incomplete_only || !t.completed))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|t| {
            let mut v = json!({"gid": t.gid, "resource_type": "task", "name": t.name});
            if fields.split(',').any(|f| f == "notes") {
                v["notes"] = json!(t.notes);
            }
            v
        })
        .collect();
    let next = (offset + limit < matching.len()).then(|| {
        let token = format!("tok-{}", offset + limit);
        json!({"offset": token, "path": format!("/projects/{gid}/tasks?limit={limit}&offset={token}"), "uri": ""})
    });
    (
        StatusCode::OK,
        Json(json!({"data": page, "next_page": next})),
    )
        .into_response()
}

/// `POST /attachments`: multipart/form-data with `parent` (a task gid) and `file`; 200 with the
/// attachment's compact record.
async fn upload_attachment(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if let Err(r) = gate(&fake, &headers, "POST /attachments", false) {
        return r;
    }
    let Ok(mut multipart) = multipart else {
        return error(
            StatusCode::BAD_REQUEST,
            "Request must be multipart/form-data",
        );
    };
    let (mut parent, mut file, mut size) = (None, None, 0usize);
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let file_name = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(str::to_string);
                let Ok(bytes) = field.bytes().await else {
                    return error(StatusCode::BAD_REQUEST, "malformed multipart body");
                };
                size += bytes.len();
                match name.as_str() {
                    "parent" => parent = Some(String::from_utf8_lossy(&bytes).to_string()),
                    "file" => file = Some((file_name, content_type, bytes.to_vec())),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return error(StatusCode::PAYLOAD_TOO_LARGE, "file: larger than 100MB")
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, "malformed multipart body"),
        }
    }
    fake.0
        .lock()
        .unwrap()
        .body_sizes
        .push(("POST /attachments".into(), size));
    let Some(parent) = parent else {
        return error(StatusCode::BAD_REQUEST, "parent: Missing input");
    };
    let Some((Some(name), content_type, content)) = file else {
        return error(StatusCode::BAD_REQUEST, "file: Missing input");
    };
    let mut inner = fake.0.lock().unwrap();
    if !inner.tasks.iter().any(|t| t.gid == parent) {
        return error(
            StatusCode::NOT_FOUND,
            &format!("parent: Not a recognized ID: {parent}"),
        );
    }
    inner.next_gid += 1;
    let gid = format!("14000000{}", inner.next_gid);
    inner.attachments.push(Attachment {
        gid: gid.clone(),
        parent,
        name: name.clone(),
        content_type,
        content,
    });
    (
        StatusCode::OK,
        Json(json!({"data": {"gid": gid, "resource_type": "attachment", "name": name, "resource_subtype": "asana"}})),
    )
        .into_response()
}

/// `GET /attachments?parent=<gid>`: the compact records, paginated like every list.
async fn list_attachments(
    State(fake): State<FakeAsana>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(r) = gate(&fake, &headers, "GET /attachments", false) {
        return r;
    }
    let Some(parent) = q.get("parent") else {
        return error(StatusCode::BAD_REQUEST, "parent: Missing input");
    };
    let limit: usize = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        _ => return error(StatusCode::BAD_REQUEST, "limit: Must be between 1 and 100"),
    };
    let offset: usize = match q
        .get("offset")
        .map(|o| o.strip_prefix("tok-").and_then(|n| n.parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "offset: Your pagination token is invalid or expired",
            )
        }
    };
    let inner = fake.0.lock().unwrap();
    let matching: Vec<&Attachment> = inner
        .attachments
        .iter()
        .filter(|a| &a.parent == parent)
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|a| json!({"gid": a.gid, "resource_type": "attachment", "name": a.name, "resource_subtype": "asana"}))
        .collect();
    let next = (offset + limit < matching.len()).then(|| {
        let token = format!("tok-{}", offset + limit);
        json!({"offset": token, "path": format!("/attachments?parent={parent}&limit={limit}&offset={token}"), "uri": ""})
    });
    (
        StatusCode::OK,
        Json(json!({"data": page, "next_page": next})),
    )
        .into_response()
}
