//! Helpers for the notifier's integration tests: a fresh database with the real extension on the
//! real cluster `scripts/test.sh` started (DW_TEST_PG_PORT), the real `drift-notifier` binary,
//! and the fake Asana.
#![allow(dead_code)]

pub mod fake_asana;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

pub fn pg_port() -> String {
    std::env::var("DW_TEST_PG_PORT").expect(
        "DW_TEST_PG_PORT: run the notifier tests through scripts/test.sh, which starts the cluster",
    )
}

pub fn url(db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{db}", pg_port())
}

pub async fn connect(db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&url(db), NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A fresh database named after the test, with drift_watch installed and an app schema whose
/// contract is loaded.
pub async fn fresh_db(name: &str) -> Client {
    let admin = connect("postgres").await;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    admin.batch_execute(&drop).await.unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let db = connect(name).await;
    db.batch_execute(
        "SET client_min_messages = warning;
         CREATE EXTENSION drift_watch CASCADE;
         CREATE SCHEMA app;
         CREATE TABLE app.users (id bigint, email text, phone text);
         CREATE TABLE app.orders (id bigint, total numeric(12,2));
         SELECT load_contract('models/app.yml', $$
sources:
  - name: app
    tables:
      - name: users
        columns: [{name: id, data_type: bigint}, {name: email}, {name: phone}]
      - name: orders
        columns: [{name: id}, {name: total, data_type: \"numeric(12,2)\"}]
$$);
         SELECT run_check();",
    )
    .await
    .unwrap();
    db
}

/// A migration that makes drift, and a check that records it (one `new_deltas` outbox item).
pub async fn drift(db: &Client) {
    db.batch_execute(
        "ALTER TABLE app.users RENAME COLUMN phone TO phone_number;
         ALTER TABLE app.users ADD COLUMN \"Nickname\" text;
         ALTER TABLE app.orders ALTER COLUMN total TYPE numeric(14,2);
         SELECT run_check();",
    )
    .await
    .unwrap();
}

pub fn notifier(db: &str, asana: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drift-notifier"));
    cmd.args(args)
        .env("DATABASE_URL", url(db))
        .env("ASANA_TOKEN", fake_asana::TOKEN)
        .env("ASANA_PROJECT", "1100000000001")
        .env("ASANA_SECTION", "1100000000002")
        .env("ASANA_BASE_URL", asana)
        .env("DRIFT_POLL_SECONDS", "1")
        .env("DRIFT_LEASE_SECONDS", "2")
        .env_remove("DRIFT_LOG_FORMAT");
    cmd
}

/// `run --once` to completion.
pub fn run_once(db: &str, asana: &str) -> Output {
    notifier(db, asana, &["run", "--once"]).output().unwrap()
}

/// The sidecar, its log in `target/notifier-<db>.log` (a pipe nobody reads would fill up and
/// stall it).
pub fn spawn_sidecar(db: &str, asana: &str) -> Child {
    let path = format!("{}/../target/notifier-{db}.log", env!("CARGO_MANIFEST_DIR"));
    let log = std::fs::File::create(path).unwrap();
    notifier(db, asana, &["run"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Polls `cond` until it holds or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

pub async fn outbox_state(db: &Client) -> Vec<(String, i32, bool, Option<String>)> {
    db.query(
        "SELECT kind, attempts, delivered_at IS NOT NULL, last_error FROM drift_watch.outbox ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// The first column of every row of `sql`, as text.
pub async fn strings(db: &Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// "Time passes": every pending item becomes due now.
pub async fn make_due(db: &Client) {
    db.execute(
        "UPDATE drift_watch.outbox SET next_attempt_at = now() WHERE delivered_at IS NULL",
        &[],
    )
    .await
    .unwrap();
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    send_signal(child.id(), "TERM");
    child.wait().unwrap()
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The peak resident set size of a process (VmHWM), in kB; 0 once it is gone.
pub fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `count` tables of `columns` new columns each, in the contract with only `id`, checked once
/// before the columns arrive (so they are `added`) and once after.
pub async fn wide_drift(db: &Client, count: usize, columns: usize) {
    let tables: Vec<String> = (0..count).map(|t| format!("w{t:03}")).collect();
    let mut sql = String::new();
    for t in &tables {
        sql.push_str(&format!("CREATE TABLE app.{t} (id int);"));
    }
    sql.push_str(&format!(
        "SELECT load_contract('models/wide.yml', $$sources:\n  - name: wide\n    schema: app\n    tables:\n{}$$); SELECT run_check();",
        tables
            .iter()
            .map(|t| format!("      - name: {t}\n        columns: [{{name: id}}]\n"))
            .collect::<String>()
    ));
    db.batch_execute(&sql).await.unwrap();
    for t in &tables {
        let adds: Vec<String> = (0..columns)
            .map(|c| format!("ADD COLUMN \"c,{c:04}\" text"))
            .collect();
        db.batch_execute(&format!("ALTER TABLE app.{t} {}", adds.join(", ")))
            .await
            .unwrap();
    }
    db.batch_execute("SELECT run_check()").await.unwrap();
}
