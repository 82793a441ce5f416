//! drift-notifier against a real PostgreSQL cluster with the real extension, and the fake Asana.
//! Run by scripts/test.sh (it starts the cluster) with --test-threads=1: one test restarts it.

mod common;

use std::time::Duration;

use common::fake_asana::{validate_rich_text, FakeAsana, Fault};
use common::*;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_becomes_one_task_and_a_restart_adds_none() {
    let db = fresh_db("nt_one_task").await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let mut sidecar = spawn_sidecar("nt_one_task", &asana);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drift(&db).await; // NOTIFY wakes the sidecar
    assert!(
        eventually(WAIT, || fake.tasks().len() == 1).await,
        "no task: {:?}",
        fake.requests()
    );

    let task = &fake.tasks()[0];
    assert_eq!(
        task.name,
        "dbt source drift on the audit database: 3 changes (orders, users)"
    );
    assert_eq!(task.projects, ["1100000000001"]);
    assert_eq!(task.section.as_deref(), Some("1100000000002"));
    for needle in [
        "phone_number",
        "renamed from phone",
        "Nickname",
        "numeric(12,2)",
        "numeric(14,2)",
        "detected",
    ] {
        assert!(
            task.notes.contains(needle),
            "{needle} missing from {}",
            task.notes
        );
    }
    assert!(
        task.notes.contains("quote: true"),
        "the YAML fix quotes mixed-case names"
    );
    assert!(validate_rich_text(&task.html_notes).is_ok());

    let status = terminate(&mut sidecar);
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    let again = run_once("nt_one_task", &asana);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(fake.tasks().len(), 1, "a restart files nothing twice");
    assert_eq!(
        outbox_state(&db).await,
        [("new_deltas".to_string(), 1, true, None)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn created_but_unanswered_is_recovered_by_marker_without_a_duplicate() {
    let db = fresh_db("nt_lost_answer").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::CreateThenFail);
    let first = run_once("nt_lost_answer", &asana);
    assert!(
        !first.status.success(),
        "an undelivered item makes --once fail"
    );
    assert_eq!(fake.tasks().len(), 1, "Asana did create it");
    let state = outbox_state(&db).await;
    assert!(
        !state[0].2 && state[0].3.as_deref().unwrap().contains("500"),
        "{state:?}"
    );

    make_due(&db).await;
    let second = run_once("nt_lost_answer", &asana);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        fake.tasks().len(),
        1,
        "found by its marker, not created again"
    );
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.starts_with("GET /projects/")));
    assert!(outbox_state(&db).await[0].2, "acknowledged");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_post_and_acknowledgement_then_restarted_files_one_task() {
    let db = fresh_db("nt_kill9").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::CreateThenStall(Duration::from_secs(30)));
    let mut sidecar = spawn_sidecar("nt_kill9", &asana);
    assert!(eventually(WAIT, || fake.tasks().len() == 1).await);
    send_signal(sidecar.id(), "KILL");
    let _ = sidecar.wait();
    let state = outbox_state(&db).await;
    assert_eq!(
        (state[0].1, state[0].2),
        (1, false),
        "the attempt was recorded before the POST"
    );

    tokio::time::sleep(Duration::from_secs(3)).await; // the 2 s lease ends
    let out = run_once("nt_kill9", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.tasks().len(), 1, "no duplicate after kill -9");
    assert!(outbox_state(&db).await[0].2, "acknowledged");
}

#[tokio::test(flavor = "multi_thread")]
async fn asana_down_for_a_while_then_delivered_with_attempts_recorded() {
    let db = fresh_db("nt_down").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    for _ in 0..3 {
        fake.push_fault(Fault::Unavailable);
    }
    for round in 0..3 {
        let out = run_once("nt_down", &asana);
        assert!(!out.status.success(), "round {round}");
        let state = outbox_state(&db).await;
        assert!(state[0].3.as_deref().unwrap().contains("503"), "{state:?}");
        let due_later: bool = db
            .query_one(
                "SELECT next_attempt_at > now() FROM drift_watch.outbox",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(due_later, "a 5xx backs off");
        make_due(&db).await;
    }
    let out = run_once("nt_down", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.tasks().len(), 1);
    let state = outbox_state(&db).await;
    assert_eq!(
        (state[0].1, state[0].2, state[0].3.clone()),
        (4, true, None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_wait_retry_after_and_leave_no_trace() {
    let db = fresh_db("nt_429").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::RateLimit(1));
    fake.push_fault(Fault::RateLimit(1));
    let started = std::time::Instant::now();
    let out = run_once("nt_429", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was honoured"
    );
    assert_eq!(fake.tasks().len(), 1);
    assert_eq!(outbox_state(&db).await[0].1, 1, "one attempt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_said_clearly_kept_and_delivered_once_fixed() {
    let db = fresh_db("nt_401").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let out = notifier("nt_401", &asana, &["run", "--once"])
        .env("ASANA_TOKEN", "wrong-secret-token")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("rejected the token (401)"), "{stderr}");
    assert!(
        !stderr.contains("wrong-secret-token"),
        "the token is never logged"
    );
    let state = outbox_state(&db).await;
    assert!(
        !state[0].2 && state[0].3.as_deref().unwrap().contains("401"),
        "{state:?}"
    );
    let parked: bool = db
        .query_one(
            "SELECT next_attempt_at = 'infinity' FROM drift_watch.outbox",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(parked, "a 4xx is not retried blindly");

    let fixed = run_once("nt_401", &asana);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(fake.tasks().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_notifiers_at_once_file_one_task() {
    let db = fresh_db("nt_two").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::CreateThenStall(Duration::from_millis(1500)));
    let a = notifier("nt_two", &asana, &["run", "--once"])
        .spawn()
        .unwrap();
    let b = notifier("nt_two", &asana, &["run", "--once"])
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let _ = (a, b);
    make_due(&db).await;
    let c = run_once("nt_two", &asana);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert_eq!(
        fake.tasks().len(),
        1,
        "SKIP LOCKED + lease + marker: one task"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_new_columns_make_one_valid_readable_task() {
    let db = fresh_db("nt_wide").await;
    let mut ddl = String::from("ALTER TABLE app.users ");
    ddl.push_str(
        &(1..=500)
            .map(|i| format!("ADD COLUMN \"Col<{i}>&\" text"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    db.batch_execute(&ddl).await.unwrap();
    db.batch_execute("SELECT run_check()").await.unwrap();
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let out = run_once("nt_wide", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].name,
        "dbt source drift on the audit database: 500 changes (users)"
    );
    // 300 listed, and one summary line for the other 200 (same table).
    assert_eq!(tasks[0].html_notes.matches("<li>").count(), 301);
    assert!(
        tasks[0].notes.contains("app.users (source app): 200 added"),
        "{}",
        tasks[0].notes
    );
    let listed = (1..=500)
        .filter(|i| tasks[0].notes.contains(&format!("Col<{i}>&")))
        .count();
    assert!(listed >= 300, "escaped in XML, intact as text: {listed}");
    let attachments = fake.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].parent, tasks[0].gid);
    let csv = parse_csv(&attachments[0].content);
    assert_eq!(csv.len(), 501, "a header and every delta");
    assert!(csv.iter().any(|r| r[3] == "Col<250>&" && r[4] == "added"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resolution_comments_and_completes_the_task() {
    let db = fresh_db("nt_resolve").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    assert!(run_once("nt_resolve", &asana).status.success());

    // Part of it caught up: a comment, the task stays open.
    db.batch_execute(
        "SELECT load_contract('models/app.yml', $$
sources:
  - name: app
    tables:
      - name: users
        columns: [{name: id, data_type: bigint}, {name: email}, {name: phone_number}, {name: Nickname, quote: true}]
      - name: orders
        columns: [{name: id}, {name: total, data_type: \"numeric(12,2)\"}]
$$); SELECT run_check();",
    )
    .await
    .unwrap();
    assert!(run_once("nt_resolve", &asana).status.success());
    let task = fake.tasks()[0].clone();
    assert_eq!(task.comments.len(), 1);
    assert!(
        task.comments[0].contains("still open") && !task.completed,
        "{task:?}"
    );

    // The rest: a comment, and the task completed.
    db.batch_execute(
        "ALTER TABLE app.orders ALTER COLUMN total TYPE numeric(12,2); SELECT run_check();",
    )
    .await
    .unwrap();
    assert!(run_once("nt_resolve", &asana).status.success());
    let task = fake.tasks()[0].clone();
    assert_eq!(task.comments.len(), 2);
    assert!(
        task.comments[1].contains("closing it") && task.completed,
        "{task:?}"
    );
    assert_eq!(fake.tasks().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_it_says_dry_run_prints_and_acknowledges_nothing() {
    let db = fresh_db("nt_dry").await;
    drift(&db).await;
    let out = notifier("nt_dry", "http://127.0.0.1:9", &["run", "--once"])
        .env_remove("ASANA_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dry-run mode"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would create task") && stdout.contains("phone_number"),
        "{stdout}"
    );
    assert_eq!(
        outbox_state(&db).await,
        [("new_deltas".to_string(), 0, false, None)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_postgres_is_reconnected_and_delivery_catches_up() {
    let (Ok(pgdata), Ok(pg_bin)) = (std::env::var("DW_TEST_PGDATA"), std::env::var("DW_PG_BIN"))
    else {
        panic!("DW_TEST_PGDATA and DW_PG_BIN come from scripts/test.sh");
    };
    let db = fresh_db("nt_pg_restart").await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let mut sidecar = spawn_sidecar("nt_pg_restart", &asana);
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(db);
    // No pipes to the new postmaster (it would hold them open): its output goes to the log.
    let log = std::path::Path::new(&pgdata).with_file_name("server.log");
    let restart = tokio::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &format!("{pg_bin}/pg_ctl"),
            "-D",
            &pgdata,
        ])
        .args(["-m", "fast", "-w", "-l", &log.to_string_lossy(), "restart"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(
        restart.success(),
        "pg_ctl restart failed: see {}",
        log.display()
    );
    let db = connect("nt_pg_restart").await;
    drift(&db).await;
    assert!(
        eventually(WAIT, || fake.tasks().len() == 1).await,
        "reconnected and delivered"
    );
    assert!(terminate(&mut sidecar).success());
}

#[test]
fn the_fake_rejects_what_asana_rejects() {
    assert!(validate_rich_text("<body>a &amp; <strong>b</strong><hr/></body>").is_ok());
    for bad in [
        "plain text",
        "<body>unclosed <strong></body>",
        "<body><p>paragraph</p></body>",
        "<body>a<br/>b</body>",
        "<body>a & b</body>",
        "<body><em class=\"x\">e</em></body>",
        "<div><body>x</body></div>",
        "<body>x</body><body>y</body>",
    ] {
        assert!(validate_rich_text(bad).is_err(), "accepted {bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn marker_recovery_pages_through_a_busy_project() {
    let db = fresh_db("nt_pages").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.seed_tasks("1100000000001", 250); // three pages of 100 before ours
    fake.push_fault(Fault::CreateThenFail);
    assert!(!run_once("nt_pages", &asana).status.success());
    let before = fake.requests().len();
    make_due(&db).await;
    assert!(run_once("nt_pages", &asana).status.success());
    assert_eq!(
        fake.tasks().len(),
        251,
        "found on the third page, not created again"
    );
    let second = fake.requests()[before..].to_vec();
    let pages = second
        .iter()
        .filter(|r| r.starts_with("GET /projects/"))
        .count();
    assert_eq!(pages, 3, "{second:?}");
    assert!(!second.iter().any(|r| r == "POST /tasks"), "{second:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_target_becomes_one_task_per_outage_and_recovery_closes_it() {
    let db = fresh_db("nt_outage").await;
    db.batch_execute(
        "CREATE SERVER dead FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host '127.0.0.1', port '1', dbname 'x');
         CREATE USER MAPPING FOR CURRENT_USER SERVER dead OPTIONS (user 'postgres');
         SELECT run_check('dead'); SELECT run_check('dead'); SELECT run_check('dead');",
    )
    .await
    .unwrap();
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    assert!(run_once("nt_outage", &asana).status.success());
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1, "three failed runs, one outage, one task");
    assert_eq!(tasks[0].name, "dbt source drift check failing on dead");
    assert!(
        tasks[0]
            .notes
            .contains("could not read the live schema of target \"dead\""),
        "{}",
        tasks[0].notes
    );
    assert!(!tasks[0].completed);

    // The target is reachable again: the failure task gets a comment and is completed, once.
    db.batch_execute(&format!(
        "ALTER SERVER dead OPTIONS (SET port '{}', SET dbname 'nt_outage');
         SELECT run_check('dead'); SELECT run_check('dead');",
        pg_port()
    ))
    .await
    .unwrap();
    assert!(run_once("nt_outage", &asana).status.success());
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1, "recovery files no new task");
    assert_eq!(tasks[0].comments.len(), 1, "{:?}", tasks[0].comments);
    assert!(tasks[0].comments[0].contains("succeeds again") && tasks[0].completed);
    assert!(
        outbox_state(&db).await.iter().all(|item| item.2),
        "all acknowledged"
    );

    // A new outage is a new task.
    db.batch_execute("ALTER SERVER dead OPTIONS (SET port '1'); SELECT run_check('dead');")
        .await
        .unwrap();
    assert!(run_once("nt_outage", &asana).status.success());
    assert_eq!(fake.tasks().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_sidecar_prints_each_task_once() {
    let db = fresh_db("nt_dry_sidecar").await;
    drift(&db).await;
    let child = notifier(
        "nt_dry_sidecar",
        "http://127.0.0.1:9",
        &["run", "--dry-run"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await; // three polls at DRIFT_POLL_SECONDS=1
    send_signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("would create task").count(), 1, "{stdout}");
    assert_eq!(
        outbox_state(&db).await,
        [("new_deltas".to_string(), 0, false, None)]
    );
}

/// The sidecar with extra settings, its log in `target/notifier-<db>-<tag>.log`.
fn spawn_with(db: &str, asana: &str, tag: &str, env: &[(&str, &str)]) -> std::process::Child {
    let path = format!(
        "{}/../target/notifier-{db}-{tag}.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let log = std::fs::File::create(path).unwrap();
    notifier(db, asana, &["run"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn has_outbox_extend(db: &tokio_postgres::Client) -> bool {
    db.query_one(
        "SELECT to_regprocedure('drift_watch.outbox_extend(bigint, uuid, double precision)') IS NOT NULL",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_notifiers_a_short_lease_and_a_429_on_create_still_file_one_task() {
    let db = fresh_db("nt_429_lease").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    // The first create waits 6 s, twice the lease: without a heartbeat the other notifier would
    // take the item over meanwhile.
    fake.push_fault(Fault::RateLimitCreate(6));
    let started = std::time::Instant::now();
    let lease = [("DRIFT_LEASE_SECONDS", "3")];
    let mut a = spawn_with("nt_429_lease", &asana, "a", &lease);
    let mut b = spawn_with("nt_429_lease", &asana, "b", &lease);
    assert!(
        eventually(Duration::from_secs(30), || fake.tasks().len() == 1).await,
        "{:?}",
        fake.requests()
    );
    // Let the notifier that got the 429 finish its pause, search and settle.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(started.elapsed())).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(terminate(&mut a).success() && terminate(&mut b).success());
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1, "{:?}", fake.requests());
    let row = db
        .query_one(
            "SELECT asana_task_gid, delivered_at IS NOT NULL, attempts FROM drift_watch.outbox",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), Some(tasks[0].gid.clone()));
    assert!(row.get::<_, bool>(1));
    let creates = fake
        .requests()
        .iter()
        .filter(|r| *r == "POST /tasks")
        .count();
    assert_eq!(creates, 2, "the 429 and the create: {:?}", fake.requests());
    if has_outbox_extend(&db).await {
        assert_eq!(
            row.get::<_, i32>(2),
            1,
            "the heartbeat kept the claim: no takeover"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_filed_elsewhere_with_the_items_marker_is_found_before_any_create() {
    let db = fresh_db("nt_marker_first").await;
    drift(&db).await;
    let marker: String = db
        .query_one("SELECT marker FROM drift_watch.outbox", &[])
        .await
        .unwrap()
        .get(0);
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let gid = fake.add_task(
        "1100000000001",
        "filed by a notifier whose claim ran out",
        &format!("drift_watch marker: {marker}"),
    );
    let out = run_once("nt_marker_first", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.tasks().len(), 1);
    assert!(
        !fake.requests().iter().any(|r| r == "POST /tasks"),
        "{:?}",
        fake.requests()
    );
    let stored: Option<String> = db
        .query_one("SELECT asana_task_gid FROM drift_watch.outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, Some(gid));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_long_retry_after_exits_0_promptly_and_releases_the_item() {
    let db = fresh_db("nt_429_term").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::RateLimit(240));
    let mut sidecar = spawn_with("nt_429_term", &asana, "term", &[]);
    assert!(eventually(WAIT, || !fake.requests().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let status = terminate(&mut sidecar);
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(fake.tasks().len(), 0);
    let row = db
        .query_one(
            "SELECT delivered_at IS NULL, attempts, next_attempt_at <= now() + interval '5 s', last_error
               FROM drift_watch.outbox",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, i32>(1) == 1);
    assert!(
        row.get::<_, bool>(2),
        "released for the next notifier: {:?}",
        row.get::<_, Option<String>>(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_beyond_five_minutes_postpones_the_item_instead_of_holding_it() {
    let db = fresh_db("nt_429_long").await;
    drift(&db).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::RateLimit(900));
    let started = std::time::Instant::now();
    let out = run_once("nt_429_long", &asana);
    assert!(!out.status.success(), "left pending");
    assert!(started.elapsed() < Duration::from_secs(10));
    let row = db
        .query_one(
            "SELECT extract(epoch FROM next_attempt_at - now())::float8, last_error
               FROM drift_watch.outbox",
            &[],
        )
        .await
        .unwrap();
    let due_in: f64 = row.get(0);
    assert!((880.0..=900.0).contains(&due_in), "{due_in}");
    assert!(row.get::<_, String>(1).contains("rate limit"));
}

/// RFC 4180 records (quoted fields, doubled quotes, CRLF).
fn parse_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "ends with CRLF");
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_changes_make_a_bounded_task_with_the_complete_list_attached() {
    let db = fresh_db("nt_huge").await;
    wide_drift(&db, 20, 1000).await;
    let new: i32 = db
        .query_one("SELECT deltas_new FROM drift_watch.runs LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(new, 20_000);
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let mut child = notifier("nt_huge", &asana, &["run", "--once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak_kb = 0;
    let status = loop {
        peak_kb = peak_kb.max(vm_hwm_kb(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0].name.starts_with(
            "dbt source drift on the audit database: 20000 changes (w000, w001, w002 +17 more)"
        ),
        "{}",
        tasks[0].name
    );
    validate_rich_text(&tasks[0].html_notes).unwrap();
    for (what, size) in fake.body_sizes() {
        if what != "POST /attachments" {
            assert!(size <= 128 * 1024, "{what}: {size} bytes");
        }
    }
    let create = fake
        .body_sizes()
        .into_iter()
        .find(|(w, _)| w == "POST /tasks")
        .unwrap()
        .1;
    let attachments = fake.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].content_type.as_deref(), Some("text/csv"));
    let csv = parse_csv(&attachments[0].content);
    assert_eq!(
        csv[0],
        [
            "source",
            "schema",
            "table",
            "column",
            "change",
            "contract_type",
            "live_type",
            "detail",
            "first_seen"
        ]
    );
    let rows: std::collections::HashSet<(String, String)> = csv[1..]
        .iter()
        .map(|r| (r[2].clone(), r[3].clone()))
        .collect();
    assert_eq!(rows.len(), 20_000);
    assert!(rows.contains(&("w019".to_string(), "c,0999".to_string())));
    assert!(csv[1..].iter().all(|r| r[4] == "added" && r[6] == "text"));
    assert!(outbox_state(&db).await[0].2, "acknowledged");
    eprintln!(
        "20,000 changes: create body {create} bytes, attachment {} bytes, peak RSS {peak_kb} kB",
        attachments[0].content.len()
    );
    assert!(peak_kb > 0 && peak_kb < 48 * 1024, "peak RSS {peak_kb} kB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_attachment_becomes_comments_each_under_the_size_limit() {
    let db = fresh_db("nt_no_attach").await;
    wide_drift(&db, 3, 1000).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    fake.push_fault(Fault::RefuseAttachment(403));
    let out = run_once("nt_no_attach", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = &fake.tasks()[0];
    assert!(fake.attachments().is_empty());
    assert!(task.comments.len() > 1, "{}", task.comments.len());
    let mut rows = 0;
    for c in &task.comments {
        assert!(
            c.starts_with("The complete list of changes (CSV, part"),
            "{c}"
        );
        rows += c.lines().count() - 2;
    }
    assert_eq!(rows, 3000);
    for (what, size) in fake.body_sizes() {
        assert!(size <= 128 * 1024, "{what}: {size} bytes");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The value of a metric without labels.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_delivery_and_healthz_is_ok() {
    let db = fresh_db("nt_metrics").await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut sidecar = spawn_with(
        "nt_metrics",
        &asana,
        "metrics",
        &[("DRIFT_METRICS_ADDR", addr.as_str())],
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    drift(&db).await;
    assert!(eventually(WAIT, || fake.tasks().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(1500)).await; // one more poll
    let (status, text) = http_get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        metric(&text, "drift_notifier_delivered_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "drift_notifier_failed_total"), Some(0.0));
    assert_eq!(metric(&text, "drift_notifier_pending"), Some(0.0));
    assert_eq!(metric(&text, "drift_notifier_parked"), Some(0.0));
    assert_eq!(
        metric(&text, "drift_notifier_oldest_pending_age_seconds"),
        Some(0.0)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let polled = metric(
        &text,
        "drift_notifier_last_successful_poll_timestamp_seconds",
    )
    .unwrap();
    assert!((now - polled).abs() < 5.0, "{polled} vs {now}");
    assert!(text.contains("# TYPE drift_notifier_delivered_total counter"));
    assert_eq!(http_get(&format!("http://{addr}/healthz")).await.0, 200);
    assert!(terminate(&mut sidecar).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_turns_503_once_the_database_is_unreachable_past_the_threshold() {
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let mut sidecar = notifier("postgres", &asana, &["run"])
        .env("DATABASE_URL", &closed)
        .env("DRIFT_METRICS_ADDR", &addr)
        .env("DRIFT_HEALTH_UNREACHABLE_SECONDS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthz = format!("http://{addr}/healthz");
    let started = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(1), || std::net::TcpStream::connect(
            &addr
        )
        .is_ok())
        .await
    );
    let (early, _) = http_get(&healthz).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(early, 200, "unreachable, but not for long yet");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (late, body) = http_get(&healthz).await;
    assert_eq!(late, 503, "{body}");
    assert!(body.contains("unreachable"));
    let (status, text) = http_get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &text,
            "drift_notifier_last_successful_poll_timestamp_seconds"
        ),
        Some(0.0),
        "never polled"
    );
    assert!(terminate(&mut sidecar).success());
}
