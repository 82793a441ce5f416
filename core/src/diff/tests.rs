use super::*;
use std::collections::HashSet;

use crate::contract::{ContractColumn, ContractTable};

fn col(name: &str, data_type: Option<&str>) -> ContractColumn {
    ContractColumn {
        name: name.into(),
        data_type: data_type.map(Into::into),
        ..Default::default()
    }
}

fn table(name: &str, columns: Vec<ContractColumn>) -> ContractTable {
    ContractTable {
        source_name: "app".into(),
        table_name: name.into(),
        database: None,
        schema: "public".into(),
        identifier: name.into(),
        columns,
        ..Default::default()
    }
}

// Real type oids, as pg_type has them on every server.
const INT4: u32 = 23;
const INT8: u32 = 20;
const TEXT: u32 = 25;
const VARCHAR: u32 = 1043;

/// `(name, type oid, typmod, format_type spelling)`
fn live(cols: &[(&str, u32, i32, &str)]) -> LiveTable {
    LiveTable {
        oid: 16500,
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, (name, oid, typmod, spelling))| LiveColumn {
                attnum: i as i32 + 1,
                name: (*name).into(),
                type_oid: *oid,
                typmod: *typmod,
                type_name: (*spelling).into(),
            })
            .collect(),
    }
}

fn known(oid: u32, typmod: Option<i32>, spelling: &str) -> ResolvedType {
    ResolvedType::Known {
        oid,
        typmod,
        spelling: spelling.into(),
    }
}

fn types(entries: &[(&str, ResolvedType)]) -> TypeMap {
    entries
        .iter()
        .map(|(s, r)| (("public".to_string(), s.to_string()), r.clone()))
        .collect()
}

fn catalog(tables: Vec<(&str, LiveTable)>) -> LiveCatalog {
    tables
        .into_iter()
        .map(|(n, t)| (("public".to_string(), n.to_string()), t))
        .collect()
}

fn summary(deltas: &[Delta]) -> Vec<String> {
    deltas
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {} {}",
                d.table_name,
                d.column_name.as_deref().unwrap_or("-"),
                d.change,
                d.contract_type.as_deref().unwrap_or("-"),
                d.live_type.as_deref().unwrap_or("-"),
                d.detail.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn no_drift_when_contract_matches() {
    let contract = vec![table(
        "users",
        vec![col("id", Some("int")), col("email", None)],
    )];
    let live = catalog(vec![(
        "users",
        live(&[("id", INT4, -1, "integer"), ("email", TEXT, -1, "text")]),
    )]);
    let t = types(&[("int", known(INT4, None, "integer"))]);
    assert!(diff(&contract, &live, &t).is_empty());
}

#[test]
fn each_change_kind_is_reported() {
    let contract = vec![
        table(
            "users",
            vec![
                col("id", Some("int")),
                col("gone", None),
                col("name", Some("varchar(50)")),
            ],
        ),
        table("missing", vec![]),
    ];
    let live = catalog(vec![(
        "users",
        live(&[
            ("id", INT8, -1, "bigint"),
            ("name", VARCHAR, 84, "character varying(80)"),
            ("new1", TEXT, -1, "text"),
            ("new2", TEXT, -1, "text"),
        ]),
    )]);
    let t = types(&[
        ("int", known(INT4, None, "integer")),
        (
            "varchar(50)",
            known(VARCHAR, Some(54), "character varying(50)"),
        ),
    ]);
    assert_eq!(
        summary(&diff(&contract, &live, &t)),
        [
            "missing - table_missing - - no table, view or foreign table public.missing (dbt source('app', 'missing'))",
            "users gone removed - - -",
            "users id retyped integer bigint -",
            "users name retyped character varying(50) character varying(80) -",
            "users new1 undocumented - text -",
            "users new2 undocumented - text -",
        ],
        "without history, a live column the contract does not list is undocumented"
    );
}

#[test]
fn a_type_without_modifier_matches_any_modifier() {
    let contract = vec![table("t", vec![col("v", Some("varchar"))])];
    let live = catalog(vec![(
        "t",
        live(&[("v", VARCHAR, 259, "character varying(255)")]),
    )]);
    let t = types(&[("varchar", known(VARCHAR, None, "character varying"))]);
    assert!(diff(&contract, &live, &t).is_empty());
}

#[test]
fn tables_without_columns_are_only_checked_for_existence() {
    let contract = vec![table("wide", vec![])];
    let live = catalog(vec![(
        "wide",
        live(&[("a", TEXT, -1, "text"), ("b", TEXT, -1, "text")]),
    )]);
    assert!(diff(&contract, &live, &TypeMap::default()).is_empty());
}

#[test]
fn one_missing_and_one_new_of_the_same_type_is_a_rename() {
    let contract = vec![table(
        "t",
        vec![col("id", Some("int")), col("old_name", Some("text"))],
    )];
    let live = catalog(vec![(
        "t",
        live(&[("id", INT4, -1, "integer"), ("new_name", TEXT, -1, "text")]),
    )]);
    let t = types(&[
        ("int", known(INT4, None, "integer")),
        ("text", known(TEXT, None, "text")),
    ]);
    assert_eq!(
        summary(&diff(&contract, &live, &t)),
        ["t new_name renamed text text renamed from old_name"]
    );
}

#[test]
fn no_rename_when_types_differ_or_are_unknown_or_ambiguous() {
    let t = types(&[
        ("int", known(INT4, None, "integer")),
        ("text", known(TEXT, None, "text")),
    ]);
    // Different type: removed + undocumented.
    let contract = vec![table("t", vec![col("old", Some("int"))])];
    let live1 = catalog(vec![("t", live(&[("new", TEXT, -1, "text")]))]);
    assert_eq!(
        summary(&diff(&contract, &live1, &t)),
        ["t new undocumented - text -", "t old removed integer - -"]
    );
    // Undocumented type: no evidence for a rename.
    let contract = vec![table("t", vec![col("old", None)])];
    assert_eq!(diff(&contract, &live1, &t).len(), 2);
    // Two arrivals: ambiguous.
    let contract = vec![table("t", vec![col("old", Some("text"))])];
    let live2 = catalog(vec![(
        "t",
        live(&[("a", TEXT, -1, "text"), ("b", TEXT, -1, "text")]),
    )]);
    assert_eq!(diff(&contract, &live2, &t).len(), 3);
}

#[test]
fn an_unparseable_contract_type_is_reported_not_fatal() {
    let contract = vec![table("t", vec![col("v", Some("varchar(oops"))])];
    let live = catalog(vec![("t", live(&[("v", TEXT, -1, "text")]))]);
    let t = types(&[(
        "varchar(oops",
        ResolvedType::Unknown {
            reason: "syntax error at end of input".into(),
        },
    )]);
    let d = diff(&contract, &live, &t);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].change, Change::Retyped);
    assert_eq!(d[0].contract_type.as_deref(), Some("varchar(oops"));
    assert!(d[0].detail.as_deref().unwrap().contains("syntax error"));
}

#[test]
fn a_case_only_difference_says_how_to_fix_it() {
    let contract = vec![table("t", vec![col("customerid", None), col("x", None)])];
    let live = catalog(vec![(
        "t",
        live(&[("CustomerId", INT4, -1, "integer"), ("x", TEXT, -1, "text")]),
    )]);
    let d = diff(&contract, &live, &TypeMap::default());
    let removed = d.iter().find(|d| d.change == Change::Removed).unwrap();
    assert!(removed.detail.as_deref().unwrap().contains("quote: true"));
}

// --- baselines: exact renames and retypes ---------------------------------------------------

fn baseline_of(table: &ContractTable, live: &LiveTable) -> Baselines {
    let mut b = Baselines::new();
    b.insert(
        (table.schema.clone(), table.identifier.clone()),
        Baseline {
            rel_oid: live.oid,
            contract_fingerprint: contract_fingerprint(table),
            columns: live.columns.clone(),
        },
    );
    b
}

#[test]
fn a_first_check_takes_baselines_and_a_matching_one_is_kept() {
    let table = table("t", vec![col("id", None)]);
    let before = live(&[("id", INT4, -1, "integer")]);
    let out = check(
        std::slice::from_ref(&table),
        &catalog(vec![("t", before.clone())]),
        &TypeMap::default(),
        &Baselines::new(),
    );
    assert_eq!(out.baselines.len(), 1, "first sight takes a baseline");
    let out = check(
        std::slice::from_ref(&table),
        &catalog(vec![("t", before.clone())]),
        &TypeMap::default(),
        &baseline_of(&table, &before),
    );
    assert!(
        out.baselines.is_empty(),
        "an applicable baseline is kept, not rewritten"
    );
}

#[test]
fn a_rename_is_exact_by_attnum_even_with_other_arrivals_and_no_types() {
    let table = table("t", vec![col("id", None), col("email", None)]);
    let before = live(&[("id", INT8, -1, "bigint"), ("email", TEXT, -1, "text")]);
    // email renamed (attnum 2 kept) and another column added: the heuristic could not pair them.
    let after = live(&[
        ("id", INT8, -1, "bigint"),
        ("email_address", TEXT, -1, "text"),
        ("phone", TEXT, -1, "text"),
    ]);
    let out = check(
        std::slice::from_ref(&table),
        &catalog(vec![("t", after)]),
        &TypeMap::default(),
        &baseline_of(&table, &before),
    );
    assert_eq!(
        summary(&out.deltas),
        [
            "t email_address renamed - text renamed from email (same column, attnum 2, as in the snapshot)",
            "t phone added - text -",
        ]
    );
}

#[test]
fn an_undocumented_type_change_is_retyped_against_the_snapshot() {
    let table = table("t", vec![col("amount", None)]);
    let before = live(&[("amount", INT4, -1, "integer")]);
    let after = live(&[("amount", INT8, -1, "bigint")]);
    let out = check(
        std::slice::from_ref(&table),
        &catalog(vec![("t", after.clone())]),
        &TypeMap::default(),
        &baseline_of(&table, &before),
    );
    assert_eq!(
        summary(&out.deltas),
        ["t amount retyped integer bigint type changed since the snapshot (the contract has no data_type)"]
    );
    // Without a snapshot there is nothing to compare an undocumented type with.
    assert!(diff(
        std::slice::from_ref(&table),
        &catalog(vec![("t", after)]),
        &TypeMap::default()
    )
    .is_empty());
}

#[test]
fn a_recreated_table_or_an_edited_contract_retakes_the_baseline() {
    let table = table("t", vec![col("id", None), col("email", None)]);
    let before = live(&[("id", INT8, -1, "bigint"), ("email", TEXT, -1, "text")]);
    let mut recreated = live(&[("id", INT8, -1, "bigint"), ("mail", TEXT, -1, "text")]);
    recreated.oid = 16999;
    let out = check(
        std::slice::from_ref(&table),
        &catalog(vec![("t", recreated)]),
        &TypeMap::default(),
        &baseline_of(&table, &before),
    );
    assert!(
        !out.deltas.iter().any(|d| d.change == Change::Renamed),
        "a new oid is not a rename: {:?}",
        summary(&out.deltas)
    );
    assert_eq!(out.baselines.len(), 1);
    assert_eq!(out.baselines[0].1.rel_oid, 16999);

    let mut edited = table.clone();
    edited.columns[1].name = "mail".into();
    assert_ne!(contract_fingerprint(&edited), contract_fingerprint(&table));
}

// --- the quiet first check ------------------------------------------------------------------

use crate::contract::{ChangeSet, TablePolicy, Undocumented};

fn with_policy(
    mut t: ContractTable,
    undocumented: Undocumented,
    ignore: &[Change],
) -> ContractTable {
    t.policy = TablePolicy {
        undocumented,
        ignore: ignore.iter().copied().collect(),
        ..Default::default()
    };
    t
}

/// Runs `check` and returns (summaries, baselines as stored).
fn run(
    contract: &[ContractTable],
    live: &LiveCatalog,
    baselines: &Baselines,
) -> (Vec<String>, Baselines) {
    let out = check(contract, live, &TypeMap::default(), baselines);
    let mut stored = baselines.clone();
    stored.extend(out.baselines);
    (summary(&out.deltas), stored)
}

#[test]
fn a_first_check_is_quiet_and_later_arrivals_are_added() {
    let contract = vec![table("t", vec![col("id", None)])];
    let before = live(&[
        ("id", INT4, -1, "integer"),
        ("legacy", TEXT, -1, "text"),
        ("notes", TEXT, -1, "text"),
    ]);
    let (deltas, stored) = run(
        &contract,
        &catalog(vec![("t", before.clone())]),
        &Baselines::new(),
    );
    assert_eq!(
        deltas,
        [
            "t legacy undocumented - text -",
            "t notes undocumented - text -"
        ],
        "what was there at the first check is undocumented, not added"
    );
    assert_eq!(
        stored[&("public".into(), "t".into())].columns,
        before.columns,
        "the first check takes the baseline"
    );

    // Later: `notes` renamed (same attnum), `phone` added.
    let mut after = before.clone();
    after.columns[2].name = "remarks".into();
    after.columns.push(LiveColumn {
        attnum: 4,
        name: "phone".into(),
        type_oid: TEXT,
        typmod: -1,
        type_name: "text".into(),
    });
    let (deltas, again) = run(&contract, &catalog(vec![("t", after)]), &stored);
    assert_eq!(
        deltas,
        [
            "t legacy undocumented - text -",
            "t phone added - text -",
            "t remarks undocumented - text -",
        ],
        "a renamed undocumented column stays undocumented; a new one is added"
    );
    assert_eq!(again, stored, "the baseline applies and is kept");
}

#[test]
fn preview_classifies_like_a_check_where_there_is_a_baseline_and_adds_elsewhere() {
    let contract = vec![
        table("t", vec![col("id", None)]),
        table("u", vec![col("id", None)]),
    ];
    let cols = live(&[("id", INT4, -1, "integer"), ("extra", TEXT, -1, "text")]);
    let both = catalog(vec![("t", cols.clone()), ("u", cols.clone())]);
    let types = TypeMap::default();
    assert_eq!(
        summary(&preview(&contract, &both, &types, &Baselines::new())),
        ["t extra added - text -", "u extra added - text -"],
        "never checked: a plain diff"
    );
    // Only `t` was checked before (its baseline has `extra`).
    let (_, stored) = run(
        &contract[..1],
        &catalog(vec![("t", cols)]),
        &Baselines::new(),
    );
    assert_eq!(
        summary(&preview(&contract, &both, &types, &stored)),
        ["t extra undocumented - text -", "u extra added - text -"],
    );
}

#[test]
fn undocumented_policy_alert_and_ignore() {
    let before = live(&[("id", INT4, -1, "integer"), ("legacy", TEXT, -1, "text")]);
    let mut after = before.clone();
    after.columns.push(LiveColumn {
        attnum: 3,
        name: "phone".into(),
        type_oid: TEXT,
        typmod: -1,
        type_name: "text".into(),
    });
    for (policy, first, later) in [
        (
            Undocumented::Alert,
            vec!["t legacy added - text -"],
            vec!["t legacy added - text -", "t phone added - text -"],
        ),
        (Undocumented::Ignore, vec![], vec!["t phone added - text -"]),
        (
            Undocumented::Baseline,
            vec!["t legacy undocumented - text -"],
            vec!["t legacy undocumented - text -", "t phone added - text -"],
        ),
    ] {
        let contract = vec![with_policy(table("t", vec![col("id", None)]), policy, &[])];
        let (deltas, stored) = run(
            &contract,
            &catalog(vec![("t", before.clone())]),
            &Baselines::new(),
        );
        assert_eq!(deltas, first, "{policy:?} first check");
        let (deltas, _) = run(&contract, &catalog(vec![("t", after.clone())]), &stored);
        assert_eq!(deltas, later, "{policy:?} after a column arrived");
        // No history: as at a first check.
        let d = diff(
            &contract,
            &catalog(vec![("t", after.clone())]),
            &TypeMap::default(),
        );
        assert_eq!(
            summary(&d).len(),
            if policy == Undocumented::Ignore { 0 } else { 2 },
            "{policy:?} diff"
        );
    }
}

#[test]
fn a_policy_edit_keeps_the_baseline_and_a_contract_edit_keeps_added_columns_added() {
    let t = table("t", vec![col("id", None)]);
    let quiet = with_policy(t.clone(), Undocumented::Ignore, &[Change::Retyped]);
    assert_eq!(
        contract_fingerprint(&t),
        contract_fingerprint(&quiet),
        "a policy is not part of the fingerprint"
    );
    let mut ignoring_column = t.clone();
    ignoring_column.columns[0].ignore = ChangeSet::ALL;
    assert_eq!(
        contract_fingerprint(&t),
        contract_fingerprint(&ignoring_column)
    );

    let before = live(&[("id", INT4, -1, "integer"), ("legacy", TEXT, -1, "text")]);
    let (_, stored) = run(
        std::slice::from_ref(&t),
        &catalog(vec![("t", before.clone())]),
        &Baselines::new(),
    );
    let mut after = before.clone();
    after.columns.push(LiveColumn {
        attnum: 3,
        name: "phone".into(),
        type_oid: TEXT,
        typmod: -1,
        type_name: "text".into(),
    });
    let out = check(
        std::slice::from_ref(&quiet),
        &catalog(vec![("t", after.clone())]),
        &TypeMap::default(),
        &stored,
    );
    assert!(out.baselines.is_empty(), "a policy edit retakes nothing");
    assert_eq!(summary(&out.deltas), ["t phone added - text -"]);

    // The contract documents `legacy` now: the baseline is retaken, `phone` stays added, also
    // on the check after that.
    let mut edited = t.clone();
    edited.columns.push(col("legacy", None));
    let (deltas, retaken) = run(
        std::slice::from_ref(&edited),
        &catalog(vec![("t", after.clone())]),
        &stored,
    );
    assert_eq!(deltas, ["t phone added - text -"]);
    let key = ("public".to_string(), "t".to_string());
    assert_ne!(retaken[&key], stored[&key], "retaken");
    let names: Vec<_> = retaken[&key].columns.iter().map(|c| &*c.name).collect();
    assert_eq!(
        names,
        ["id", "legacy"],
        "the retaken baseline leaves the new column out"
    );
    let (deltas, kept) = run(
        std::slice::from_ref(&edited),
        &catalog(vec![("t", after.clone())]),
        &retaken,
    );
    assert_eq!(deltas, ["t phone added - text -"]);
    assert_eq!(kept, retaken);

    // Dropped and re-created with one more column: names carry over, attnums do not.
    let mut recreated = live(&[
        ("id", INT4, -1, "integer"),
        ("fax", TEXT, -1, "text"),
        ("legacy", TEXT, -1, "text"),
    ]);
    recreated.oid = 17000;
    let (deltas, _) = run(
        std::slice::from_ref(&t),
        &catalog(vec![("t", recreated)]),
        &stored,
    );
    assert_eq!(
        deltas,
        ["t fax added - text -", "t legacy undocumented - text -"]
    );
}

#[test]
fn ignore_sets_drop_deltas_per_table_and_per_column() {
    let t = types(&[("int", known(INT4, None, "integer"))]);
    let mut contract = vec![
        table(
            "users",
            vec![
                col("id", Some("int")),
                col("gone", None),
                col("kept", Some("int")),
            ],
        ),
        with_policy(
            table("missing", vec![]),
            Undocumented::Baseline,
            &[Change::TableMissing],
        ),
    ];
    contract[0].columns[0].ignore = [Change::Retyped].into_iter().collect();
    let live = catalog(vec![(
        "users",
        live(&[
            ("id", INT8, -1, "bigint"),
            ("kept", INT8, -1, "bigint"),
            ("extra", TEXT, -1, "text"),
        ]),
    )]);
    assert_eq!(
        summary(&diff(&contract, &live, &t)),
        [
            "users extra undocumented - text -",
            "users gone removed - - -",
            "users kept retyped integer bigint -",
        ],
        "id's retype and the missing table are ignored"
    );
    contract[0].policy.ignore = [Change::Removed, Change::Undocumented]
        .into_iter()
        .collect();
    assert_eq!(
        summary(&diff(&contract, &live, &t)),
        ["users kept retyped integer bigint -"],
        "the table's set applies to all its columns, with each column's own"
    );
    contract[0].policy.ignore = ChangeSet::ALL;
    assert!(diff(&contract, &live, &t).is_empty());
}

#[test]
fn a_column_level_ignore_covers_a_rename_of_that_column() {
    let mut t = table("t", vec![col("id", None), col("email", None)]);
    t.columns[1].ignore = [Change::Renamed].into_iter().collect();
    let before = live(&[("id", INT8, -1, "bigint"), ("email", TEXT, -1, "text")]);
    let after = live(&[("id", INT8, -1, "bigint"), ("mail", TEXT, -1, "text")]);
    let out = check(
        std::slice::from_ref(&t),
        &catalog(vec![("t", after)]),
        &TypeMap::default(),
        &baseline_of(&t, &before),
    );
    assert!(out.deltas.is_empty(), "{:?}", summary(&out.deltas));
}

// --- one relation, several sources -------------------------------------------------------------

fn named(source: &str, name: &str, relation: &str, columns: Vec<ContractColumn>) -> ContractTable {
    ContractTable {
        source_name: source.into(),
        table_name: name.into(),
        schema: "public".into(),
        identifier: relation.into(),
        columns,
        ..Default::default()
    }
}

#[test]
fn a_relation_named_by_two_sources_is_checked_once() {
    let mut a = named(
        "snowflake_usage",
        "query_history",
        "qh",
        vec![col("id", Some("int")), col("query", None)],
    );
    let mut b = named(
        "snowflake",
        "queries",
        "qh",
        vec![col("query", Some("text")), col("gone", None)],
    );
    a.policy = TablePolicy {
        undocumented: Undocumented::Ignore,
        ignore: [Change::Removed, Change::Retyped].into_iter().collect(),
        ..Default::default()
    };
    b.policy = TablePolicy {
        undocumented: Undocumented::Baseline,
        ignore: [Change::Removed].into_iter().collect(),
        ..Default::default()
    };
    let contract = vec![a.clone(), b.clone()];
    let merged = merge_relations(&contract);
    assert_eq!(merged.len(), 1);
    let m = &merged[0];
    assert_eq!(m.source_name, "snowflake, snowflake_usage");
    assert_eq!(
        m.table_name, "queries",
        "the first in (source, table) order"
    );
    let cols: Vec<_> = m
        .columns
        .iter()
        .map(|c| (&*c.name, c.data_type.as_deref()))
        .collect();
    assert_eq!(
        cols,
        [("query", Some("text")), ("gone", None), ("id", Some("int"))],
        "union by name; the first data_type given"
    );
    assert_eq!(
        m.policy.undocumented,
        Undocumented::Baseline,
        "the louder wins"
    );
    assert_eq!(
        m.policy.ignore.names(),
        ["removed"],
        "only what both ignore"
    );
    assert_eq!(
        m.columns[2].ignore.names(),
        ["removed", "retyped"],
        "a column listed by one source takes that source's sets"
    );
    assert_eq!(merge_relations(std::slice::from_ref(&a)), [a.clone()]);

    let t = types(&[
        ("int", known(INT4, None, "integer")),
        ("text", known(TEXT, None, "text")),
    ]);
    let live = catalog(vec![(
        "qh",
        live(&[
            ("id", INT8, -1, "bigint"),
            ("query", TEXT, -1, "text"),
            ("extra", TEXT, -1, "text"),
        ]),
    )]);
    let out = check(&contract, &live, &t, &Baselines::new());
    assert_eq!(
        summary(&out.deltas),
        ["qh extra undocumented - text -"],
        "gone is removed for both (ignored by both), id retyped only for one (ignored by it)"
    );
    assert!(out
        .deltas
        .iter()
        .all(|d| d.source_name == "snowflake, snowflake_usage"));
    assert_eq!(out.baselines.len(), 1, "one baseline per relation");

    // The fingerprint is the merged entry's, whatever order the contract comes in.
    let reversed = check(&[b.clone(), a.clone()], &live, &t, &Baselines::new());
    assert_eq!(reversed.baselines, out.baselines);
    let stored: Baselines = out.baselines.into_iter().collect();
    assert!(check(&contract, &live, &t, &stored).baselines.is_empty());

    let d = diff(&contract, &LiveCatalog::new(), &t);
    assert_eq!(
        summary(&d),
        ["qh - table_missing - - no table, view or foreign table public.qh (dbt source('snowflake', 'queries'), source('snowflake_usage', 'query_history'))"]
    );
}

fn gitlab_manifest() -> crate::Contract {
    let realdata = std::env::var("REALDATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/realdata").into());
    let path = format!("{realdata}/manifests/gitlab_analytics_manifest_dbt0.19.1_2022-02.json.gz");
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{path}");
    crate::parse_document("manifest.json", &String::from_utf8(out.stdout).unwrap()).unwrap()
}

#[test]
fn the_real_gitlab_manifest_checks_clean_against_its_own_columns_with_one_baseline_per_relation() {
    let contract = gitlab_manifest().tables;
    // A live catalog exactly as the contract says: each spelling its own type.
    let mut type_map = TypeMap::default();
    let mut oids: HashMap<(String, String), u32> = HashMap::new();
    let mut live = LiveCatalog::new();
    for (n, t) in contract.iter().enumerate() {
        let key = (t.schema.clone(), t.identifier.clone());
        let entry = live.tables.entry(key).or_insert_with(|| LiveTable {
            oid: 100_000 + n as u32,
            columns: Vec::new(),
        });
        for c in &t.columns {
            if entry.columns.iter().any(|l| l.name == c.name) {
                continue;
            }
            let spelling = c.data_type.as_deref().unwrap_or("text").to_string();
            let next = 200_000 + oids.len() as u32;
            let oid = *oids
                .entry((t.schema.clone(), spelling.clone()))
                .or_insert(next);
            type_map.insert(
                (t.schema.clone(), spelling.clone()),
                known(oid, None, &spelling),
            );
            entry.columns.push(LiveColumn {
                attnum: entry.columns.len() as i32 + 1,
                name: c.name.clone(),
                type_oid: oid,
                typmod: -1,
                type_name: spelling.into(),
            });
        }
    }
    let relations: HashSet<_> = contract
        .iter()
        .map(|t| (t.schema.clone(), t.identifier.clone()))
        .collect();
    assert_eq!(contract.len(), 747);
    assert_eq!(
        relations.len(),
        745,
        "two relations are named by two sources each"
    );

    let out = check(&contract, &live, &type_map, &Baselines::new());
    let loud: Vec<_> = out
        .deltas
        .iter()
        .filter(|d| matches!(d.change, Change::Removed | Change::Added | Change::Retyped))
        .collect();
    assert!(loud.is_empty(), "{loud:?}");
    assert_eq!(out.baselines.len(), relations.len());
    let keys: HashSet<_> = out.baselines.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, relations, "one baseline per relation, each once");
    for dup in [
        ("account_usage", "query_history"),
        ("salesforce_stitch", "zqu__quote__c"),
    ] {
        let key = (dup.0.to_string(), dup.1.to_string());
        assert_eq!(
            out.baselines.iter().filter(|(k, _)| *k == key).count(),
            1,
            "{dup:?}"
        );
    }
    // The same with nothing live: one table_missing per relation, naming both sources.
    let missing = diff(&contract, &LiveCatalog::new(), &type_map);
    assert_eq!(missing.len(), relations.len());
    let qh = missing
        .iter()
        .find(|d| d.schema_name == "account_usage" && d.table_name == "query_history")
        .unwrap();
    assert_eq!(qh.source_name, "snowflake, snowflake_account_usage");
    let detail = qh.detail.as_deref().unwrap();
    assert!(
        detail.contains("source('snowflake', 'query_history'), source('snowflake_account_usage', 'query_history')"),
        "{detail}"
    );
}

// --- case-only differences ----------------------------------------------------------------------

#[test]
fn a_relation_missing_by_case_only_says_what_dbt_queries_and_what_exists() {
    let mut album = named("chinook", "album", "album", vec![]);
    album.schema = "chinook".into();
    album.schema_quoted = true;
    let mut live = LiveCatalog::new();
    live.case_variants.insert(
        ("chinook".into(), "album".into()),
        ("chinook".into(), "Album".into()),
    );
    let d = diff(std::slice::from_ref(&album), &live, &TypeMap::default());
    assert_eq!(
        d[0].detail.as_deref(),
        Some(
            "dbt queries \"chinook\".\"album\" (quoting: {identifier: false} folds it to lower \
             case); the database has \"chinook\".\"Album\": set quoting: {identifier: true} or fix \
             the identifier (dbt source('chinook', 'album'))"
        )
    );
    assert_eq!(d[0].change, Change::TableMissing);

    // Quoted, but spelled in another case; and both parts at once.
    let mut shouting = album.clone();
    shouting.identifier = "ALBUM".into();
    shouting.identifier_quoted = true;
    live.case_variants.insert(
        ("chinook".into(), "ALBUM".into()),
        ("chinook".into(), "Album".into()),
    );
    let d = diff(std::slice::from_ref(&shouting), &live, &TypeMap::default());
    assert_eq!(
        d[0].detail.as_deref(),
        Some(
            "dbt queries \"chinook\".\"ALBUM\" (the identifier is quoted, so case matters); the \
             database has \"chinook\".\"Album\": spell the identifier as the database does (dbt \
             source('chinook', 'album'))"
        )
    );
    let mut both = album.clone();
    both.schema_quoted = false;
    live.case_variants.insert(
        ("chinook".into(), "album".into()),
        ("Chinook".into(), "Album".into()),
    );
    let d = diff(std::slice::from_ref(&both), &live, &TypeMap::default());
    let detail = d[0].detail.as_deref().unwrap();
    assert!(
        detail.contains("(quoting: {schema: false, identifier: false} folds them to lower case)")
            && detail.contains(
                "set quoting: {schema: true, identifier: true} or fix the schema and identifier"
            ),
        "{detail}"
    );
    // Without a case variant, the plain detail.
    let d = diff(
        std::slice::from_ref(&album),
        &LiveCatalog::new(),
        &TypeMap::default(),
    );
    assert!(d[0]
        .detail
        .as_deref()
        .unwrap()
        .starts_with("no table, view or foreign table chinook.album"));
}

#[test]
fn a_column_missing_by_case_only_keeps_both_rows_and_explains_the_removed_one() {
    let t = types(&[("int", known(INT4, None, "integer"))]);
    // Same type, one each side: not a rename, a quoting mistake.
    let contract = vec![table("t", vec![col("phonenumber", Some("int"))])];
    let live = catalog(vec![("t", live(&[("PhoneNumber", INT4, -1, "integer")]))]);
    assert_eq!(
        summary(&diff(&contract, &live, &t)),
        [
            "t PhoneNumber undocumented - integer -",
            "t phonenumber removed integer - the database has \"PhoneNumber\", which differs only \
             in case: dbt folds a column name to lower case (phonenumber) unless the column has \
             quote: true; set quote: true and spell it PhoneNumber",
        ]
    );
    // Quoted in the contract, in another case.
    let mut quoted = contract.clone();
    quoted[0].columns[0].name = "PHONENUMBER".into();
    quoted[0].columns[0].quoted = true;
    let d = diff(&quoted, &live, &t);
    let removed = d.iter().find(|d| d.change == Change::Removed).unwrap();
    assert_eq!(
        removed.detail.as_deref(),
        Some(
            "the database has \"PhoneNumber\", which differs only in case: with quote: true the \
             name is kept as written; spell it PhoneNumber"
        )
    );
    let lower = catalog(vec![("t", live_lower())]);
    let d = diff(&quoted, &lower, &t);
    let removed = d.iter().find(|d| d.change == Change::Removed).unwrap();
    assert!(
        removed
            .detail
            .as_deref()
            .unwrap()
            .ends_with("spell it phonenumber, or drop quote: true to let it fold"),
        "{removed:?}"
    );
    // The hint stays when the policy hides the undocumented twin.
    let hidden = vec![with_policy(contract[0].clone(), Undocumented::Ignore, &[])];
    let d = diff(&hidden, &live, &t);
    assert_eq!(d.len(), 1);
    assert!(d[0].detail.as_deref().unwrap().contains("\"PhoneNumber\""));
}

fn live_lower() -> LiveTable {
    live(&[("phonenumber", INT4, -1, "integer")])
}

#[test]
fn catalog_summary_parses_what_the_statement_builds() {
    let s = CatalogSummary::parse(
        r#"{"relation_oids" : [16746, null], "case_variants" : [[2, "Sales", "Orders"]],
            "probes" : [[16999, "public.mood"], [null, null]], "in_recovery" : true,
            "replay_lag_ms" : 1500, "replay_paused" : false}"#,
    )
    .unwrap();
    assert_eq!(s.relation_oids, Some(vec![Some(16746), None]));
    assert_eq!(
        s.case_variants,
        Some(vec![(2, "Sales".to_string(), "Orders".to_string())])
    );
    assert_eq!(
        s.probes,
        Some(vec![
            (Some(16999), Some("public.mood".to_string())),
            (None, None)
        ])
    );
    assert_eq!(
        (s.in_recovery, s.replay_lag_ms, s.replay_paused),
        (Some(true), Some(1500), Some(false))
    );
    // A primary with nothing to report: json_agg over no rows is null.
    let s = CatalogSummary::parse(
        r#"{"relation_oids" : null, "case_variants" : null, "probes" : null,
            "in_recovery" : false, "replay_lag_ms" : null, "replay_paused" : null}"#,
    )
    .unwrap();
    assert_eq!(s.relation_oids, None);
    assert_eq!(s.in_recovery, Some(false));
    assert!(CatalogSummary::parse("{\"relation_oids\": [\"1\"]}").is_err());
}

#[test]
fn baselines_without_columns_change_no_outcome() {
    let t = types(&[
        ("int", known(INT4, None, "integer")),
        ("text", known(TEXT, None, "text")),
    ]);
    let contract = vec![
        // Aligned and typed: its exact baseline's columns are not read...
        table("a", vec![col("id", Some("int")), col("name", Some("text"))]),
        // ...nor those of a table listing no columns; the others' are.
        table("b", vec![]),
        table("c", vec![col("id", None), col("name", Some("text"))]),
        table("d", vec![col("id", Some("int")), col("name", Some("text"))]),
    ];
    let first = catalog(vec![
        (
            "a",
            live(&[("id", INT4, -1, "integer"), ("name", TEXT, -1, "text")]),
        ),
        ("b", live(&[("x", INT4, -1, "integer")])),
        (
            "c",
            live(&[("id", INT4, -1, "integer"), ("name", TEXT, -1, "text")]),
        ),
        (
            "d",
            live(&[("id", INT4, -1, "integer"), ("name", TEXT, -1, "text")]),
        ),
    ]);
    let stored: Baselines = check(&contract, &first, &t, &Baselines::new())
        .baselines
        .into_iter()
        .collect();
    // Then: a retyped in place, b gains a column, c's untyped id retyped, d's name renamed.
    let now = catalog(vec![
        (
            "a",
            live(&[("id", INT8, -1, "bigint"), ("name", TEXT, -1, "text")]),
        ),
        (
            "b",
            live(&[("x", INT4, -1, "integer"), ("y", TEXT, -1, "text")]),
        ),
        (
            "c",
            live(&[("id", INT8, -1, "bigint"), ("name", TEXT, -1, "text")]),
        ),
        (
            "d",
            live(&[("id", INT4, -1, "integer"), ("label", TEXT, -1, "text")]),
        ),
    ]);
    let unread = baselines_without_columns(&contract, &now);
    let mut keys: Vec<&str> = unread.keys().map(|k| k.1.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a", "b"]);
    let trimmed: Baselines = stored
        .iter()
        .map(|(k, b)| {
            let mut b = b.clone();
            if unread.get(k) == Some(&(b.rel_oid, b.contract_fingerprint.clone())) {
                b.columns.clear();
            }
            (k.clone(), b)
        })
        .collect();
    assert!(trimmed.values().any(|b| b.columns.is_empty()));
    let full = check(&contract, &now, &t, &stored);
    let light = check(&contract, &now, &t, &trimmed);
    assert_eq!(summary(&full.deltas), summary(&light.deltas));
    assert_eq!(full.baselines, light.baselines);
    assert_eq!(
        summary(&preview(&contract, &now, &t, &stored)),
        summary(&preview(&contract, &now, &t, &trimmed))
    );
    assert!(summary(&full.deltas).iter().any(|d| d.contains("renamed")));
}
