//! The whole system, end to end, on the production topology, started by the project's own script
//! (scripts/topology.sh): a primary cluster holding the app database and the audit database
//! (pg_cron preloaded, drift_watch installed), a `pg_basebackup -R` streaming replica, a foreign
//! server + user mapping from the audit database to the replica; the sample dbt project
//! (examples/shop); the real drift-notifier binary run exactly as deploy/drift-notifier.service
//! says; the fake Asana.
//!
//! Every check after the first (`drift-notifier check`) is fired by pg_cron (`* * * * *`) and
//! reads the replica, so this test takes six to seven minutes of wall time.
//!
//! The clusters serve TLS only, from the CA the script makes: every login but the postgres
//! superuser's (which the test uses to look around) is `hostssl` with a password, its URL says
//! `sslmode=verify-full`, `sslrootcert` and `channel_binding=require`, and so do the foreign
//! server's options. The test checks that each of those connections is TLS, on the server side.
//!
//! Needs the extension installed in the system PostgreSQL 15 (scripts/test.sh does it), `psql`
//! (from DW_PG_BIN when set, else PATH) and `systemd-analyze`:
//! `cargo test -p drift-notifier --test e2e`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fake_asana::{validate_rich_text, FakeAsana, Fault, Task, TOKEN};
use common::{eventually, send_signal, strings};
use tokio_postgres::{Client, NoTls};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const BIN: &str = env!("CARGO_BIN_EXE_drift-notifier");
/// pg_cron fires on the minute; a run is due within 60 s, plus its own duration.
const NEXT_RUN: Duration = Duration::from_secs(150);
const DELIVERY: Duration = Duration::from_secs(30);

/// The clusters of scripts/topology.sh, taken down when the test ends, pass or fail.
struct Topology {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Topology {
    fn up() -> Topology {
        let dir = std::env::temp_dir().join(format!("drift_watch-e2e.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let schema = format!("{ROOT}/examples/shop/app_schema.sql");
        let mut topology = Topology {
            dir,
            env: HashMap::new(),
        };
        topology.script(&["up", &schema]);
        let text = std::fs::read_to_string(topology.dir.join("topology.env")).unwrap();
        topology.env = parse_env(&text);
        topology
    }

    fn script(&self, args: &[&str]) {
        let (cmd, rest) = args.split_first().unwrap();
        let out = Command::new("bash")
            .arg(format!("{ROOT}/scripts/topology.sh"))
            .arg(cmd)
            .arg(&self.dir)
            .args(rest)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/topology.sh {cmd} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn get(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or_else(|| {
            panic!("{key} missing from topology.env");
        })
    }

    fn url(&self, port_key: &str, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.get(port_key))
    }

    /// The replica's server log (log_connections = on).
    fn replica_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("replica/server.log")).unwrap()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{ROOT}/scripts/topology.sh"))
            .arg("down")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
    }
}

/// KEY=VALUE lines, '#' comments: the format of topology.env and of a systemd EnvironmentFile
/// as we write them (a value may be in single quotes, as topology.env has them for bash, whose
/// `.` would otherwise read the '&' in a URL; nothing inside needs escaping).
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// What deploy/drift-notifier.service tells systemd to run.
struct Unit {
    text: String,
    exec_start: Vec<String>,
    environment: Vec<(String, String)>,
    environment_file: String,
    timeout_stop: Duration,
}

impl Unit {
    fn read() -> Unit {
        let text =
            std::fs::read_to_string(format!("{ROOT}/deploy/drift-notifier.service")).unwrap();
        let mut section = String::new();
        let mut keys: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            let (k, v) = line.split_once('=').expect("Key=Value");
            if section == "[Service]" {
                keys.entry(k.to_string()).or_default().push(v.to_string());
            }
        }
        let one = |k: &str| -> String {
            let v = keys
                .get(k)
                .unwrap_or_else(|| panic!("[Service] {k}= missing"));
            assert_eq!(v.len(), 1, "{k}= given more than once");
            v[0].clone()
        };
        let exec = one("ExecStart");
        assert!(!exec.contains('"') && !exec.contains('\''), "no quoting");
        let environment = keys
            .get("Environment")
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let timeout = one("TimeoutStopSec");
        let secs: u64 = timeout.trim_end_matches('s').parse().unwrap();
        assert_eq!(one("KillSignal"), "SIGTERM");
        Unit {
            exec_start: exec.split_whitespace().map(String::from).collect(),
            environment,
            environment_file: one("EnvironmentFile"),
            timeout_stop: Duration::from_secs(secs),
            text,
        }
    }

    /// `systemd-analyze verify` on the unit as installed: the binary at ExecStart's path (here,
    /// the one cargo built) and the environment file present. Warnings count as failures.
    fn verify(&self, dir: &Path, env_file: &Path) {
        let unit = dir.join("drift-notifier.service");
        let text = self
            .text
            .replace(&self.exec_start[0], BIN)
            .replace(&self.environment_file, &env_file.to_string_lossy());
        std::fs::write(&unit, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze (package systemd, installed by scripts/setup.sh)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify: {stderr}"
        );
    }

    /// Starts the notifier as systemd would: ExecStart's arguments, Environment= and the
    /// EnvironmentFile, nothing inherited.
    fn spawn(&self, env_file: &Path, log: &Path) -> Sidecar {
        let file_env = parse_env(&std::fs::read_to_string(env_file).unwrap());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Command::new(BIN)
            .args(&self.exec_start[1..])
            .env_clear()
            .envs(self.environment.iter().cloned())
            .envs(file_env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map(Sidecar)
            .unwrap()
    }
}

/// The sidecar process, killed if the test fails before stopping it.
struct Sidecar(Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("ASANA_TOKEN")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The postgres superuser's connections (trust on 127.0.0.1, as the scripts use it).
async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// `psql` on a URL as libpq reads it (sslmode=verify-full, sslrootcert, channel_binding): how
/// the test logs in as the deployment's TLS-only logins. No password file, no prompt.
fn psql(url: &str, sql: &str) -> Output {
    let bin = std::env::var("DW_PG_BIN")
        .map(|dir| format!("{dir}/psql"))
        .unwrap_or_else(|_| "psql".to_string());
    Command::new(bin)
        .args(["-XqAtw", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent/drift_watch-e2e.pgpass")
        .output()
        .expect("psql (DW_PG_BIN or PATH)")
}

/// The URL without its query string, and with `sslmode=disable`: the same login in plain text.
fn plain_text(url: &str) -> String {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    format!("{base}?sslmode=disable")
}

/// Lines of the replica's log where drift_reader logged in.
fn reader_logins(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("connection authorized: user=drift_reader "))
        .map(String::from)
        .collect()
}

/// The TLS of a connection as the server logs it with log_connections (both ends are OpenSSL,
/// with TLS 1.3 the only protocol the clusters accept).
const READER_TLS: &str = "SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)";

async fn now(db: &Client) -> String {
    db.query_one("SELECT clock_timestamp()::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[derive(Debug)]
struct Run {
    id: i64,
    status: String,
    error: Option<String>,
    new: Option<i32>,
    resolved: Option<i32>,
    open: Option<i32>,
}

/// The first finished run of app_replica that started after `since` (pg_cron's, every minute).
async fn next_run(audit: &Client, since: &str) -> Run {
    let start = Instant::now();
    loop {
        let row = audit
            .query_opt(
                "SELECT id, status, error, deltas_new, deltas_resolved, deltas_open
                   FROM drift_watch.check_run
                  WHERE target = 'app_replica' AND started_at > $1::text::timestamptz
                    AND status <> 'running'
                  ORDER BY id LIMIT 1",
                &[&since],
            )
            .await
            .unwrap();
        if let Some(r) = row {
            return Run {
                id: r.get(0),
                status: r.get(1),
                error: r.get(2),
                new: r.get(3),
                resolved: r.get(4),
                open: r.get(5),
            };
        }
        if start.elapsed() > NEXT_RUN {
            let details = strings(
                audit,
                "SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details",
            )
            .await;
            panic!("pg_cron ran no check after {since} within {NEXT_RUN:?}; job runs: {details:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn open_deltas(audit: &Client) -> BTreeSet<(String, String, String)> {
    audit
        .query(
            "SELECT schema_name || '.' || table_name, coalesce(column_name, ''), change
               FROM drift_watch.delta WHERE target = 'app_replica' AND resolved_run IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// (kind, delivered) of every outbox item, in order.
async fn outbox(audit: &Client) -> Vec<(String, bool)> {
    audit
        .query(
            "SELECT kind, delivered_at IS NOT NULL FROM drift_watch.outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// An analytics engineer's edit of a sources file: each (old, new) must match exactly once.
fn edit(path: &Path, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for (old, new) in edits {
        assert_eq!(
            text.matches(old).count(),
            1,
            "{}: expected one {old:?}",
            path.display()
        );
        text = text.replace(old, new);
    }
    std::fs::write(path, text).unwrap();
}

fn expected_deltas() -> BTreeSet<(String, String, String)> {
    [
        ("public.orders", "sales_channel", "added"),
        ("public.customers", "phone_number", "renamed"),
        ("public.orders", "total", "retyped"),
        ("payments.payments", "amount_cents", "retyped"),
        ("public.reviews", "body", "removed"),
        ("logistics.shipments", "ExternalRef", "added"),
        ("payments.refunds", "", "table_missing"),
    ]
    .iter()
    .map(|(t, c, k)| (t.to_string(), c.to_string(), k.to_string()))
    .collect()
}

fn drift_task(fake: &FakeAsana) -> Task {
    fake.tasks()
        .into_iter()
        .find(|t| t.name.contains("dbt source drift on"))
        .expect("the drift task")
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_on_the_primary_become_one_asana_task_through_the_replica_and_pg_cron() {
    let unit = Unit::read();
    let topology = Topology::up();
    let work = topology.dir.join("e2e");
    std::fs::create_dir_all(&work).unwrap();
    let audit_url = topology.get("AUDIT_URL").to_string();
    // The dbt project's CI login, with only the grants the README's deployment steps give it.
    let contract_url = topology.get("CONTRACT_URL").to_string();
    let audit = connect(&audit_url).await;
    let primary_app = connect(&topology.url("PRIMARY_PORT", "app")).await;
    let replica_app = connect(&topology.url("REPLICA_PORT", "app")).await;

    let fake = FakeAsana::default();
    // examples/shop's sources are owned by ana (dbt meta); its exposure by carol.
    let ana = fake.add_user("ana@example.com", "Ana Analytics");
    let carol = fake.add_user("carol@example.com", "Carol Finance");
    let asana = fake.start().await;
    // The site's EnvironmentFile: the notifier's own login (drift_watch_notifier), the fake
    // Asana, and short timings so the test does not wait out production defaults.
    let env_file = work.join("notifier.env");
    std::fs::write(
        &env_file,
        format!(
            "# test site configuration\nDATABASE_URL={}\nASANA_TOKEN={TOKEN}\n\
             ASANA_PROJECT=1100000000001\nASANA_SECTION=1100000000002\nASANA_BASE_URL={asana}\n\
             DRIFT_POLL_SECONDS=1\nDRIFT_LEASE_SECONDS=3\nDRIFT_SHUTDOWN_SECONDS=5\n",
            topology.get("NOTIFIER_URL")
        ),
    )
    .unwrap();
    unit.verify(&work, &env_file);
    let log = work.join("notifier.log");

    // The topology is what it claims: the replica is in recovery, and the foreign server the
    // checks use points at it, not at the primary.
    let in_recovery: bool = replica_app
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(in_recovery, "the replica is a physical standby");
    let ca = topology.get("CA_FILE").to_string();
    let no_password = format!(
        "postgres://drift_reader@127.0.0.1:{}/app?sslmode=verify-full&sslrootcert={ca}",
        topology.get("REPLICA_PORT")
    );
    let refused = psql(&no_password, "SELECT 1");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("no password supplied"),
        "the replica asks drift_reader for its password: {refused:?}"
    );
    // TLS or nothing: each TLS-only login, in plain text with its right password, is refused by
    // pg_hba.conf before authentication.
    let reader_plain = format!(
        "postgres://drift_reader:x@127.0.0.1:{}/app?sslmode=disable",
        topology.get("REPLICA_PORT")
    );
    for url in [
        reader_plain,
        plain_text(topology.get("NOTIFIER_URL")),
        plain_text(topology.get("CHECKER_URL")),
        plain_text(&contract_url),
    ] {
        let err = tokio_postgres::connect(&url, NoTls)
            .await
            .err()
            .unwrap_or_else(|| panic!("a plain-text login succeeded: {url}"));
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{db}"
        );
        assert!(
            db.message().starts_with("pg_hba.conf rejects connection")
                && db.message().ends_with("no encryption"),
            "{db}"
        );
    }
    // The logins' URLs verify the server and bind SCRAM to the channel.
    for key in ["NOTIFIER_URL", "CHECKER_URL", "CONTRACT_URL"] {
        let url = topology.get(key);
        assert!(
            url.contains("sslmode=verify-full")
                && url.contains(&format!("sslrootcert={ca}"))
                && url.contains("channel_binding=require"),
            "{key}={url}"
        );
    }
    let options: Vec<String> = audit
        .query_one(
            "SELECT srvoptions::text[] FROM pg_foreign_server WHERE srvname = 'app_replica'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        options.contains(&format!("port={}", topology.get("REPLICA_PORT"))),
        "{options:?}"
    );
    for option in [
        "sslmode=verify-full".to_string(),
        format!("sslrootcert={ca}"),
        "channel_binding=require".to_string(),
    ] {
        assert!(options.contains(&option), "{option} in {options:?}");
    }
    // Through that server, the replica's own pg_stat_ssl sees drift_reader's connection as TLS.
    let dblink: String = audit
        .query_one(
            "SELECT quote_ident(n.nspname) FROM pg_extension e
               JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'dblink'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seen = audit
        .query_one(
            &format!(
                "SELECT * FROM {dblink}.dblink('app_replica',
                   'SELECT a.usename::text, s.ssl, s.version, s.cipher
                      FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                     WHERE s.pid = pg_backend_pid()')
                   AS t(usename text, ssl boolean, version text, cipher text)"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            seen.get::<_, String>(0),
            seen.get::<_, bool>(1),
            seen.get::<_, String>(2),
            seen.get::<_, String>(3)
        ),
        (
            "drift_reader".to_string(),
            true,
            "TLSv1.3".to_string(),
            "TLS_AES_256_GCM_SHA384".to_string()
        ),
        "pg_stat_ssl on the replica"
    );

    // 1. The sample project is pushed; a check finds no drift.
    let project = work.join("shop");
    copy_dir(Path::new(&format!("{ROOT}/examples/shop")), &project);
    let project_arg = project.to_string_lossy().to_string();
    let pushed = stdout(&cli(&contract_url, &["contract", "push", &project_arg]));
    assert_eq!(
        pushed.trim(),
        "loaded 5 files and 7 models: 3 sources, 13 tables, 44 columns"
    );
    let checked = stdout(&cli(&audit_url, &["check", "app_replica"]));
    assert!(
        checked.contains("0 open (0 new, 0 resolved)") && checked.contains("no drift"),
        "{checked}"
    );

    // 2. The app team's migration on the primary reaches the replica.
    let migration = std::fs::read_to_string(format!("{ROOT}/examples/shop/migration.sql")).unwrap();
    primary_app.batch_execute(&migration).await.unwrap();
    topology.script(&["replay"]);
    let replicated: i64 = replica_app
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.orders'::regclass
               AND attname = 'sales_channel' AND NOT attisdropped",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(replicated, 1);

    // 3. The daily job, every minute here; the sidecar runs as the unit says. Its first task
    // creation stalls after Asana created the task, and it is killed there with SIGKILL.
    // Scheduled as the deployment's checker login (drift_watch_checker, USAGE on cron, its own
    // user mapping with a password), so the job runs as it, not as a superuser, and reads the
    // replica as drift_reader with password authentication.
    let since = now(&audit).await;
    let reader_logins_before = reader_logins(&topology.replica_log()).len();
    let checker_url = topology.get("CHECKER_URL").to_string();
    let job: i64 = stdout(&psql(
        &checker_url,
        "SELECT schedule_check('app_replica', '* * * * *')",
    ))
    .trim()
    .parse()
    .unwrap();
    let job_user: String = audit
        .query_one("SELECT username FROM cron.job WHERE jobid = $1", &[&job])
        .await
        .unwrap()
        .get(0);
    assert_eq!(job_user, "drift_cron");
    fake.push_fault(Fault::CreateThenStall(Duration::from_secs(60)));
    let mut sidecar = unit.spawn(&env_file, &log);
    let run1 = next_run(&audit, &since).await;
    assert_eq!(
        (run1.status.as_str(), run1.new, run1.open),
        ("succeeded", Some(7), Some(7)),
        "{run1:?}"
    );
    // pg_cron's check read the replica over TLS: its drift_reader login is in the replica's log,
    // with the protocol and cipher.
    let logins = reader_logins(&topology.replica_log());
    assert!(
        logins.len() > reader_logins_before,
        "the check logged in to the replica: {logins:?}"
    );
    for line in &logins[reader_logins_before..] {
        assert!(line.contains(READER_TLS), "{line}");
    }
    assert!(
        eventually(DELIVERY, || fake.tasks().len() == 1).await,
        "the task is created"
    );
    send_signal(sidecar.0.id(), "KILL");
    sidecar.0.wait().unwrap();
    assert_eq!(
        outbox(&audit).await,
        vec![("new_deltas".to_string(), false)],
        "killed before the acknowledgement"
    );
    let mut sidecar = unit.spawn(&env_file, &log);
    let start = Instant::now();
    while outbox(&audit).await != vec![("new_deltas".to_string(), true)] {
        assert!(
            start.elapsed() < DELIVERY,
            "the restarted notifier acknowledges the item"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        fake.tasks().len(),
        1,
        "still one task after SIGKILL and restart"
    );
    // The sidecar's connections to the audit database are TLS, every one of them.
    let notifier_tls = || async {
        audit
            .query_one(
                "SELECT count(*), coalesce(bool_and(s.ssl AND s.version = 'TLSv1.3'), false)
                   FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                  WHERE a.usename = 'drift_notifier'",
                &[],
            )
            .await
            .map(|r| (r.get::<_, i64>(0), r.get::<_, bool>(1)))
            .unwrap()
    };
    let start = Instant::now();
    let (sessions, all_tls) = loop {
        let (sessions, all_tls) = notifier_tls().await;
        if sessions > 0 || start.elapsed() > DELIVERY {
            break (sessions, all_tls);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        sessions >= 1 && all_tls,
        "drift_notifier in pg_stat_ssl: {sessions} sessions, all TLSv1.3: {all_tls}"
    );

    // 4. Exactly those deltas, in exactly one task; the unlisted table is not drift.
    assert_eq!(open_deltas(&audit).await, expected_deltas());
    let task = drift_task(&fake);
    // Most severe first: what the models read, then what nothing reads, then additions.
    assert_eq!(
        task.name,
        "[breaking] dbt source drift on app_replica: 7 changes (payments, customers, orders +3 more)"
    );
    validate_rich_text(&task.html_notes).unwrap();
    assert_eq!(
        task.html_notes.matches("<em>[").count(),
        7,
        "{}",
        task.notes
    );
    assert_eq!(
        (
            task.html_notes.matches("<em>[breaking]</em>").count(),
            task.html_notes.matches("<em>[risky]</em>").count(),
            task.html_notes.matches("<em>[info]</em>").count()
        ),
        (3, 2, 2),
        "{}",
        task.notes
    );
    let at = |s: &str| {
        task.notes
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} in {}", task.notes))
    };
    // Tables by their most severe change (then by source and name), changes by severity.
    let order = [
        at("payments.payments (source payments)"),
        at("public.customers (source shop)"),
        at("public.orders (source shop)"),
        at("payments.refunds (source payments)"),
        at("public.reviews (source shop)"),
        at("logistics.shipments (source logistics)"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?}: {}",
        task.notes
    );
    assert!(at("[breaking] total retyped") < at("[info] sales_channel added"));
    // What each change breaks, with file and line from the models' SQL (examples/shop/models).
    for needle in [
        "stg_shop__customers (models/staging/shop/stg_shop__customers.sql:6)",
        "base_shop__customers reads every column (select * at models/staging/shop/base_shop__customers.sql:2)",
        "Not read by: stg_shop__customer_emails",
        "stg_shop__orders (models/staging/shop/stg_shop__orders.sql:6)",
        "stg_payments__payments (models/staging/payments/stg_payments__payments.sql:5)",
        "Not read by its 1 direct child: none of their SQL names body.",
        "No dbt model reads this table.",
        "Exposures: weekly_revenue (dashboard, owner Carol Finance)",
        "Owner: ana@example.com (from these sources' dbt meta).",
    ] {
        assert!(task.notes.contains(needle), "{needle:?} in {}", task.notes);
    }
    // Routed to its owner, the exposure's owner following.
    assert_eq!(task.assignee.as_deref(), Some(ana.as_str()));
    assert_eq!(task.followers, vec![carol.clone()]);
    for (table, column, change) in expected_deltas() {
        assert!(task.notes.contains(&table), "{table} in {}", task.notes);
        assert!(task.notes.contains(&column) && task.notes.contains(&change));
    }
    assert!(task.notes.contains("numeric(12,2)") && task.notes.contains("numeric(14,2)"));
    assert!(task.notes.contains("renamed from phone"));
    assert!(task
        .notes
        .contains("- name: ExternalRef\n            quote: true"));
    assert!(!task.notes.contains("gift_cards"));
    assert_eq!(task.projects, vec!["1100000000001".to_string()]);

    // The next run adds nothing.
    let run2 = next_run(&audit, &now(&audit).await).await;
    assert_eq!(
        (run2.status.as_str(), run2.new, run2.open),
        ("succeeded", Some(0), Some(7)),
        "{run2:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.tasks().len(), 1);
    assert_eq!(outbox(&audit).await.len(), 1);

    // 6b. The replica stops: runs fail, nothing is resolved, one failure notice for the outage.
    topology.script(&["stop-replica"]);
    let run3 = next_run(&audit, &now(&audit).await).await;
    let run4 = next_run(&audit, &now(&audit).await).await;
    for run in [&run3, &run4] {
        assert_eq!(run.status, "failed", "{run:?}");
        assert!(
            run.error
                .as_deref()
                .unwrap_or("")
                .contains("could not read the live schema of target \"app_replica\""),
            "{run:?}"
        );
        assert_eq!((run.resolved, run.open), (None, Some(7)), "{run:?}");
    }
    assert_eq!(
        open_deltas(&audit).await,
        expected_deltas(),
        "nothing resolved"
    );
    assert!(eventually(DELIVERY, || fake.tasks().len() == 2).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 2, "two failed runs, one outage, one notice");
    assert_eq!(
        tasks[1].name,
        "dbt source drift check failing on app_replica"
    );
    assert!(!tasks[0].completed && tasks[0].comments.is_empty());
    let announced_run: i64 = audit
        .query_one(
            "SELECT run_id FROM drift_watch.outbox WHERE kind = 'run_failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(announced_run, run3.id, "announced at the first failure");

    // The replica is back: a normal run, nothing new or resolved, the failure notice closed.
    topology.script(&["start-replica"]);
    let run5 = next_run(&audit, &now(&audit).await).await;
    assert_eq!(
        (run5.status.as_str(), run5.new, run5.resolved, run5.open),
        ("succeeded", Some(0), Some(0), Some(7)),
        "{run5:?}"
    );
    assert!(
        eventually(DELIVERY, || {
            let tasks = fake.tasks();
            tasks[1].completed && tasks[1].comments.len() == 1
        })
        .await,
        "the failure task is closed: {:?}",
        fake.tasks()[1]
    );
    assert!(fake.tasks()[1].comments[0].contains("succeeds again"));
    assert_eq!(fake.tasks().len(), 2);

    // 5. The dbt project catches up with the migration and is pushed; the next run resolves
    // everything; the task gets its comment and is completed.
    let models = project.join("models/staging");
    edit(
        &models.join("shop/_shop__sources.yml"),
        &[
            ("- name: phone\n", "- name: phone_number\n"),
            (
                "{name: total, data_type: \"numeric(12,2)\"}",
                "{name: total, data_type: \"numeric(14,2)\"}",
            ),
            (
                "{name: placed_at, data_type: timestamp with time zone}\n",
                "{name: placed_at, data_type: timestamp with time zone}\n          - {name: sales_channel, data_type: text}\n",
            ),
            ("          - {name: body, data_type: text}\n", ""),
        ],
    );
    edit(
        &models.join("payments/_payments__sources.yml"),
        &[
            (
                "{name: amount_cents, data_type: integer}",
                "{name: amount_cents, data_type: bigint}",
            ),
            (
                "      - name: refunds\n        columns:\n          - {name: id}\n          - {name: payment_id}\n          - {name: amount_cents, data_type: int4}\n          - {name: reason}\n",
                "",
            ),
        ],
    );
    edit(
        &models.join("logistics/_logistics__sources.yml"),
        &[(
            "{name: delivered_at, data_type: timestamptz}\n",
            "{name: delivered_at, data_type: timestamptz}\n          - {name: ExternalRef, quote: true, data_type: text}\n",
        )],
    );
    let pushed = stdout(&cli(&contract_url, &["contract", "push", &project_arg]));
    assert_eq!(
        pushed.trim(),
        "loaded 5 files and 7 models: 3 sources, 12 tables, 41 columns"
    );
    let run6 = next_run(&audit, &now(&audit).await).await;
    assert_eq!(
        (run6.status.as_str(), run6.new, run6.resolved, run6.open),
        ("succeeded", Some(0), Some(7), Some(0)),
        "{run6:?}"
    );
    assert!(
        eventually(DELIVERY, || {
            let t = drift_task(&fake);
            t.completed && t.comments.len() == 1
        })
        .await,
        "the drift task is closed: {:?}",
        drift_task(&fake)
    );
    let task = drift_task(&fake);
    assert!(
        task.comments[0].starts_with("7 of the changes in this task are resolved")
            && task.comments[0].contains("closing it"),
        "{}",
        task.comments[0]
    );
    assert_eq!(fake.tasks().len(), 2, "no other task, ever");
    assert!(open_deltas(&audit).await.is_empty());

    // Every check after the first came from pg_cron, and the job never failed as a job.
    let (cron_runs, cron_ok): (i64, i64) = {
        let r = audit
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded')
                   FROM cron.job_run_details WHERE jobid = $1 AND status <> 'running'",
                &[&job],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let checks: i64 = audit
        .query_one(
            "SELECT count(*) FROM drift_watch.check_run WHERE target = 'app_replica'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        cron_runs >= 6 && cron_ok == cron_runs,
        "{cron_runs} {cron_ok}"
    );
    assert!(
        checks == 1 + cron_runs || checks == 2 + cron_runs,
        "one check by hand, the rest by pg_cron (one may be finishing): {checks} vs {cron_runs}"
    );
    assert_eq!(
        outbox(&audit).await,
        ["new_deltas", "run_failed", "recovered", "resolved"]
            .iter()
            .map(|k| (k.to_string(), true))
            .collect::<Vec<_>>()
    );

    // Every login of drift_reader the replica ever saw (each check that read it, and the dblink
    // query above) was TLS.
    let read_replica: i64 = audit
        .query_one(
            "SELECT count(*) FROM drift_watch.check_run
              WHERE target = 'app_replica' AND status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let logins = reader_logins(&topology.replica_log());
    assert!(
        logins.len() as i64 > read_replica,
        "{read_replica} {logins:?}"
    );
    for line in &logins {
        assert!(line.contains(READER_TLS), "{line}");
    }

    // Stopped as systemd stops it: SIGTERM, a clean exit well within TimeoutStopSec.
    stdout(&psql(
        &checker_url,
        "SELECT unschedule_check('app_replica')",
    ));
    send_signal(sidecar.0.id(), "TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = sidecar.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < unit.timeout_stop, "stopped in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    // Environment=DRIFT_LOG_FORMAT=json took effect: every log line is a JSON object, and the
    // token never appears.
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.lines().count() > 5);
    for line in log_text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    assert!(!log_text.contains(TOKEN));
}

/// The example EnvironmentFile names only variables drift-notifier reads.
#[test]
fn the_example_environment_file_names_only_known_settings() {
    let help = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut known: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect()
        })
        .collect();
    // Read outside clap: the token (hidden from --help) and the log filter.
    known.extend(["ASANA_TOKEN".to_string(), "DRIFT_LOG".to_string()]);
    assert!(known.contains("DATABASE_URL") && known.contains("DRIFT_LEASE_SECONDS"));
    let example = std::fs::read_to_string(format!("{ROOT}/deploy/notifier.env.example")).unwrap();
    let mut named = 0;
    for line in example.lines() {
        let line = line.trim_start_matches('#');
        if let Some((key, _)) = line.split_once('=') {
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                assert!(known.contains(key), "{key} is not a drift-notifier setting");
                named += 1;
            }
        }
    }
    assert!(named >= 10, "{named}");
    let unit = Unit::read();
    for (key, _) in &unit.environment {
        assert!(known.contains(key), "{key} in the unit is not a setting");
    }
}
