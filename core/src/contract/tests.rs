use super::*;

fn parse(doc: &str) -> Result<Contract, ContractError> {
    parse_document("models/sources.yml", doc)
}

#[test]
fn dbt_defaults_schema_identifier_and_folding() {
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
        orders.schema, "app",
        "schema defaults to the source name, folded"
    );
    assert_eq!(orders.identifier, "orders");
    assert_eq!(orders.database.as_deref(), Some("analytics"));
    assert!(orders.columns.is_empty());
    let customers = &c.tables[1];
    assert_eq!(customers.table_name, "customers");
    assert_eq!(customers.identifier, "customer_v2");
    let names: Vec<_> = customers.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "Email Address", "nick"]);
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
    assert_eq!(t.columns[0].name, "ArtistId");
    assert_eq!(
        t.columns[1].name, "name",
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
    assert_eq!(c.tables[0].schema, "core");
    assert_eq!(c.tables[0].identifier, "t1");

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
    assert_eq!((t.schema.as_str(), t.identifier.as_str()), ("app", "Users"));
    let cols: Vec<_> = t
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_deref()))
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
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/realdata/manifests/gitlab_analytics_manifest_dbt0.19.1_2022-02.json.gz"
    );
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path}: the tests read ../shared/realdata beside the checkout"
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
}

#[test]
fn every_real_sources_file_parses() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/realdata");
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
