//! On-demand benchmark (bench/notifier.sh): latency from a check's NOTIFY to the task's POST;
//! draining 1,000 pending runs into a fake Asana that enforces a rate limit (no 429 may happen,
//! and the drain should take the quota's minimum time); peak memory with 150,000 deltas in one
//! run. Not part of CI: it prints figures, and asserts only what must hold.

mod common;

use std::time::{Duration, Instant};

use common::fake_asana::FakeAsana;
use common::*;

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs `run --once` to completion, sampling its peak memory; (seconds, peak kB).
fn once_with_peak(db: &str, asana: &str, env: &[(&str, &str)]) -> (f64, u64) {
    let started = Instant::now();
    let mut child = notifier(db, asana, &["run", "--once"])
        .envs(env.iter().copied())
        .env("DRIFT_LOG", "warn")
        .spawn()
        .unwrap();
    let mut peak_kb = 0;
    let status = loop {
        peak_kb = peak_kb.max(vm_hwm_kb(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    (started.elapsed().as_secs_f64(), peak_kb)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with bench/notifier.sh"]
async fn notifier_benchmark() {
    // Asana's paid quota, 1,500 requests a minute, enforced over any 10 s (250 per 10 s: stricter
    // than per minute, so bursts show).
    const RPM: &str = "1500";
    let (quota, window) = (250usize, Duration::from_secs(10));

    // Latency: the sidecar waits on LISTEN; each check commits one run with one new delta.
    let db = fresh_db("nb_latency").await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let mut sidecar = notifier("nb_latency", &asana, &["run"])
        .env("DRIFT_POLL_SECONDS", "60") // only NOTIFY can explain a fast delivery
        .env("DRIFT_ASANA_REQUESTS_PER_MINUTE", RPM)
        .env("DRIFT_LOG", "warn")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::new();
    for i in 0..30 {
        db.batch_execute(&format!("ALTER TABLE app.users ADD COLUMN lat_{i} text"))
            .await
            .unwrap();
        db.batch_execute("SELECT run_check()").await.unwrap();
        let committed = Instant::now();
        assert!(eventually(Duration::from_secs(10), || fake.tasks().len() == i + 1).await);
        let posted = fake.created_at()[i];
        latencies.push(posted.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    let sidecar_kb = vm_hwm_kb(sidecar.id());
    terminate(&mut sidecar);

    // Draining 1,000 runs with new deltas under the quota.
    let db = fresh_db("nb_drain").await;
    db.batch_execute(
        "DO $$ BEGIN
           FOR i IN 1..1000 LOOP
             EXECUTE format('ALTER TABLE app.orders ADD COLUMN c%s int', i);
             PERFORM drift_watch.run_check();
           END LOOP;
         END $$",
    )
    .await
    .unwrap();
    let pending: i64 = db
        .query_one("SELECT count(*) FROM drift_watch.outbox", &[])
        .await
        .unwrap()
        .get(0);
    let fake = FakeAsana::default();
    fake.set_quota(quota, window);
    let asana = fake.start().await;
    let (drain_s, drain_kb) = once_with_peak(
        "nb_drain",
        &asana,
        &[("DRIFT_ASANA_REQUESTS_PER_MINUTE", RPM)],
    );
    assert_eq!(fake.tasks().len() as i64, pending);
    let requests = fake.requests().len();
    let creates = fake
        .requests()
        .iter()
        .filter(|r| *r == "POST /tasks")
        .count();
    let rate = quota as f64 / window.as_secs_f64();
    // The quota's minimum: the first `quota` requests at once, then `rate` a second.
    let minimum = (requests.saturating_sub(quota)) as f64 / rate;
    let limited = fake.quota_429s();
    assert_eq!(limited, 0, "the pacing never trips the quota");

    // One run with 150,000 new columns (150 tables × 1,000).
    let db = fresh_db("nb_wide").await;
    wide_drift(&db, 150, 1000).await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let (wide_s, wide_kb) = once_with_peak(
        "nb_wide",
        &asana,
        &[("DRIFT_ASANA_REQUESTS_PER_MINUTE", RPM)],
    );
    let attachment = fake.attachments()[0].content.len();
    let create = fake
        .body_sizes()
        .into_iter()
        .find(|(w, _)| w == "POST /tasks")
        .unwrap()
        .1;

    println!("| Measurement | Value |");
    println!("|---|---:|");
    println!(
        "| check's NOTIFY → task POST, median of 30 (searched, then created, {RPM}/min pacing) | {:.1} ms |",
        percentile(latencies.clone(), 0.5)
    );
    println!(
        "| check's NOTIFY → task POST, p95 | {:.1} ms |",
        percentile(latencies, 0.95)
    );
    println!(
        "| sidecar peak memory (VmHWM) | {:.1} MB |",
        sidecar_kb as f64 / 1024.0
    );
    println!(
        "| draining {pending} pending runs (`run --once`) under {quota} requests per {} s | {drain_s:.1} s |",
        window.as_secs()
    );
    println!("| requests it took ({creates} creates, the rest marker searches) | {requests} |");
    println!("| the quota's minimum time for them | {minimum:.1} s |");
    println!(
        "| **drain time / minimum** | **{:.3}** |",
        drain_s / minimum
    );
    println!("| 429s received | {limited} |");
    println!(
        "| `run --once` peak memory, draining (VmHWM) | {:.1} MB |",
        drain_kb as f64 / 1024.0
    );
    println!("| one run with 150,000 deltas: `run --once` | {wide_s:.1} s |");
    println!(
        "| its create body / its CSV attachment | {:.1} KB / {:.1} MB |",
        create as f64 / 1024.0,
        attachment as f64 / 1024.0 / 1024.0
    );
    println!(
        "| **`run --once` peak memory, 150,000 deltas (VmHWM)** | **{:.1} MB** |",
        wide_kb as f64 / 1024.0
    );
}

/// `run --once` of `replicas` notifiers started together on `db`; (seconds, items each delivered).
fn drain_with(db: &str, asana: &str, replicas: usize, rpm: &str) -> (f64, Vec<usize>) {
    let started = Instant::now();
    let children: Vec<_> = (0..replicas)
        .map(|_| {
            notifier(db, asana, &["run", "--once"])
                .env("DRIFT_ASANA_REQUESTS_PER_MINUTE", rpm)
                .env("DRIFT_LOG", "info")
                .env("DRIFT_LOG_FORMAT", "json")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut delivered = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        // `--once` exits 1 while items are left: those another replica holds at that moment.
        let logs = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let done = logs
            .lines()
            .find(|l| l.contains("\"message\":\"done\""))
            .unwrap_or_default();
        assert!(done.contains("\"failed\":0"), "{:?}: {logs}", out.status);
        delivered.push(
            logs.lines()
                .filter(|l| l.contains("\"message\":\"delivered\""))
                .count(),
        );
    }
    (started.elapsed().as_secs_f64(), delivered)
}

/// Many targets' new drift in one outbox, drained by one notifier and then by three replicas
/// started together (each a third of the quota): every item becomes exactly one task, and the
/// replicas share the work.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with bench/notifier.sh"]
async fn replicas_share_the_outbox() {
    const ITEMS: usize = 300;
    let fill = format!(
        "DO $$ BEGIN
           FOR i IN 1..{ITEMS} LOOP
             EXECUTE format('ALTER TABLE app.orders ADD COLUMN c%s int', i);
             PERFORM drift_watch.run_check();
           END LOOP;
         END $$"
    );
    let mut rows = Vec::new();
    for (name, replicas, rpm) in [("nb_one", 1, "3000"), ("nb_three", 3, "1000")] {
        let db = fresh_db(name).await;
        db.batch_execute(&fill).await.unwrap();
        let fake = FakeAsana::default();
        let asana = fake.start().await;
        let (seconds, delivered) = drain_with(name, &asana, replicas, rpm);
        let tasks = fake.tasks();
        assert_eq!(tasks.len(), ITEMS, "every item is one task");
        for row in db
            .query("SELECT marker FROM drift_watch.outbox", &[])
            .await
            .unwrap()
        {
            let marker: String = row.get(0);
            let holding = tasks
                .iter()
                .filter(|t| t.notes.contains(&marker) || t.html_notes.contains(&marker))
                .count();
            assert_eq!(holding, 1, "item {marker}: {holding} tasks");
        }
        assert_eq!(delivered.iter().sum::<usize>(), ITEMS, "{delivered:?}");
        if replicas > 1 {
            assert!(
                delivered.iter().all(|d| *d > 0),
                "every replica delivered: {delivered:?}"
            );
        }
        let left: i64 = db
            .query_one(
                "SELECT count(*) FROM drift_watch.outbox WHERE delivered_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
        rows.push((replicas, seconds, delivered));
    }
    println!("| Notifiers on one outbox ({ITEMS} runs' items, 3,000 requests/min in all) | Drain time | Items each | Tasks |");
    println!("|---|---:|---|---:|");
    for (replicas, seconds, delivered) in rows {
        println!("| {replicas} | {seconds:.1} s | {delivered:?} | {ITEMS}, none twice |");
    }
}
