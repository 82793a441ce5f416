//! Impact and routing on the real cluster with the strict fake Asana: one task per owner and
//! run, assigned to the owner Asana knows (the default assignee otherwise, said once), the
//! owners of reached exposures as followers, per-severity tags, sections and custom field, and
//! the weekly digest for info-only runs.

mod common;

use common::fake_asana::{validate_rich_text, FakeAsana, FIXTURE_PROJECT};
use common::*;
use tokio_postgres::Client;

/// Three owned sources (one owner unknown to Asana), a model reading one column, an exposure.
async fn routed_db(name: &str) -> Client {
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let db = connect(name).await;
    db.batch_execute(
        "SET client_min_messages = warning;
         CREATE EXTENSION drift_watch CASCADE;
         CREATE SCHEMA billing; CREATE SCHEMA crm; CREATE SCHEMA ops;
         CREATE TABLE billing.invoices (id bigint, amount numeric, memo text);
         CREATE TABLE crm.contacts (id bigint, phone text, email text);
         CREATE TABLE ops.jobs (id bigint, state text, note text);
         SELECT load_contract('proj/models/sources.yml', $$
sources:
  - name: billing
    meta: {owner: ana@example.com}
    tables:
      - name: invoices
        columns: [{name: id}, {name: amount}, {name: memo}]
  - name: crm
    meta: {owner: bob@example.com}
    tables:
      - name: contacts
        columns: [{name: id}, {name: phone}, {name: email}]
  - name: ops
    meta: {owner: ghost@example.com}
    tables:
      - name: jobs
        columns: [{name: id}, {name: state}, {name: note}]
exposures:
  - name: call_list
    type: application
    owner: {name: Carol, email: carol@example.com}
    depends_on: [\"ref('stg_contacts')\"]
$$);
         SELECT load_contract('proj/models/stg_contacts.sql',
                E'select\\n  id,\\n  phone\\nfrom {{ source(''crm'', ''contacts'') }}');
         SELECT run_check();",
    )
    .await
    .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn each_owner_gets_a_task_with_only_its_drift_and_an_unknown_owner_goes_to_the_default() {
    let db = routed_db("nt_routing").await;
    // Run 1: a change for each owner. Run 2: another change for the unknown owner.
    db.batch_execute(
        "ALTER TABLE billing.invoices DROP COLUMN amount;
         ALTER TABLE crm.contacts DROP COLUMN phone;
         ALTER TABLE ops.jobs DROP COLUMN state;
         SELECT run_check();
         ALTER TABLE ops.jobs DROP COLUMN note;
         SELECT run_check();",
    )
    .await
    .unwrap();
    let items: Vec<(Option<String>, Option<String>)> = db
        .query(
            "SELECT owner, severity FROM drift_watch.outbox WHERE kind = 'new_deltas' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let item = |o: &str, s: &str| (Some(o.to_string()), Some(s.to_string()));
    assert_eq!(
        items,
        [
            item("ana@example.com", "risky"),
            item("bob@example.com", "breaking"),
            item("ghost@example.com", "risky"),
            item("ghost@example.com", "risky"),
        ]
    );

    let fake = FakeAsana::default();
    let ana = fake.add_user("ana@example.com", "Ana");
    let bob = fake.add_user("bob@example.com", "Bob");
    let carol = fake.add_user("carol@example.com", "Carol");
    let triage = fake.add_user("triage@example.com", "Triage");
    let tag_breaking = fake.add_tag("drift: breaking");
    let tag_risky = fake.add_tag("drift: risky");
    let section_breaking = fake.add_section(FIXTURE_PROJECT, "Breaking");
    let (field, options) = fake.add_enum_field("Severity", &["breaking", "risky", "info"]);
    fake.add_field_to_project(FIXTURE_PROJECT, &field);
    let asana = fake.start().await;

    let out = notifier("nt_routing", &asana, &["run", "--once"])
        .env("ASANA_ASSIGNEE", &triage)
        .env(
            "DRIFT_ASANA_SEVERITY_TAGS",
            format!("breaking:{tag_breaking},risky:{tag_risky}"),
        )
        .env(
            "DRIFT_ASANA_SEVERITY_SECTIONS",
            format!("breaking:{section_breaking}"),
        )
        .env("DRIFT_ASANA_SEVERITY_FIELD", &field)
        .env(
            "DRIFT_ASANA_SEVERITY_OPTIONS",
            format!(
                "breaking:{},risky:{},info:{}",
                options[0], options[1], options[2]
            ),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 4, "{tasks:#?}");
    for t in &tasks {
        validate_rich_text(&t.html_notes).unwrap();
    }
    let of = |assignee: &str| -> Vec<_> {
        tasks
            .iter()
            .filter(|t| t.assignee.as_deref() == Some(assignee))
            .collect()
    };
    // ana: only billing's change, risky (nothing reads invoices).
    let [a] = of(&ana)[..] else {
        panic!("one task for ana: {tasks:#?}")
    };
    assert!(
        a.notes.contains("amount") && a.notes.contains("[risky]"),
        "{}",
        a.notes
    );
    assert!(!a.notes.contains("phone") && !a.notes.contains("state"));
    assert_eq!(a.tags, vec![tag_risky.clone()]);
    assert_eq!(a.section.as_deref(), Some("1100000000002"), "ASANA_SECTION");
    assert_eq!(a.custom_fields, vec![(field.clone(), options[1].clone())]);
    assert!(a.followers.is_empty());
    // bob: crm's change, breaking (stg_contacts reads phone at line 3; it feeds call_list),
    // in the breaking section and tag, carol following.
    let [b] = of(&bob)[..] else {
        panic!("one task for bob: {tasks:#?}")
    };
    assert!(b.name.starts_with("[breaking] "), "{}", b.name);
    assert!(
        b.notes
            .contains("Read by: stg_contacts (models/stg_contacts.sql:3)"),
        "{}",
        b.notes
    );
    assert!(b
        .notes
        .contains("Exposures: call_list (application, owner Carol)"));
    assert!(!b.notes.contains("amount") && !b.notes.contains("state"));
    assert_eq!(b.tags, vec![tag_breaking.clone()]);
    assert_eq!(b.section.as_deref(), Some(section_breaking.as_str()));
    assert_eq!(b.custom_fields, vec![(field.clone(), options[0].clone())]);
    assert_eq!(b.followers, vec![carol.clone()]);
    // ghost: unknown to Asana: both runs' tasks go to the default assignee, saying why.
    let ghost = of(&triage);
    assert_eq!(ghost.len(), 2, "{tasks:#?}");
    for g in &ghost {
        assert!(
            g.notes
                .contains("ghost@example.com (from dbt meta) is not an Asana user"),
            "{}",
            g.notes
        );
    }
    // Asana was asked once per owner, and the unknown one reported once.
    let lookups = |who: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("GET /users/") && r.contains(who))
            .count()
    };
    assert_eq!(
        (
            lookups("ana@"),
            lookups("bob@"),
            lookups("ghost@"),
            lookups("carol@")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        stderr.matches("does not know this owner").count(),
        1,
        "{stderr}"
    );
    // Every item acknowledged with its own task.
    let gids: Vec<Option<String>> = db
        .query(
            "SELECT asana_task_gid FROM drift_watch.outbox WHERE kind = 'new_deltas' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut distinct: Vec<_> = gids.iter().flatten().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{gids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn info_only_runs_go_to_the_weeks_digest_task_and_never_close_it() {
    let db = routed_db("nt_digest").await;
    let fake = FakeAsana::default();
    fake.add_user("ops@example.com", "Ops");
    let asana = fake.start().await;
    let run = |db: &'static str| {
        notifier(db, &asana, &["run", "--once"])
            .env("DRIFT_ASANA_INFO_DIGEST", "true")
            .output()
            .unwrap()
    };
    // Two runs that only add columns: info.
    db.batch_execute(
        "ALTER TABLE ops.jobs ADD COLUMN started_at timestamptz; SELECT run_check();
         ALTER TABLE ops.jobs ADD COLUMN finished_at timestamptz; SELECT run_check();",
    )
    .await
    .unwrap();
    let out = run("nt_digest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1, "one digest task: {tasks:#?}");
    let digest = &tasks[0];
    assert!(
        digest
            .name
            .starts_with("[info] dbt source drift digest for ")
            && digest.name.contains(": week of "),
        "{}",
        digest.name
    );
    assert_eq!(digest.comments.len(), 2, "{:?}", digest.comments);
    assert!(digest.comments[0].contains("ops.jobs.started_at: added (timestamp with time zone)"));
    assert!(digest.comments[1].contains("ops.jobs.finished_at: added"));
    // A breaking run still gets its own task; the info column going away only comments on the
    // digest (which no run completes).
    db.batch_execute(
        "ALTER TABLE crm.contacts DROP COLUMN phone;
         ALTER TABLE ops.jobs DROP COLUMN started_at; SELECT run_check();",
    )
    .await
    .unwrap();
    let out = run("nt_digest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 2, "{tasks:#?}");
    let digest = tasks.iter().find(|t| t.gid == digest.gid).unwrap();
    assert!(!digest.completed);
    assert_eq!(digest.comments.len(), 3, "{:?}", digest.comments);
    assert!(
        digest.comments[2].contains("resolved"),
        "{}",
        digest.comments[2]
    );
}

/// GitLab's real manifest (dbt 0.19, 747 sources) against a database holding its relations:
/// `zuora.account` dropped becomes one breaking task naming what it breaks.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_gitlab_manifest_names_what_a_dropped_source_breaks() {
    let manifest = std::env::var("DW_MANIFEST")
        .expect("DW_MANIFEST: the decompressed GitLab manifest (scripts/test.sh sets it)");
    let admin = connect("postgres").await;
    admin
        .batch_execute("DROP DATABASE IF EXISTS nt_gitlab WITH (FORCE)")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE nt_gitlab")
        .await
        .unwrap();
    let db = connect("nt_gitlab").await;
    db.batch_execute("SET client_min_messages = warning; CREATE EXTENSION drift_watch CASCADE")
        .await
        .unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    db.execute(
        "SELECT load_contract('gitlab_snowflake/manifest.json', $1)",
        &[&text],
    )
    .await
    .unwrap();
    // Every source relation, with the contract's columns (tests/fixtures/contract_relations.sql).
    db.batch_execute(include_str!("../../tests/fixtures/contract_relations.sql"))
        .await
        .unwrap();
    db.batch_execute(
        "SELECT count(*) FROM dw_create_contract_relations();
         SELECT run_check();",
    )
    .await
    .unwrap();
    let new: i32 = db
        .query_one(
            "SELECT deltas_new FROM drift_watch.runs ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(new, 0, "the first check is quiet");
    db.batch_execute(
        "DO $$ BEGIN
           EXECUTE (SELECT format('DROP TABLE %I.%I', schema_name, identifier)
                      FROM drift_watch.contract_table
                     WHERE source_name = 'zuora' AND table_name = 'account');
         END $$;
         SELECT run_check();",
    )
    .await
    .unwrap();

    let fake = FakeAsana::default();
    let asana = fake.start().await;
    let out = run_once("nt_gitlab", &asana);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    let t = &tasks[0];
    assert!(
        t.name
            .starts_with("[breaking] dbt source drift on the audit database: 1 change (account)"),
        "{}",
        t.name
    );
    for needle in [
        "[breaking] table_missing",
        "zuora_account_source (models/sources/zuora/zuora_account_source.sql)",
        "zuora_account_snapshots_source",
        "zuora_tables_date",
        "172 models downstream",
        "product_adoption_dashboard (dashboard",
        "pump_marketing_contact",
        "pump_product_usage_free_user_metrics_monthly",
    ] {
        assert!(t.notes.contains(needle), "{needle:?} in {}", t.notes);
    }
}
