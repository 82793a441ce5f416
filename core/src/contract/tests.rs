use super::*;

fn parse(doc: &str) -> Result<Contract, ContractError> {
    parse_document("models/sources.yml", doc)
}

/// The real test data: `$REALDATA`, else `../shared/realdata` beside the checkout.
fn realdata() -> String {
    std::env::var("REALDATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/realdata").into())
}

#[test]
fn dbt_defaults_schema_identifier_and_quoting() {
    let c = parse(
        r#"
version: 2
models:
  - name: ignored_model
sources:
  - name: App
    database: analytics
    tables:
      - name: Orders
      - name: customers
        identifier: Customer_V2
        columns:
          - name: Id
            data_type: INT
          - name: "Email Address"
            quote: true
          - name: Nick
            unknown_key: whatever
"#,
    )
    .unwrap();
    assert_eq!(c.kind, DocumentKind::Yaml);
    assert_eq!(c.tables.len(), 2);
    let orders = &c.tables[0];
    assert_eq!(orders.source_name, "App");
    assert_eq!(
        orders.schema, "App",
        "schema defaults to the source name, quoted as dbt-postgres quotes it"
    );
    assert_eq!(
        orders.identifier, "Orders",
        "identifiers are quoted by default"
    );
    assert!(orders.schema_quoted && orders.identifier_quoted);
    assert_eq!(orders.database.as_deref(), Some("analytics"));
    assert!(orders.columns.is_empty());
    let customers = &c.tables[1];
    assert_eq!(customers.table_name, "customers");
    assert_eq!(customers.identifier, "Customer_V2");
    let names: Vec<_> = customers.columns.iter().map(|c| &*c.name).collect();
    assert_eq!(
        names,
        ["id", "Email Address", "nick"],
        "columns fold unless quote: true"
    );
    assert_eq!(customers.columns[0].data_type.as_deref(), Some("INT"));
}

#[test]
fn quoting_keeps_exact_case_like_the_chinook_project() {
    let c = parse(
        r#"
sources:
  - name: chinook
    quoting: {database: true, schema: true, identifier: true}
    tables:
      - name: artist
        identifier: Artist
        columns:
          - name: ArtistId
            quote: true
          - name: Name
"#,
    )
    .unwrap();
    let t = &c.tables[0];
    assert_eq!(t.identifier, "Artist");
    assert_eq!(&*t.columns[0].name, "ArtistId");
    assert_eq!(
        &*t.columns[1].name, "name",
        "a column without quote: true folds"
    );
}

#[test]
fn disabled_sources_and_tables_are_skipped() {
    let c = parse(
        r#"
sources:
  - name: off
    config: {enabled: false}
    tables: [{name: a}]
  - name: legacy_off
    enabled: false
    tables: [{name: b}]
  - name: on
    tables:
      - name: c
      - name: d
        config:
          enabled: false
      - name: e
        enabled: false
"#,
    )
    .unwrap();
    let names: Vec<_> = c.tables.iter().map(|t| t.table_name.as_str()).collect();
    assert_eq!(names, ["c"]);
}

#[test]
fn jinja_defaults_resolve_and_other_jinja_names_file_line_and_key() {
    let c = parse(
        r#"
sources:
  - name: app
    schema: "{{ env_var('APP_SCHEMA', 'Core') }}"
    tables:
      - name: t
        identifier: "{{ var('t_name', 'T1') }}"
"#,
    )
    .unwrap();
    assert_eq!(c.tables[0].schema, "Core");
    assert_eq!(c.tables[0].identifier, "T1");

    let err = parse(
        r#"
sources:
  - name: app
    schema: "{{ target.schema }}"
"#,
    )
    .unwrap_err();
    assert_eq!(err.origin, "models/sources.yml");
    assert_eq!(err.line, Some(4));
    assert!(err.message.contains("sources[app].schema"), "{err}");
    assert!(
        err.to_string().starts_with("models/sources.yml:4:"),
        "{err}"
    );
}

#[test]
fn malformed_yaml_names_origin_line_and_column() {
    let err = parse("sources:\n  - name: a\n    tables: [\n      {name: b\n").unwrap_err();
    assert_eq!(err.origin, "models/sources.yml");
    assert!(err.line.is_some(), "{err}");
    assert!(
        err.message.starts_with("not a valid dbt properties file"),
        "{err}"
    );

    let err = parse("sources:\n  - name: a\n    tables:\n      - name: b\n     bad: indent\n")
        .unwrap_err();
    assert!(matches!(err.line, Some(4) | Some(5)), "{err}");
}

#[test]
fn wrong_shapes_are_errors_not_silently_empty() {
    let err = parse("sources:\n  - tables: []\n").unwrap_err();
    assert!(err.message.contains("name"), "{err}");
    let err = parse("sources: 12\n").unwrap_err();
    assert_eq!(err.line, Some(1), "{err}");
}

#[test]
fn duplicate_tables_in_one_document_are_refused() {
    let err = parse("sources:\n  - name: a\n    tables:\n      - name: t\n      - name: t\n")
        .unwrap_err();
    assert!(err.message.contains("'a.t' is defined twice"), "{err}");
    assert_eq!(err.line, Some(5));
}

#[test]
fn a_yaml_bomb_is_refused_with_bounded_work() {
    let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    doc.push_str("sources: *a11\n");
    let started = std::time::Instant::now();
    let err = parse(&doc).unwrap_err();
    assert!(
        started.elapsed().as_secs() < 5,
        "bomb took {:?}",
        started.elapsed()
    );
    assert!(
        err.message.starts_with("not a valid dbt properties file"),
        "{err}"
    );
}

#[test]
fn a_huge_yaml_document_is_refused_before_parsing() {
    let doc = format!("# {}\nsources: []\n", "x".repeat(MAX_YAML_BYTES));
    let err = parse(&doc).unwrap_err();
    assert!(err.message.contains("limited to"), "{err}");
}

#[test]
fn manifest_sources_are_read_and_other_nodes_ignored() {
    let doc = r#"{
      "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"},
      "nodes": {"model.p.m": {"columns": {"x": {"name": "x"}}}},
      "sources": {
        "source.p.app.users": {
          "resource_type": "source", "source_name": "app", "name": "users",
          "identifier": "Users", "schema": "App", "database": "db",
          "quoting": {"database": null, "schema": null, "identifier": true, "column": null},
          "config": {"enabled": true},
          "columns": {
            "zeta": {"name": "zeta", "data_type": "text", "quote": null},
            "Alpha": {"name": "Alpha", "data_type": null, "quote": true}
          }
        },
        "source.p.app.off": {
          "resource_type": "source", "source_name": "app", "name": "off",
          "schema": "app", "config": {"enabled": false}, "columns": {}
        }
      },
      "disabled": {}
    }"#;
    let c = parse_document("target/manifest.json", doc).unwrap();
    assert_eq!(c.kind, DocumentKind::Manifest);
    assert_eq!(c.tables.len(), 1);
    let t = &c.tables[0];
    assert_eq!(
        (t.schema.as_str(), t.identifier.as_str()),
        ("App", "Users"),
        "null quoting is dbt's default: quoted"
    );
    let cols: Vec<_> = t
        .columns
        .iter()
        .map(|c| (&*c.name, c.data_type.as_deref()))
        .collect();
    assert_eq!(
        cols,
        [("zeta", Some("text")), ("Alpha", None)],
        "document order kept"
    );
}

#[test]
fn malformed_json_manifest_names_line_and_column() {
    let err = parse_document(
        "target/manifest.json",
        "{\n  \"nodes\": {},\n  \"sources\": {,}\n}",
    )
    .unwrap_err();
    assert_eq!(err.origin, "target/manifest.json");
    assert_eq!(err.line, Some(3));
    assert!(err.column.is_some());
}

#[test]
fn a_json_properties_file_is_not_mistaken_for_a_manifest() {
    let c =
        parse(r#"{"version": 2, "sources": [{"name": "s", "tables": [{"name": "t"}]}]}"#).unwrap();
    assert_eq!(c.kind, DocumentKind::Yaml);
    assert_eq!(c.tables[0].identifier, "t");
}

#[test]
fn the_real_gitlab_manifest_parses() {
    let path = format!(
        "{}/manifests/gitlab_analytics_manifest_dbt0.19.1_2022-02.json.gz",
        realdata()
    );
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path}: the tests read ../shared/realdata beside the checkout (or $REALDATA)"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let c = parse_document("manifest.json", &text).unwrap();
    assert_eq!(c.kind, DocumentKind::Manifest);
    assert_eq!(
        c.tables.len(),
        747,
        "the manifest holds 747 enabled sources"
    );
    assert!(c.tables.iter().any(|t| t.source_name == "gitlab_dotcom"));

    // Lineage: the graph below the sources, SQL only for a source's direct children.
    let started = std::time::Instant::now();
    let c = parse_document("manifest.json", &text).unwrap();
    let elapsed = started.elapsed();
    let l = &c.lineage;
    let account = Parent::Source {
        source_name: "zuora".into(),
        table_name: "account".into(),
    };
    let mut direct: Vec<&str> = l
        .edges
        .iter()
        .filter(|e| e.parent == account)
        .map(|e| e.child.as_str())
        .collect();
    direct.sort();
    assert_eq!(
        direct,
        [
            "model.gitlab_snowflake.zuora_account_snapshots_source",
            "model.gitlab_snowflake.zuora_account_source",
            "model.gitlab_snowflake.zuora_tables_date",
            "snapshot.gitlab_snowflake.zuora_account_snapshots",
        ]
    );
    // Everything reachable from zuora.account: 172 models, 9 snapshots, 3 exposures.
    let mut reached = std::collections::HashSet::new();
    let mut stack: Vec<&str> = direct.clone();
    while let Some(n) = stack.pop() {
        if reached.insert(n) {
            stack.extend(
                l.edges
                    .iter()
                    .filter(|e| e.parent == Parent::Node(n.to_string()))
                    .map(|e| e.child.as_str()),
            );
        }
    }
    let kind = |k: &str| reached.iter().filter(|n| n.starts_with(k)).count();
    assert_eq!(
        (kind("model."), kind("snapshot."), kind("exposure.")),
        (172, 9, 3)
    );
    let node = |id: &str| l.nodes.iter().find(|n| n.unique_id == id).unwrap();
    let m = node("model.gitlab_snowflake.zuora_account_source");
    assert!(m
        .code
        .as_deref()
        .unwrap()
        .contains("source('zuora', 'account')"));
    assert!(
        !m.compiled,
        "a 0.19 manifest from dbt parse is not compiled"
    );
    assert_eq!(
        m.file_path.as_deref(),
        Some("models/sources/zuora/zuora_account_source.sql")
    );
    let e = node("exposure.gitlab_snowflake.product_adoption_dashboard");
    assert_eq!(e.exposure_type.as_deref(), Some("dashboard"));
    assert_eq!(e.owner_name.as_deref(), Some("Mathieu Peychet"));
    assert!(e.code.is_none());
    // Bounded: nodes not below a source, and tests, are not kept; SQL only for direct children.
    assert!(l.nodes.len() < 2200, "{} nodes", l.nodes.len());
    assert!(l.nodes.iter().all(|n| !n.unique_id.starts_with("test.")));
    let code_bytes: usize = l
        .nodes
        .iter()
        .filter_map(|n| n.code.as_ref())
        .map(String::len)
        .sum();
    assert!(code_bytes < 1_500_000, "{code_bytes} bytes of SQL kept");
    eprintln!(
        "gitlab manifest: {} nodes, {} edges, {} KB of SQL, parsed in {elapsed:?}",
        l.nodes.len(),
        l.edges.len(),
        code_bytes / 1024
    );
}

#[test]
fn yaml_exposures_owner_and_severity_meta() {
    let doc = r#"
version: 2
sources:
  - name: shop
    meta: {owner: data-team@example.com}
    tables:
      - name: customers
        meta: {owner: [alice@example.com, bob@example.com], drift_watch: {severity: breaking}}
      - name: orders
        config: {meta: {drift_watch: {owner: "1200000000000001"}}}
      - name: notes
        meta: {owner: {team: x}}
exposures:
  - name: weekly_revenue
    type: dashboard
    url: https://bi.example.com/d/1
    owner: {name: Carol, email: carol@example.com}
    depends_on: ["ref('fct_orders')", "source('shop', 'customers')"]
  - name: off
    config: {enabled: false}
    depends_on: ["ref('x')"]
"#;
    let c = parse_document("shop_analytics/models/shop.yml", doc).unwrap();
    let owner = |t: &str| {
        c.tables
            .iter()
            .find(|x| x.table_name == t)
            .unwrap()
            .policy
            .owner
            .clone()
    };
    assert_eq!(owner("customers").as_deref(), Some("alice@example.com"));
    assert_eq!(owner("orders").as_deref(), Some("1200000000000001"));
    // Not a string: the project's business; the source's owner applies.
    assert_eq!(owner("notes").as_deref(), Some("data-team@example.com"));
    assert_eq!(c.tables[0].policy.severity, Some(Severity::Breaking));
    assert_eq!(c.tables[1].policy.severity, None);
    assert_eq!(c.lineage.nodes.len(), 1);
    let e = &c.lineage.nodes[0];
    assert_eq!(e.unique_id, "exposure.shop_analytics.weekly_revenue");
    assert_eq!(e.owner_email.as_deref(), Some("carol@example.com"));
    assert_eq!(e.file_path.as_deref(), Some("models/shop.yml"));
    let parents: Vec<_> = c.lineage.edges.iter().map(|e| e.parent.clone()).collect();
    assert_eq!(
        parents,
        [
            Parent::Node("model.shop_analytics.fct_orders".into()),
            Parent::Source {
                source_name: "shop".into(),
                table_name: "customers".into()
            }
        ]
    );

    // A configured owner key.
    let options = ParseOptions {
        owner_key: "team_email".into(),
    };
    let c = parse_document_with(
        "p/s.yml",
        "sources: [{name: s, meta: {owner: a@x.io, team_email: t@x.io}, tables: [{name: t}]}]",
        &options,
    )
    .unwrap();
    assert_eq!(c.tables[0].policy.owner.as_deref(), Some("t@x.io"));

    // Bad values are located errors.
    let e =
        parse("sources: [{name: s, tables: [{name: t, meta: {drift_watch: {severity: high}}}]}]")
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("severity must be breaking, risky or info, not \"high\""),
        "{e}"
    );
    let e = parse("sources: [{name: s, tables: [{name: t, meta: {owner: \"a\\u0007b\"}}]}]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("control character U+0007"), "{e}");
}

#[test]
fn target_and_live_schema_meta_map_a_source_to_a_target() {
    let c = parse(
        "sources:\n  - name: billing\n    schema: raw_billing\n    meta: {drift_watch: {target: billing_replica, live_schema: public}}\n    tables:\n      - name: invoices\n      - name: refunds\n        config: {meta: {drift_watch: {live_schema: archive}}}\n",
    )
    .unwrap();
    let p = |i: usize| {
        (
            c.tables[i].policy.target.as_deref(),
            c.tables[i].policy.live_schema.as_deref(),
        )
    };
    assert_eq!(p(0), (Some("billing_replica"), Some("public")));
    assert_eq!(
        p(1),
        (Some("billing_replica"), Some("archive")),
        "the table's own wins"
    );
    assert_eq!(
        c.tables[0].schema, "raw_billing",
        "the contract's schema is kept"
    );
    let e = parse("sources: [{name: s, meta: {drift_watch: {target: [a]}}, tables: [{name: t}]}]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("drift_watch target must be a name"), "{e}");
    let e = parse(
        "sources: [{name: s, tables: [{name: t, columns: [{name: c, meta: {drift_watch: {target: x}}}]}]}]",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("applies to sources and tables, not columns"),
        "{e}"
    );
}

#[test]
fn a_model_file_is_lineage_only() {
    let c = parse_document(
        "shop_analytics/models/marts/fct_orders.sql",
        "select o.id, c.phone from {{ ref('stg_orders') }} o join {{ source('shop','customers') }} c using (id)",
    )
    .unwrap();
    assert_eq!(c.kind, DocumentKind::Model);
    assert!(c.tables.is_empty());
    assert_eq!(
        c.lineage.nodes[0].unique_id,
        "model.shop_analytics.fct_orders"
    );
    assert_eq!(c.lineage.edges.len(), 2);
    assert!(parse_document("p/models/x.sql", "select '\0'").is_err());
}

#[test]
fn every_real_sources_file_parses() {
    let root = realdata();
    let files = [
        ("chinook/dbt_sources_chinook-pipeline.yml", 11),
        ("pagila/dbt_sources_dvdrental_jeanneta.yml", 0),
        ("pagila/dbt_sources_dvdrental_martinchakarov.yml", 0),
        ("pagila/dbt_sources_dvdrental_mingdinghan.yml", 0),
        ("musicbrainz/dbt_sources_geomusic_musicbrainz.yml", 0),
        ("gitlab/analytics_2024-09/dbt_sources_gitlab_dotcom.yml", 0),
        ("gitlab/analytics_2021-09/dbt_sources_gitlab_dotcom.yml", 0),
    ];
    for (file, expected_min) in files {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let c = parse_document(file, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.tables.is_empty(), "{file} has source tables");
        assert!(c.tables.len() >= expected_min, "{file}: {}", c.tables.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Control characters ("bad bytes") in stored names, identifiers and types

const REFUSAL: &str = "may not contain control characters";

/// The 1-based (line, byte column) where `needle` first starts in `doc`.
fn position_of(doc: &str, needle: &str) -> (u64, u64) {
    let at = doc
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the document"));
    let line_start = doc[..at].rfind('\n').map_or(0, |nl| nl + 1);
    let line = doc[..at].matches('\n').count() + 1;
    (line as u64, (at - line_start + 1) as u64)
}

#[test]
fn nul_from_a_yaml_escape_in_a_column_name_is_refused_at_the_value() {
    let doc = r#"
sources:
  - name: app
    tables:
      - name: users
        columns:
          - name: id
          - name: "em\0ail"
            data_type: text
"#;
    let err = parse(doc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "models/sources.yml:8:19: column name contains a control character (U+0000); names, \
         identifiers and data types may not contain control characters"
    );
    assert_eq!((err.line, err.column), (Some(8), Some(19)));
    // `\x00` is the same character spelled another way.
    let err = parse(&doc.replace(r"\0", r"\x00")).unwrap_err();
    assert!(err.message.contains("(U+0000)"), "{err}");
    assert_eq!((err.line, err.column), (Some(8), Some(19)));
}

#[test]
fn a_control_character_in_a_table_name_is_refused() {
    let doc = "sources:\n  - name: app\n    tables:\n      - name: ok\n      - name: \"t\\x01\"\n";
    let err = parse(doc).unwrap_err();
    assert_eq!(err.origin, "models/sources.yml");
    assert_eq!((err.line, err.column), (Some(5), Some(15)));
    assert!(
        err.message
            .starts_with("table name contains a control character (U+0001); "),
        "{err}"
    );
    assert!(err.message.ends_with(REFUSAL), "{err}");
}

#[test]
fn a_tab_in_a_data_type_is_refused_even_where_trimming_would_drop_it() {
    let doc = r#"
sources:
  - name: app
    tables:
      - name: t
        columns:
          - name: amount
            data_type: "double\tprecision"
"#;
    let err = parse(doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(8), Some(24)));
    assert!(
        err.message
            .starts_with("data_type contains a control character (U+0009); "),
        "{err}"
    );

    // Trailing control characters are refused too, not trimmed away unnoticed; that includes
    // a block scalar's final line break (`|-` strips it).
    // (A block scalar is located at its first line of content.)
    for (trailing, at) in [
        (r#""int\t""#, (8, 24)),
        (r#""int\x1f""#, (8, 24)),
        ("|\n              int\n", (9, 15)),
    ] {
        let err = parse(&doc.replace(r#""double\tprecision""#, trailing)).unwrap_err();
        assert_eq!(
            (err.line, err.column),
            (Some(at.0), Some(at.1)),
            "{trailing}: {err}"
        );
        assert!(err
            .message
            .starts_with("data_type contains a control character"));
    }
    let c = parse(&doc.replace(
        r#""double\tprecision""#,
        "|-\n              numeric(10,2)\n",
    ))
    .unwrap();
    assert_eq!(
        c.tables[0].columns[0].data_type.as_deref(),
        Some("numeric(10,2)")
    );
}

#[test]
fn a_control_character_from_a_jinja_default_is_refused() {
    let doc = r#"
sources:
  - name: app
    schema: "{{ env_var('APP_SCHEMA', 'co\x1bre') }}"
    tables: [{name: t}]
"#;
    let err = parse(doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(4), Some(13)));
    assert!(
        err.message
            .starts_with("schema contains a control character (U+001B); "),
        "{err}"
    );

    let doc = r#"
sources:
  - name: app
    tables:
      - name: t
        identifier: "{{ var('t_name', 'T\x7f') }}"
"#;
    let err = parse(doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(6), Some(21)));
    assert!(err
        .message
        .starts_with("identifier contains a control character (U+007F)"));

    // The database, kept as written when its template cannot be resolved, is checked too.
    let doc = "sources:\n  - name: app\n    database: \"{{ target.database }}\\x85\"\n    tables: [{name: t}]\n";
    let err = parse(doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(3), Some(15)));
    assert!(err
        .message
        .starts_with("database contains a control character (U+0085)"));
}

#[test]
fn every_c0_del_and_c1_character_is_refused_in_every_yaml_name() {
    let template = r#"
sources:
  - name: "SOURCE"
    schema: "SCHEMA"
    database: "DATABASE"
    tables:
      - name: "TABLE"
        identifier: "IDENT"
        columns:
          - name: "COLUMN"
            data_type: "TYPE"
"#;
    let slots = [
        ("SOURCE", "source name"),
        ("SCHEMA", "schema"),
        ("DATABASE", "database"),
        ("TABLE", "table name"),
        ("IDENT", "identifier"),
        ("COLUMN", "column name"),
        ("TYPE", "data_type"),
    ];
    for (slot, what) in slots {
        for code in [0x00u32, 0x01, 0x0a, 0x1f, 0x7f, 0x80, 0x9f] {
            let doc = template.replace(slot, &format!("a\\x{code:02x}b"));
            let err = parse(&doc).unwrap_err();
            let (line, column) = position_of(template, &format!("\"{slot}\""));
            assert_eq!((err.line, err.column), (Some(line), Some(column)), "{err}");
            assert_eq!(
                err.message,
                format!("{what} contains a control character (U+{code:04X}); names, identifiers and data types {REFUSAL}")
            );
        }
    }
}

#[test]
fn printable_non_ascii_names_still_parse() {
    let c = parse(
        r#"
sources:
  - name: "Größe 🦀"
    schema: "{{ env_var('S', 'Größe') }}"
    tables:
      - name: "Tabelle — ü"
        columns:
          - name: "Größe"
            quote: true
            data_type: "character varying(20)"
          - name: "🦀 emoji"
            quote: true
          - name: "nbsp\u00a0and\u2028separator"
            quote: true
"#,
    )
    .unwrap();
    let t = &c.tables[0];
    assert_eq!(t.source_name, "Größe 🦀");
    assert_eq!(t.schema, "Größe");
    assert_eq!(t.identifier, "Tabelle — ü");
    let names: Vec<_> = t.columns.iter().map(|c| &*c.name).collect();
    assert_eq!(
        names,
        ["Größe", "🦀 emoji", "nbsp\u{a0}and\u{2028}separator"]
    );
}

/// A one-line manifest, as dbt writes it, whose `users` table carries `column` as the name of
/// its only column and `identifier` as its identifier.
fn one_line_manifest(identifier: &str, column: &str) -> String {
    format!(
        r#"{{"metadata": {{}}, "nodes": {{}}, "sources": {{"source.p.app.users": {{"resource_type": "source", "source_name": "app", "name": "users", "identifier": "{identifier}", "schema": "app", "database": "Größe", "columns": {{"c": {{"name": "{column}", "data_type": "text"}}}}}}}}}}"#
    )
}

#[test]
fn nul_from_a_json_escape_in_a_manifest_column_name_is_refused_at_the_value() {
    let ok = one_line_manifest("Users", "Größe 🦀");
    let c = parse_document("target/manifest.json", &ok).unwrap();
    assert_eq!(&*c.tables[0].columns[0].name, "größe 🦀");
    assert_eq!(c.tables[0].database.as_deref(), Some("Größe"));

    let doc = one_line_manifest("Users", r"id\u0000");
    let err = parse_document("target/manifest.json", &doc).unwrap_err();
    let (line, column) = position_of(&doc, r#""id\u0000""#);
    assert_eq!(
        (line, column),
        (1, 221),
        "columns count bytes, as serde_json's do"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "target/manifest.json:1:{column}: column name contains a control character (U+0000); \
             names, identifiers and data types {REFUSAL} (source.p.app.users)"
        )
    );
}

#[test]
fn nul_in_a_manifest_source_identifier_is_refused_at_the_value() {
    let doc = one_line_manifest(r"Us\u0000ers", "id");
    let err = parse_document("target/manifest.json", &doc).unwrap_err();
    let (line, column) = position_of(&doc, r#""Us\u0000ers""#);
    assert_eq!((err.line, err.column), (Some(line), Some(column)), "{err}");
    assert!(
        err.message
            .starts_with("identifier contains a control character (U+0000); "),
        "{err}"
    );

    // In an indented manifest the line is the value's own line.
    let doc = "{\n  \"nodes\": {},\n  \"sources\": {\n    \"source.p.app.users\": {\n      \
               \"source_name\": \"app\",\n      \"name\": \"users\",\n      \
               \"identifier\": \"Us\\u0001ers\",\n      \"schema\": \"app\"\n    }\n  }\n}\n";
    let err = parse_document("target/manifest.json", doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(7), Some(21)), "{err}");
    assert!(err.message.contains("(U+0001)"), "{err}");
}

#[test]
fn every_stored_manifest_value_is_checked_including_raw_c1_characters() {
    let template = r#"{"nodes": {}, "sources": {"source.p.app.users": {"source_name": "SOURCE", "name": "TABLE", "identifier": "IDENT", "schema": "SCHEMA", "database": "DATABASE", "columns": {"c": {"name": "COLUMN", "data_type": "TYPE"}}}}}"#;
    let fields = [
        ("SOURCE", "source name"),
        ("TABLE", "table name"),
        ("IDENT", "identifier"),
        ("SCHEMA", "schema"),
        ("DATABASE", "database"),
        ("COLUMN", "column name"),
        ("TYPE", "data_type"),
    ];
    for (field, what) in fields {
        // Escaped (`\u001f`) and raw (U+007F, U+0085 are legal unescaped in JSON strings).
        for (value, code) in [
            (r#""x\u001f""#, "U+001F"),
            ("\"x\u{7f}\"", "U+007F"),
            ("\"x\u{85}\"", "U+0085"),
        ] {
            let doc = template.replace(&format!("\"{field}\""), value);
            let err = parse_document("m.json", &doc).expect_err(&doc);
            let (line, column) = position_of(&doc, value);
            assert_eq!(
                (err.line, err.column),
                (Some(line), Some(column)),
                "{field}: {err}"
            );
            assert!(
                err.message
                    .starts_with(&format!("{what} contains a control character ({code}); ")),
                "{field}: {err}"
            );
        }
    }
}

#[test]
fn a_manifest_value_of_the_wrong_type_is_located() {
    let doc = one_line_manifest("Users", "id").replace(r#""schema": "app""#, r#""schema": 5"#);
    let err = parse_document("m.json", &doc).unwrap_err();
    let (_, column) = position_of(&doc, r#"5, "database""#);
    assert_eq!((err.line, err.column), (Some(1), Some(column)), "{err}");
    assert!(err.message.contains("invalid type: integer `5`"), "{err}");
}

#[test]
fn json_errors_inside_sources_on_the_first_line_count_columns_from_the_line_start() {
    // dbt writes manifest.json on one line: the column is all there is to go on.
    let doc = r#"{"nodes": {}, "sources": {"source.p.a.t": {"source_name": "a", "schema": "a"}}}"#;
    let err = parse_document("m.json", doc).unwrap_err();
    assert!(err.message.contains("missing field `name`"), "{err}");
    let (_, node_end) = position_of(doc, "}}}");
    assert_eq!((err.line, err.column), (Some(1), Some(node_end)), "{err}");
}

#[test]
fn an_origin_with_a_control_character_is_refused_and_never_echoed_raw() {
    assert_eq!(check_origin("models/Größe 🦀.yml"), Ok(()));
    let err = check_origin("models/x\u{0}.yml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "models/x\\u{0}.yml: the origin contains a control character (U+0000); an origin (the \
         document's file path) may not contain control characters"
    );
    assert_eq!((err.line, err.column), (None, None));

    // parse_document checks the origin before anything else, even a valid document.
    let err = parse_document("models/\u{1b}[31mred.yml", "sources: []\n").unwrap_err();
    assert_eq!(err.origin, "models/\\u{1b}[31mred.yml");
    assert!(err.message.contains("(U+001B)"), "{err}");
    for bad in ["\n", "a\tb", "\u{7f}", "\u{9f}"] {
        assert!(check_origin(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn error_messages_never_carry_control_characters() {
    // A Jinja expression quoted in a message, and a manifest unique_id named in one.
    let jinja = parse("sources:\n  - name: \"{{ target\\0 }}\"\n").unwrap_err();
    assert!(jinja.message.contains(r"target\u{0}"), "{jinja}");
    let doc = "{\"nodes\": {}, \"sources\": {\"source.p.a.t\\u0007\": {\"source_name\": \"a\", \
               \"name\": \"t\", \"schema\": \"a\\u0000\"}}}";
    let manifest = parse_document("m.json", doc).unwrap_err();
    assert!(
        manifest.message.ends_with(r"(source.p.a.t\u{7})"),
        "{manifest}"
    );
    for shown in [jinja.to_string(), manifest.to_string()] {
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Quoting as dbt-postgres applies it

#[test]
fn quoting_false_folds_table_level_wins_and_config_quoting_counts() {
    let c = parse(
        r#"
sources:
  - name: Sales
    schema: Sales_Data
    quoting: {schema: false, identifier: false}
    tables:
      - name: Orders
      - name: Customers
        quoting: {identifier: true}
      - name: Items
        config:
          quoting: {identifier: true, schema: true}
      - name: Notes
        quoting: {identifier: true}
        config: {quoting: {identifier: false}}
        columns:
          - name: Body
          - name: Title
            quote: true
  - name: Newer
    config: {quoting: {schema: false}}
    quoting: {schema: true}
    tables: [{name: Mixed}]
"#,
    )
    .unwrap();
    let rels: Vec<_> = c
        .tables
        .iter()
        .map(|t| {
            (
                t.schema.as_str(),
                t.identifier.as_str(),
                t.schema_quoted,
                t.identifier_quoted,
            )
        })
        .collect();
    assert_eq!(
        rels,
        [
            ("sales_data", "orders", false, false),
            ("sales_data", "Customers", false, true),
            ("Sales_Data", "Items", true, true),
            ("sales_data", "notes", false, false),
            ("newer", "Mixed", false, true),
        ]
    );
    let notes = &c.tables[3];
    let cols: Vec<_> = notes.columns.iter().map(|c| &*c.name).collect();
    assert_eq!(
        cols,
        ["body", "Title"],
        "source quoting never quotes columns"
    );
}

#[test]
fn a_quoting_column_key_does_not_quote_columns() {
    // dbt's Quoting has a `column` key, but a source column's spelling is its own `quote`.
    let c = parse(
        "sources:\n  - name: s\n    quoting: {column: true}\n    tables:\n      - name: t\n        \
         columns: [{name: CamelCase}]\n",
    )
    .unwrap();
    assert_eq!(&*c.tables[0].columns[0].name, "camelcase");
    assert_eq!(c.tables[0].identifier, "t");
}

#[test]
fn quoted_identifiers_are_still_cut_at_63_bytes() {
    let long = format!("Long{}", "x".repeat(70));
    let c = parse(&format!(
        "sources:\n  - name: s\n    tables:\n      - name: t\n        identifier: {long}\n"
    ))
    .unwrap();
    assert_eq!(c.tables[0].identifier, long[..63]);
}

fn chinook_yaml() -> String {
    let path = format!("{}/chinook/dbt_sources_chinook-pipeline.yml", realdata());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const CHINOOK_QUOTING: &str =
    "    quoting:\n      database: true\n      schema: true\n      identifier: true\n";

/// (schema, identifier, column names) of every table.
fn relations(c: &Contract) -> Vec<(String, String, Vec<String>)> {
    c.tables
        .iter()
        .map(|t| {
            (
                t.schema.clone(),
                t.identifier.clone(),
                t.columns.iter().map(|c| c.name.to_string()).collect(),
            )
        })
        .collect()
}

/// A manifest with the tables of `yaml` (parsed with exact names), the given node `quoting`.
fn manifest_like(yaml: &Contract, quoting: &str) -> String {
    let mut sources = serde_json::Map::new();
    for t in &yaml.tables {
        let columns: serde_json::Map<String, serde_json::Value> = t
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    serde_json::json!({"name": &*c.name, "data_type": null, "quote": c.quoted}),
                )
            })
            .collect();
        sources.insert(
            format!("source.chinook.{}.{}", t.source_name, t.table_name),
            serde_json::json!({
                "resource_type": "source", "source_name": t.source_name, "name": t.table_name,
                "identifier": t.identifier, "schema": t.schema, "database": t.database,
                "quoting": serde_json::from_str::<serde_json::Value>(quoting).unwrap(),
                "config": {"enabled": true}, "meta": {}, "source_meta": {}, "columns": columns,
            }),
        );
    }
    serde_json::json!({"metadata": {}, "nodes": {}, "sources": sources}).to_string()
}

#[test]
fn the_real_chinook_sources_resolve_to_pascal_case_relations_as_dbt_postgres_does() {
    let text = chinook_yaml();
    assert!(text.contains(CHINOOK_QUOTING), "the file's quoting block");
    let quoted = parse_document("chinook.yml", &text).unwrap();
    let rels = relations(&quoted);
    assert_eq!(rels.len(), 11);
    assert_eq!(
        rels[0],
        (
            "chinook".into(),
            "Artist".into(),
            vec!["ArtistId".into(), "Name".into()]
        )
    );
    assert!(rels
        .iter()
        .all(|(_, identifier, _)| identifier.starts_with(|c: char| c.is_ascii_uppercase())));

    // Without the block: dbt-postgres quotes by default, so nothing changes.
    let unquoted = parse_document("chinook.yml", &text.replace(CHINOOK_QUOTING, "")).unwrap();
    assert_eq!(relations(&unquoted), rels);

    // `identifier: false` folds the identifiers (only them).
    let folding = text.replace(CHINOOK_QUOTING, "    quoting:\n      identifier: false\n");
    let folded = parse_document("chinook.yml", &folding).unwrap();
    let expected: Vec<_> = rels
        .iter()
        .map(|(s, i, cols)| (s.clone(), i.to_ascii_lowercase(), cols.clone()))
        .collect();
    assert_eq!(relations(&folded), expected);
    assert_eq!(folded.tables[1].identifier, "album");

    // A manifest with the same settings agrees (null: dbt's default).
    for (quoting, yaml) in [
        (
            r#"{"database": true, "schema": true, "identifier": true, "column": null}"#,
            &quoted,
        ),
        (
            r#"{"database": null, "schema": null, "identifier": null, "column": null}"#,
            &unquoted,
        ),
        (
            r#"{"database": null, "schema": null, "identifier": false, "column": null}"#,
            &folded,
        ),
    ] {
        let manifest = parse_document("manifest.json", &manifest_like(&quoted, quoting)).unwrap();
        // (serde_json's map orders nodes and columns by key, so compare as sets.)
        let sorted = |c: &Contract| {
            let mut rels = relations(c);
            rels.iter_mut().for_each(|r| r.2.sort());
            rels.sort();
            rels
        };
        let (got, want) = (sorted(&manifest), sorted(yaml));
        assert_eq!(got, want, "{quoting}");
    }
}

// ---------------------------------------------------------------------------------------------
// drift_watch policy in dbt meta

#[test]
fn policy_meta_on_source_table_and_column_merges_down() {
    let c = parse(
        r#"
sources:
  - name: app
    meta:
      owner: data-team
      drift_watch: {undocumented: alert, ignore: [retyped]}
    tables:
      - name: plain
      - name: quiet
        meta:
          drift_watch: {undocumented: ignore}
        config:
          meta:
            drift_watch: {ignore: [added]}
        columns:
          - name: id
          - name: payload
            meta: {drift_watch: {ignore: [removed]}}
            config: {meta: {drift_watch: {ignore: true}}}
          - name: note
            config:
              meta:
                drift_watch:
                  ignore: [renamed, retyped]
  - name: other
    config:
      meta: {drift_watch: {undocumented: baseline}}
    meta: {drift_watch: {undocumented: ignore, ignore: [table_missing]}}
    tables: [{name: t}]
  - name: defaults
    tables: [{name: t, meta: {owner: x, drift_watch: {}}}]
"#,
    )
    .unwrap();
    let policy = |i: usize| {
        let p = &c.tables[i].policy;
        (p.undocumented, p.ignore.names())
    };
    assert_eq!(policy(0), (Undocumented::Alert, vec!["retyped"]));
    assert_eq!(
        policy(1),
        (Undocumented::Ignore, vec!["added", "retyped"]),
        "the table's undocumented wins; ignore sets add up"
    );
    assert_eq!(
        policy(2),
        (Undocumented::Baseline, vec!["table_missing"]),
        "config.meta wins key by key over meta"
    );
    assert_eq!(policy(3), (Undocumented::Baseline, vec![]));
    let ignores: Vec<_> = c.tables[1]
        .columns
        .iter()
        .map(|c| c.ignore.names())
        .collect();
    assert_eq!(
        ignores,
        [vec![], ChangeSet::ALL.names(), vec!["retyped", "renamed"]],
        "a column's ignore is its own; config.meta's replaces meta's"
    );
}

/// The error of `doc`, with its position checked against where `needle` starts.
fn yaml_error_at(doc: &str, needle: &str) -> String {
    let err = parse(doc).unwrap_err();
    let (line, column) = position_of(doc, needle);
    assert_eq!(
        (err.line, err.column),
        (Some(line), Some(column)),
        "{err} (expected at {needle:?})"
    );
    err.to_string()
}

#[test]
fn a_bad_drift_watch_key_value_or_change_kind_is_an_error_at_its_position() {
    let doc = "sources:\n  - name: x\n    tables:\n      - name: t\n        meta:\n          \
               drift_watch:\n            undocumneted: alert\n";
    assert_eq!(
        yaml_error_at(doc, "undocumneted"),
        "models/sources.yml:7:13: unknown drift_watch meta key \"undocumneted\" (expected \
         undocumented, ignore, severity, owner, target, live_schema)"
    );

    let doc = "sources:\n  - name: x\n    meta: {drift_watch: {undocumented: alrt}}\n    \
               tables: [{name: t}]\n";
    assert_eq!(
        yaml_error_at(doc, "alrt"),
        "models/sources.yml:3:40: drift_watch undocumented must be baseline, alert or ignore, \
         not \"alrt\""
    );

    let doc = "sources:\n  - name: x\n    tables:\n      - name: t\n        config:\n          \
               meta:\n            drift_watch:\n              ignore:\n                - added\n\
               \x20               - adedd\n";
    assert_eq!(
        yaml_error_at(doc, "adedd"),
        "models/sources.yml:10:19: unknown change kind \"adedd\" in drift_watch ignore \
         (expected added, removed, retyped, renamed, table_missing, undocumented)"
    );

    let column = |meta: &str| {
        format!(
            "sources:\n  - name: x\n    tables:\n      - name: t\n        columns:\n          \
             - name: c\n            meta: {meta}\n"
        )
    };
    let err = yaml_error_at(
        &column("{drift_watch: {undocumented: alert}}"),
        "undocumented",
    );
    assert!(
        err.ends_with(
            "drift_watch meta key \"undocumented\" applies to sources and tables, not columns \
             (expected ignore)"
        ),
        "{err}"
    );
    let err = yaml_error_at(&column("{drift_watch: {ignore: added}}"), "added");
    assert!(
        err.ends_with(
            "drift_watch ignore must be true or a list of change kinds (added, \
                       removed, retyped, renamed, table_missing, undocumented), not \"added\""
        ),
        "{err}"
    );
    let err = yaml_error_at(&column("{drift_watch: {ignore: [added, 3]}}"), "3]");
    assert!(
        err.ends_with(
            "drift_watch ignore must list change kinds (added, removed, retyped, \
                       renamed, table_missing, undocumented), not a number"
        ),
        "{err}"
    );
    let err = yaml_error_at(&column("{drift_watch: [ignore]}"), "[ignore]");
    assert!(
        err.ends_with("meta drift_watch must be a mapping (keys ignore), not a list"),
        "{err}"
    );
    let err = yaml_error_at(&column("{drift_watch: {quiet: true}}"), "quiet");
    assert!(
        err.ends_with("unknown drift_watch meta key \"quiet\" (expected ignore)"),
        "{err}"
    );
    // Other meta keys are the project's own business.
    let c = parse(&column("{owner: x, drift_watch: {ignore: []}, quiet: [1]}")).unwrap();
    assert!(c.tables[0].columns[0].ignore.is_empty());
    // `false` could not undo an ignore set above (sets add up), so it is refused.
    let err = yaml_error_at(&column("{drift_watch: {ignore: false}}"), "false");
    assert!(err.ends_with("undocumented), not false"), "{err}");
}

#[test]
fn drift_watch_meta_of_a_disabled_source_is_not_read() {
    let c = parse(
        "sources:\n  - name: off\n    config: {enabled: false}\n    meta: {drift_watch: {bad: 1}}\n    \
         tables: [{name: t}]\n",
    )
    .unwrap();
    assert!(c.tables.is_empty());
}

/// A one-line manifest with one source table; `node` is spliced into its node object.
fn manifest_node(node: &str) -> String {
    format!(
        r#"{{"metadata": {{}}, "nodes": {{}}, "sources": {{"source.p.app.users": {{"resource_type": "source", "source_name": "app", "name": "users", "schema": "app", {node}}}}}}}"#
    )
}

#[test]
fn manifest_policy_reads_source_meta_meta_config_meta_and_column_meta() {
    let doc = manifest_node(
        r#""source_meta": {"drift_watch": {"undocumented": "alert", "ignore": ["retyped"]}, "owner": "x"},
           "meta": {"drift_watch": {"undocumented": "ignore", "ignore": ["removed"]}},
           "config": {"enabled": true, "meta": {"drift_watch": {"ignore": ["added"]}}},
           "columns": {
             "a": {"name": "a", "meta": {"drift_watch": {"ignore": true}}},
             "b": {"name": "b", "meta": {}, "config": {"meta": {"drift_watch": {"ignore": ["renamed"]}}}},
             "c": {"name": "c", "meta": null}
           }"#,
    );
    let c = parse_document("m.json", &doc).unwrap();
    let t = &c.tables[0];
    assert_eq!(t.policy.undocumented, Undocumented::Ignore);
    assert_eq!(
        t.policy.ignore.names(),
        ["added", "retyped"],
        "config.meta's ignore replaces meta's, then the source's is added"
    );
    let ignores: Vec<_> = t.columns.iter().map(|c| c.ignore.names()).collect();
    assert_eq!(ignores, [ChangeSet::ALL.names(), vec!["renamed"], vec![]]);

    // The YAML that dbt compiled this from gives the same contract.
    let yaml = parse(
        r#"
sources:
  - name: app
    meta: {owner: x, drift_watch: {undocumented: alert, ignore: [retyped]}}
    tables:
      - name: users
        meta: {drift_watch: {undocumented: ignore, ignore: [removed]}}
        config: {meta: {drift_watch: {ignore: [added]}}}
        columns:
          - {name: a, meta: {drift_watch: {ignore: true}}}
          - {name: b, config: {meta: {drift_watch: {ignore: [renamed]}}}}
          - {name: c}
"#,
    )
    .unwrap();
    assert_eq!(yaml.tables[0].policy, t.policy);
    assert_eq!(yaml.tables[0].columns, t.columns);
}

#[test]
fn manifest_policy_errors_are_located_in_the_json() {
    let doc = manifest_node(r#""meta": {"drift_watch": {"undocumneted": "alert"}}"#);
    let err = parse_document("m.json", &doc).unwrap_err();
    let (line, column) = position_of(&doc, r#""undocumneted""#);
    assert_eq!(
        err.to_string(),
        format!(
            "m.json:{line}:{column}: unknown drift_watch meta key \"undocumneted\" (expected \
             undocumented, ignore, severity, owner, target, live_schema) (source.p.app.users)"
        )
    );

    let doc = manifest_node(r#""source_meta": {"drift_watch": {"undocumented": "loud"}}"#);
    let err = parse_document("m.json", &doc).unwrap_err();
    let (_, column) = position_of(&doc, r#""loud""#);
    assert_eq!((err.line, err.column), (Some(1), Some(column)), "{err}");
    assert!(err.message.contains("not \"loud\""), "{err}");

    // Multi-line, inside a column's config.meta, an escaped key before it.
    let doc = "{\"nodes\": {}, \"sources\": {\"source.p.app.users\": {\"source_name\": \"app\",\n \
               \"name\": \"users\", \"schema\": \"app\", \"columns\": {\"c\": {\"name\": \"c\",\n  \
               \"config\": {\"meta\": {\"drift_watch\": {\"ignore\" :\n   [\"added\", \"gone\"]}}}}}}}}";
    let err = parse_document("m.json", doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(4), Some(14)), "{err}");
    assert!(
        err.message
            .starts_with("unknown change kind \"gone\" in drift_watch ignore"),
        "{err}"
    );
    let doc = doc.replace(r#""ignore" :"#, r#""ig\"nore" :"#);
    let err = parse_document("m.json", &doc).unwrap_err();
    assert_eq!((err.line, err.column), (Some(3), Some(39)), "{err}");
    assert!(
        err.message
            .starts_with(r#"unknown drift_watch meta key "ig\"nore" (expected ignore)"#),
        "{err}"
    );
    let doc = manifest_node(r#""meta": {"drift_watch": "alert"}"#);
    let err = parse_document("m.json", &doc).unwrap_err();
    assert!(
        err.message.starts_with(
            "meta drift_watch must be a mapping (keys undocumented, ignore, severity, owner, target, live_schema), not a string"
        ),
        "{err}"
    );
}

#[test]
fn change_sets_and_undocumented_round_trip_their_names() {
    assert_eq!(ChangeSet::ALL.names().len(), Change::ALL.len());
    for c in Change::ALL {
        assert_eq!(Change::parse(c.as_str()), Some(c));
        let set = ChangeSet::from_names([c.as_str()]).unwrap();
        assert!(set.contains(c) && !set.is_empty());
        assert_eq!(set.names(), [c.as_str()]);
    }
    let set = ChangeSet::from_names(["undocumented", "added"]).unwrap();
    assert_eq!(set.names(), ["added", "undocumented"]);
    assert_eq!(set.union(ChangeSet::EMPTY), set);
    assert_eq!(set.union(ChangeSet::ALL), ChangeSet::ALL);
    assert!(ChangeSet::EMPTY.is_empty());
    assert_eq!(
        ChangeSet::from_names(["added", "nope"]).unwrap_err(),
        "unknown change kind \"nope\" (expected added, removed, retyped, renamed, \
         table_missing, undocumented)"
    );
    for u in [
        Undocumented::Baseline,
        Undocumented::Alert,
        Undocumented::Ignore,
    ] {
        assert_eq!(Undocumented::parse(u.as_str()), Some(u));
    }
    assert_eq!(Undocumented::default(), Undocumented::Baseline);
    assert_eq!(Undocumented::parse("Alert"), None);
}
