-- What a change breaks downstream (drift_watch._impact, drift_watch.impact()): GitLab's real dbt
-- 0.19 manifest against this database holding its source relations, and a column-level case
-- from model SQL files, loaded the way `drift-notifier contract push` loads a project.
SET client_min_messages = warning;

-- 1. The real GitLab manifest: lineage is stored with the contract, bounded.
\getenv manifest_path DW_MANIFEST
SELECT load_contract('gitlab/manifest.json', pg_read_file(:'manifest_path')) AS gitlab_tables;
SELECT resource_type, count(*), count(code) AS with_sql FROM drift_watch.lineage_node
 GROUP BY 1 ORDER BY 1;
SELECT count(*) > 3000 AS many_edges, count(*) FILTER (WHERE parent_id IS NULL) > 700 AS from_sources
  FROM drift_watch.lineage_edge;
-- Its relations, created here (this database is the target; first_check.sql's tables in
-- public are still there), by tests/fixtures/contract_relations.sql.
CREATE TEMP TABLE gitlab_schemas AS
SELECT s AS schema_name FROM dw_create_contract_relations() AS s;
SELECT drift_watch.run_check() AS gl1 \gset
SELECT status, deltas_new FROM drift_watch.runs WHERE run_id = :gl1;
-- zuora.account disappears: breaking, with its direct children, 172 models downstream and the
-- three exposures (dashboards and applications) it feeds.
SELECT format('DROP TABLE %I.%I', schema_name, identifier) AS drop_account
  FROM drift_watch.contract_table WHERE source_name = 'zuora' AND table_name = 'account' \gset
:drop_account;
SELECT drift_watch.run_check() AS gl2 \gset
SELECT status, deltas_new FROM drift_watch.runs WHERE run_id = :gl2;
SELECT change, severity, owner, direct_children, models_downstream, exposures
  FROM drift_watch.impact(NULL)
 WHERE delta_id IN (SELECT id FROM drift_watch.delta WHERE first_seen_run = :gl2);
-- The same impact was stored on the delta when it was first seen, and the outbox item carries
-- its severity.
SELECT d.severity, d.impact->'models' AS models, jsonb_array_length(d.impact->'exposures') AS exposures,
       o.severity AS item_severity, o.owner AS item_owner
  FROM drift_watch.delta d JOIN drift_watch.outbox o ON o.id = d.announce_outbox_id
 WHERE d.first_seen_run = :gl2;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT schema_name FROM gitlab_schemas LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', r.schema_name);
    END LOOP;
END
$$;
SELECT forget_contract('gitlab/manifest.json');
SELECT count(*) AS lineage_left FROM drift_watch.lineage_node;
SELECT drift_watch.run_check() IS NOT NULL AS cleared;
DELETE FROM drift_watch.snapshot WHERE target = '';

-- 2. Column level: models that read a column, one that does not, one `select *`; an exposure;
--    owners from meta. Documents as `contract push` sends them (<project>/<path>).
CREATE SCHEMA imp;
CREATE TABLE imp.customers (id bigint, email text, phone text, note text);
CREATE TABLE imp.orders (id bigint, customer_id bigint, total numeric);
CREATE TABLE imp.events (id bigint, kind text);
SELECT load_contract('imp_proj/models/_sources.yml', $yaml$
version: 2
sources:
  - name: imp
    meta: {owner: ana@example.com}
    tables:
      - name: customers
        columns: [{name: id}, {name: email}, {name: phone}, {name: note}]
      - name: orders
        columns: [{name: id}, {name: customer_id}, {name: total}]
      - name: events
        meta: {owner: "1200000000000042", drift_watch: {severity: info}}
        columns: [{name: id}, {name: kind}]
exposures:
  - name: churn_board
    type: dashboard
    owner: {name: Carol, email: carol@example.com}
    depends_on: ["ref('fct_customers')"]
$yaml$);
SELECT load_contract('imp_proj/models/stg_customers.sql', E'select\n  id,\n  phone -- the number\nfrom {{ source(''imp'', ''customers'') }}');
SELECT load_contract('imp_proj/models/stg_emails.sql', E'select id, email\nfrom {{ source(''imp'', ''customers'') }}\nwhere ''phone'' <> email');
SELECT load_contract('imp_proj/models/base_customers.sql', E'-- raw\nselect * from {{ source(''imp'', ''customers'') }}');
SELECT load_contract('imp_proj/models/fct_customers.sql', E'select * from {{ ref(''stg_customers'') }}');
SELECT origin, document_kind FROM drift_watch.contract_origin WHERE origin LIKE 'imp_proj/%' ORDER BY 1;
SELECT drift_watch.run_check() AS c1 \gset
ALTER TABLE imp.customers DROP COLUMN phone;
ALTER TABLE imp.customers RENAME COLUMN note TO remark;
ALTER TABLE imp.orders ALTER COLUMN total TYPE bigint;
ALTER TABLE imp.events DROP COLUMN kind;
SELECT drift_watch.run_check() AS c2 \gset
-- phone: read by stg_customers (line 3) and by base_customers' select * (line 2), not by
-- stg_emails (its 'phone' is a string literal); breaking. remark (renamed from note): read by no
-- SQL, but the table feeds an exposure; breaking. orders.total: no model reads orders; risky.
-- events: its meta fixes severity info.
SELECT change, column_name, severity, owner, models_downstream, exposures, reads
  FROM drift_watch.impact(NULL) WHERE schema_name = 'imp' ORDER BY column_name;
-- One outbox item per owner, each with only its own deltas and its most urgent severity.
SELECT o.owner, o.severity, count(d.*) AS deltas, string_agg(d.column_name, ', ' ORDER BY d.column_name)
  FROM drift_watch.outbox o JOIN drift_watch.delta d ON d.announce_outbox_id = o.id
 WHERE o.run_id = :c2 GROUP BY o.id, o.owner, o.severity ORDER BY o.owner;
-- Column references are identifier-aware.
SELECT * FROM drift_watch._column_refs(E'select "Phone", phone_no,\n  t.phone, ''phone''\n/* phone */ from t', 'phone');
SELECT * FROM drift_watch._column_refs(E'select count(*), a * b,\n t.* from t', 'x');
-- The checker reads impact; nobody else may.
SET ROLE drift_watch_checker;
SELECT count(*) > 0 AS checker_reads FROM drift_watch.impact(NULL);
RESET ROLE;
CREATE ROLE imp_nobody;
SET ROLE imp_nobody;
SELECT count(*) FROM drift_watch.impact(NULL);
RESET ROLE;
DROP ROLE imp_nobody;
-- A bad owner or severity is a located error, and nothing is stored.
SELECT load_contract('imp_proj/models/bad.yml', E'sources:\n  - name: x\n    tables:\n      - name: t\n        meta: {drift_watch: {severity: urgent}}\n');

-- A ref cycle (two models reading each other; dbt refuses it, a hostile push need not) still
-- terminates, each model counted once.
SELECT load_contract('imp_proj/models/cyc_a.sql', E'select * from {{ source(''imp'', ''customers'') }} join {{ ref(''cyc_b'') }}');
SELECT load_contract('imp_proj/models/cyc_b.sql', E'select * from {{ ref(''cyc_a'') }}');
SELECT column_name, models_downstream FROM drift_watch.impact(NULL)
 WHERE schema_name = 'imp' AND column_name = 'phone';

-- Clean up for the next suite.
SELECT drift_watch.forget_contracts_under('imp_proj/');
DROP SCHEMA imp CASCADE;
SELECT drift_watch.run_check() IS NOT NULL AS cleared;
DELETE FROM drift_watch.snapshot WHERE target = '';
