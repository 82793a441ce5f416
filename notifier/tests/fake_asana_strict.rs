//! The fake Asana itself: users, tags, sections and custom fields are checked as Asana checks them
//! (shared/reference/asana.md). Needs no database.

mod common;

use common::fake_asana::{FakeAsana, FIXTURE_PROJECT, FIXTURE_SECTION, TOKEN};
use serde_json::{json, Value};

async fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn create(base: &str, data: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/tasks"))
        .bearer_auth(TOKEN)
        .json(&json!({ "data": data }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// A 400 with Asana's error envelope, its message containing `needle`.
#[track_caller]
fn rejected(answer: (u16, Value), needle: &str) {
    let (status, body) = answer;
    assert_eq!(status, 400, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {body}");
}

#[tokio::test]
async fn users_are_found_by_gid_email_or_me() {
    let fake = FakeAsana::default();
    let base = fake.start().await;
    let ada = fake.add_user("ada@example.com", "Ada");

    for who in [ada.as_str(), "ada@example.com", "ADA@example.com"] {
        let (status, body) = get(&base, &format!("/users/{who}")).await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(body["data"]["gid"], ada);
        assert_eq!(body["data"]["resource_type"], "user");
        assert_eq!(body["data"]["name"], "Ada");
        assert_eq!(body["data"]["email"], "ada@example.com");
    }
    let (status, body) = get(&base, "/users/me").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["gid"], fake.me());
    assert_ne!(fake.me(), ada);

    for who in ["nobody@example.com", "15000000999"] {
        let (status, body) = get(&base, &format!("/users/{who}")).await;
        assert_eq!(status, 404, "{who}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert_eq!(message, format!("user: Not a recognized ID: {who}"));
    }
    // Unauthenticated: 401, like every route.
    let resp = reqwest::get(format!("{base}/users/me")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(fake
        .requests()
        .contains(&"GET /users/ada@example.com".to_string()));
}

#[tokio::test]
async fn create_task_checks_every_reference() {
    let fake = FakeAsana::default();
    let base = fake.start().await;
    let (project, other) = ("1200000000001", "1200000000002");
    let ada = fake.add_user("ada@example.com", "Ada");
    let bob = fake.add_user("bob@example.com", "Bob");
    let tag = fake.add_tag("drift");
    let section = fake.add_section(project, "Incoming");
    let elsewhere = fake.add_section(other, "Incoming");
    let (field, options) = fake.add_enum_field("Severity", &["breaking", "risky"]);
    fake.add_field_to_project(project, &field);
    let (off_project, off_options) = fake.add_enum_field("Team", &["data"]);
    fake.add_field_to_project(other, &off_project);

    // Assignee by email → stored as the gid.
    let (status, body) = create(
        &base,
        json!({"name": "a", "projects": [project], "assignee": "ada@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(fake.tasks()[0].assignee.as_deref(), Some(ada.as_str()));

    rejected(
        create(
            &base,
            json!({"projects": [project], "assignee": "nobody@example.com"}),
        )
        .await,
        "assignee: Not a recognized ID: nobody@example.com",
    );
    rejected(
        create(
            &base,
            json!({"projects": [project], "followers": [bob, "nobody@example.com"]}),
        )
        .await,
        "followers: Not a recognized ID: nobody@example.com",
    );
    rejected(
        create(&base, json!({"projects": [project], "followers": bob})).await,
        "followers: must be an array",
    );
    rejected(
        create(&base, json!({"projects": [project], "tags": ["drift"]})).await,
        "tags: Not a recognized ID: drift",
    );
    rejected(
        create(
            &base,
            json!({"memberships": [{"project": project, "section": elsewhere}]}),
        )
        .await,
        &format!("memberships: section {elsewhere} is not in project {project}"),
    );
    rejected(
        create(
            &base,
            json!({"projects": [project], "custom_fields": {field.clone(): off_options[0]}}),
        )
        .await,
        "is not an option gid of enum field",
    );
    rejected(
        create(
            &base,
            json!({"projects": [project], "custom_fields": {field.clone(): "breaking"}}),
        )
        .await,
        "is not an option gid of enum field",
    );
    rejected(
        create(
            &base,
            json!({"projects": [project], "custom_fields": {off_project.clone(): off_options[0]}}),
        )
        .await,
        "is not on given object",
    );
    rejected(
        create(&base, json!({"name": "nowhere"})).await,
        "You should specify one of workspace, parent, projects",
    );
    assert_eq!(fake.tasks().len(), 1, "no rejected request created a task");

    // Everything valid, placed by memberships alone.
    let (status, body) = create(
        &base,
        json!({
            "name": "full",
            "memberships": [{"project": project, "section": section}],
            "assignee": "me",
            "followers": [bob, "ada@example.com", ada],
            "tags": [tag],
            "custom_fields": {field.clone(): options[1]},
            "due_on": "2030-01-01",
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let task = fake.tasks().pop().unwrap();
    assert_eq!(body["data"]["gid"], task.gid);
    assert_eq!(task.projects, [project]);
    assert_eq!(task.section.as_deref(), Some(section.as_str()));
    assert_eq!(task.assignee, Some(fake.me()));
    assert_eq!(task.followers, [bob, ada]);
    assert_eq!(task.tags, [tag]);
    assert_eq!(task.custom_fields, [(field, options[1].clone())]);

    // The notifier's own request shape still passes: the fixture section is known.
    let (status, body) = create(
        &base,
        json!({
            "name": "drift",
            "html_notes": "<body>x</body>",
            "projects": [FIXTURE_PROJECT],
            "memberships": [{"project": FIXTURE_PROJECT, "section": FIXTURE_SECTION}],
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let task = fake.tasks().pop().unwrap();
    assert_eq!(task.projects, [FIXTURE_PROJECT]);
    assert_eq!(task.section.as_deref(), Some(FIXTURE_SECTION));
}
