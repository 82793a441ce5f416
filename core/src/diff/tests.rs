use super::*;
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
