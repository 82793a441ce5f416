-- load_contract / forget_contract: dbt's rules, origins that add up and replace, the view.
SET client_min_messages = warning;

-- A properties file: models and unknown keys ignored, schema defaults to the source name,
-- identifier overrides name, disabled sources/tables skipped, unquoted names fold.
SELECT load_contract('models/app/sources.yml', $yaml$
version: 2
models:
  - name: stg_orders
    columns: [{name: id}]
sources:
  - name: App
    database: analytics
    loader: fivetran
    tables:
      - name: Customers
        identifier: customers
        freshness: {warn_after: {count: 1, period: day}}
        columns:
          - name: ID
            data_type: bigint
            tests: [unique, not_null]
          - name: Email
            description: "primary contact"
  - name: billing
    schema: "{{ env_var('BILLING_SCHEMA', 'billing') }}"
    tables:
      - name: subscriptions
        identifier: "{{ var('subs_table', 'subscriptions') }}"
        columns:
          - name: Seats
            quote: true
      - name: retired
        config: {enabled: false}
  - name: legacy
    enabled: false
    tables: [{name: anything}]
$yaml$) AS tables_loaded;

SELECT origin, source_name, table_name, schema_name, identifier, column_name, data_type, quoted
  FROM drift_watch.contract;

-- A second origin adds up; reloading the first replaces only its own entries.
SELECT load_contract('models/other.yml', 'sources: [{name: public, tables: [{name: orders}]}]');
SELECT load_contract('models/app/sources.yml',
                     'sources: [{name: App, tables: [{name: Customers, identifier: customers}]}]');
SELECT origin, document_kind, count(*) OVER () AS origins FROM drift_watch.contract_origin ORDER BY origin;
SELECT origin, source_name, table_name, column_name FROM drift_watch.contract;

-- A manifest is detected from its content; its disabled sources are not in `sources`.
SELECT load_contract('target/manifest.json', $json${
  "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"},
  "nodes": {"model.shop.stg": {"resource_type": "model", "columns": {}}},
  "sources": {
    "source.shop.shop.orders_v2": {
      "resource_type": "source", "source_name": "shop", "name": "orders_v2", "identifier": "Orders",
      "schema": "shop", "database": "app", "quoting": {"identifier": true},
      "columns": {"id": {"name": "id", "data_type": "int8", "quote": null}}
    }
  },
  "disabled": {"source.shop.shop.old": [{"name": "old"}]}
}$json$) AS manifest_tables;
SELECT origin, source_name, table_name, schema_name, identifier, column_name, data_type
  FROM drift_watch.contract WHERE origin = 'target/manifest.json';

-- forget_contract returns how many tables it removed; unknown origins remove nothing.
SELECT forget_contract('models/other.yml'), forget_contract('never/loaded.yml');
SELECT origin FROM drift_watch.contract_origin ORDER BY origin;

-- The real 20 MB GitLab manifest (dbt 0.19.1): 747 enabled sources.
\getenv manifest_path DW_MANIFEST
SELECT load_contract('gitlab/manifest.json', pg_read_file(:'manifest_path')) AS gitlab_sources;
SELECT count(DISTINCT source_name) AS source_names, count(*) AS tables
  FROM drift_watch.contract_table WHERE origin = 'gitlab/manifest.json';
SELECT forget_contract('gitlab/manifest.json');

-- Clean up for the next suite.
SELECT forget_contract(origin) FROM drift_watch.contract_origin;
