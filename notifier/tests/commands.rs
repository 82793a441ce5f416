//! `contract push` and `check`, as an analytics engineer runs them, against the real cluster.

mod common;

use common::*;

fn push(db: &str, path: &str) -> std::process::Output {
    notifier(db, "http://127.0.0.1:9", &["contract", "push", path])
        .output()
        .unwrap()
}

fn example() -> String {
    format!("{}/../examples/shop", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread")]
async fn push_loads_a_project_and_a_bad_file_changes_nothing() {
    let db = fresh_db("nt_push").await;
    db.batch_execute(
        "SELECT load_contract('elsewhere/extra.yml', 'sources: [{name: extra, tables: [{name: t}]}]');
         SELECT load_contract('shop_analytics/models/old.yml', 'sources: [{name: old, tables: [{name: t}]}]');",
    )
    .await
    .unwrap();
    let out = push("nt_push", &example());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "loaded 5 files and 7 models: 3 sources, 13 tables, 44 columns"
    );
    let origins = strings(
        &db,
        "SELECT origin FROM drift_watch.contract_origin ORDER BY 1",
    )
    .await;
    assert!(
        origins.contains(&"shop_analytics/models/staging/shop/_shop__sources.yml".to_string()),
        "origins are prefixed by the dbt project's name: {origins:?}"
    );
    assert!(
        !origins.contains(&"shop_analytics/models/old.yml".to_string()),
        "a file the project no longer has is forgotten: {origins:?}"
    );
    assert!(
        origins.contains(&"elsewhere/extra.yml".to_string())
            && origins.contains(&"models/app.yml".to_string()),
        "other projects' origins are kept: {origins:?}"
    );

    // A copy of the project with one broken file: the push fails naming it, nothing changes.
    let dir = std::env::temp_dir().join(format!("dw-push-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(std::path::Path::new(&example()), &dir);
    let broken = dir.join("models/staging/payments/_payments__sources.yml");
    std::fs::write(
        &broken,
        "version: 2\nsources:\n  - name: payments\n    tables: [\n",
    )
    .unwrap();
    let before: i64 = db
        .query_one("SELECT count(*) FROM drift_watch.contract", &[])
        .await
        .unwrap()
        .get(0);
    let out = push("nt_push", dir.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("models/staging/payments/_payments__sources.yml:4:")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let after: i64 = db
        .query_one("SELECT count(*) FROM drift_watch.contract", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_prints_the_deltas_as_a_table() {
    let db = fresh_db("nt_check").await;
    db.batch_execute("ALTER TABLE app.users RENAME COLUMN phone TO mobile")
        .await
        .unwrap();
    let out = notifier("nt_check", "http://127.0.0.1:9", &["check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 open (1 new, 0 resolved)"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("app.users") && l.contains("mobile") && l.contains("renamed")),
        "{stdout}"
    );

    let out = notifier(
        "nt_check",
        "http://127.0.0.1:9",
        &["check", "no_such_server"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED: drift_watch: unknown target"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_configuration_error_exits_2_so_a_service_manager_does_not_restart_into_it() {
    let out = notifier("postgres", "http://127.0.0.1:9", &["run"])
        .env_remove("ASANA_PROJECT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set ASANA_PROJECT"));
    let out = notifier("postgres", "http://127.0.0.1:9", &["run"])
        .env("ASANA_TOKEN", "two\nlines")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not allowed in an HTTP header"));
}

/// The README's least-privilege logins: a loader (EXECUTE on the contract functions only) pushes
/// the project, a checker (EXECUTE on run_check, SELECT on the views) runs `check`; neither can
/// do the other's job, and neither holds a privilege on any table.
#[tokio::test]
async fn push_and_check_work_as_the_least_privileged_logins() {
    let db = fresh_db("nt_least").await;
    db.batch_execute(
        "DROP ROLE IF EXISTS nt_least_loader; DROP ROLE IF EXISTS nt_least_checker;
         CREATE ROLE nt_least_loader LOGIN IN ROLE drift_watch_loader;
         CREATE ROLE nt_least_checker LOGIN IN ROLE drift_watch_checker;",
    )
    .await
    .unwrap();
    let as_role = |role: &str, args: &[&str]| {
        let mut cmd = notifier("nt_least", "http://127.0.0.1:9", args);
        cmd.env(
            "DATABASE_URL",
            format!("postgres://{role}@127.0.0.1:{}/nt_least", pg_port()),
        );
        cmd.output().unwrap()
    };
    let example = example();
    let example = example.as_str();
    let out = as_role("nt_least_loader", &["contract", "push", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "loaded 5 files and 7 models: 3 sources, 13 tables, 44 columns"
    );
    let out = as_role("nt_least_checker", &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("open ("), "{stdout}");
    let out = as_role("nt_least_loader", &["check"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_role("nt_least_checker", &["contract", "push", example]);
    assert!(!out.status.success());
    let grants = strings(
        &db,
        "SELECT grantee || ':' || table_name || ':' || privilege_type
           FROM information_schema.role_table_grants
          WHERE table_schema = 'drift_watch'
            AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
            AND grantee IN ('drift_watch_checker', 'drift_watch_notifier', 'drift_watch_loader')",
    )
    .await;
    assert!(grants.is_empty(), "{grants:?}");
    db.batch_execute("DROP ROLE nt_least_loader; DROP ROLE nt_least_checker;")
        .await
        .unwrap();
}

/// A project as it is found: model-paths from dbt_project.yml, installed packages, build output
/// and logs ignored even when a model path is the project root; a second project beside it.
#[tokio::test]
async fn push_reads_dbt_project_yml_and_skips_packages_target_and_logs() {
    let db = fresh_db("nt_layout").await;
    let dir = std::env::temp_dir().join(format!("dw-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(std::path::Path::new(&example()), &dir);
    std::fs::write(
        dir.join("dbt_project.yml"),
        "name: shop_analytics\nversion: '1.0.0'\nconfig-version: 2\nmodel-paths: ['.']\n",
    )
    .unwrap();
    let other = "sources: [{name: vendored, tables: [{name: t}]}]\n";
    for sub in [
        "dbt_packages/pkg/models",
        "target/compiled",
        "logs",
        ".git/x",
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("sources.yml"), other).unwrap();
    }
    let out = push("nt_layout", dir.to_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // dbt_project.yml itself is not a properties file with sources: 5 files, the same contract.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 sources, 13 tables, 44 columns"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let vendored = strings(
        &db,
        "SELECT origin FROM drift_watch.contract_table WHERE source_name = 'vendored'",
    )
    .await;
    assert!(vendored.is_empty(), "{vendored:?}");

    // A second project beside it: pushing it keeps the first; forgetting it removes only its own.
    let second = dir.join("second");
    std::fs::create_dir_all(second.join("models")).unwrap();
    std::fs::write(second.join("dbt_project.yml"), "name: finance\n").unwrap();
    std::fs::write(
        second.join("models/src.yml"),
        "sources: [{name: ledger, tables: [{name: entries}]}]\n",
    )
    .unwrap();
    let out = push("nt_layout", second.to_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let projects = strings(
        &db,
        "SELECT DISTINCT split_part(origin, '/', 1) FROM drift_watch.contract_origin ORDER BY 1",
    )
    .await;
    assert_eq!(projects, ["finance", "models", "shop_analytics"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `contract check`: the CI gate. A clean project exits 0; a project whose YAML stops
/// documenting a live column exits 1 naming it; an unknown target exits 2; nothing is stored.
#[tokio::test]
async fn contract_check_is_a_ci_gate_that_stores_nothing() {
    let db = fresh_db("nt_gate").await;
    let schema = std::fs::read_to_string(format!("{}/app_schema.sql", example())).unwrap();
    db.batch_execute(&schema).await.unwrap();
    let out = push("nt_gate", &example());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.batch_execute("SELECT run_check()").await.unwrap();
    let stored = || async {
        strings(
            &db,
            "SELECT origin || ':' || source_name || '.' || table_name || ':' || array_to_string(column_names, ',')
               FROM drift_watch.contract_table ORDER BY 1",
        )
        .await
    };
    let before = stored().await;
    let runs_before = strings(&db, "SELECT count(*)::text FROM drift_watch.check_run").await;
    let gate = |path: &str, extra: &[&str]| {
        let mut args = vec!["contract", "check", path];
        args.extend_from_slice(extra);
        notifier("nt_gate", "http://127.0.0.1:9", &args)
            .output()
            .unwrap()
    };

    let out = gate(&example(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 changes left after merging"), "{stdout}");

    let dir = std::env::temp_dir().join(format!("dw-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(std::path::Path::new(&example()), &dir);
    let file = dir.join("models/staging/shop/_shop__sources.yml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("          - {name: coupon_code}\n"));
    std::fs::write(&file, yaml.replace("          - {name: coupon_code}\n", "")).unwrap();
    let out = gate(dir.to_str().unwrap(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 change left after merging (1 introduced"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("public.orders") && l.contains("coupon_code")),
        "{stdout}"
    );
    let out = gate(dir.to_str().unwrap(), &["--format", "markdown"]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(md.starts_with("### drift_watch: ❌ 1 change left"), "{md}");
    assert!(
        md.contains("| shop | public.orders | coupon_code |"),
        "{md}"
    );

    let out = gate(&example(), &["--target", "no_such_server"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target"));

    assert_eq!(stored().await, before, "the gate stored nothing");
    assert_eq!(
        strings(&db, "SELECT count(*)::text FROM drift_watch.check_run").await,
        runs_before
    );
    let _ = std::fs::remove_dir_all(&dir);
}
