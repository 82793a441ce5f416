//! On-demand benchmark (bench/notifier.sh): latency from a check's NOTIFY to the task's POST, and
//! throughput and memory draining 1,000 pending runs into the fake Asana. Not part of CI.

mod common;

use std::time::{Duration, Instant};

use common::fake_asana::FakeAsana;
use common::*;

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with bench/notifier.sh"]
async fn notifier_benchmark() {
    // Latency: the sidecar waits on LISTEN; each check commits one run with one new delta.
    let db = fresh_db("nb_latency").await;
    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let mut sidecar = notifier("nb_latency", &asana, &["run"])
        .env("DRIFT_POLL_SECONDS", "60") // only NOTIFY can explain a fast delivery
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

    // Throughput: 1,000 runs with new deltas pending, drained by one `run --once`.
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
    let asana = fake.start().await;
    let started = Instant::now();
    let mut child = notifier("nb_drain", &asana, &["run", "--once"])
        .env("DRIFT_LOG", "warn")
        .spawn()
        .unwrap();
    let mut peak_kb = 0;
    let status = loop {
        peak_kb = peak_kb.max(vm_hwm_kb(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed().as_secs_f64();
    assert!(status.success());
    assert_eq!(fake.tasks().len() as i64, pending);

    println!("| Measurement | Value |");
    println!("|---|---:|");
    println!(
        "| NOTIFY → task POST, median of 30 | {:.1} ms |",
        percentile(latencies.clone(), 0.5)
    );
    println!(
        "| NOTIFY → task POST, p95 | {:.1} ms |",
        percentile(latencies, 0.95)
    );
    println!(
        "| sidecar peak memory (VmHWM) | {:.1} MB |",
        sidecar_kb as f64 / 1024.0
    );
    println!("| draining {pending} pending runs (`run --once`) | {elapsed:.2} s |");
    println!("| throughput | {:.0} tasks/s |", pending as f64 / elapsed);
    println!(
        "| `run --once` peak memory (VmHWM) | {:.1} MB |",
        peak_kb as f64 / 1024.0
    );
}
