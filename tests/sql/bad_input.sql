-- Bad documents get a clear error naming origin, line and column, and the stored contract is
-- left exactly as it was.
SET client_min_messages = warning;
SELECT load_contract('models/good.yml', $yaml$
sources:
  - name: app
    tables:
      - name: users
        columns: [{name: id, data_type: int}]
$yaml$);
CREATE TEMP TABLE before AS SELECT * FROM drift_watch.contract;

-- Malformed YAML (an unclosed flow sequence), to the same origin.
SELECT load_contract('models/good.yml', E'sources:\n  - name: app\n    tables: [\n      {name: users\n');
-- Bad indentation.
SELECT load_contract('models/broken.yml', E'sources:\n  - name: app\n    tables:\n      - name: users\n     columns: []\n');
-- The wrong shape: sources must be a list, a table needs a name.
SELECT load_contract('models/broken.yml', 'sources: {name: app}');
SELECT load_contract('models/broken.yml', E'sources:\n  - name: app\n    tables:\n      - identifier: users\n');
-- Jinja other than env_var/var with a default names the file, line and key.
SELECT load_contract('models/broken.yml', E'sources:\n  - name: app\n    tables:\n      - name: users\n        identifier: "{{ target.schema }}_users"\n');
SELECT load_contract('models/broken.yml', E'sources:\n  - name: app\n    schema: "{{ env_var(''APP_SCHEMA'') }}"\n');
-- Malformed manifest JSON.
SELECT load_contract('target/manifest.json', E'{\n  "metadata": {},\n  "sources": {\n    "source.a.b.c": {"source_name": "b", "name": "c", "schema": "s",}\n  }\n}');
-- A manifest source without a schema.
SELECT load_contract('target/manifest.json', '{"nodes": {}, "sources": {"source.a.b.c": {"source_name": "b", "name": "c"}}}');
-- A YAML alias bomb ("billion laughs"): refused with bounded memory and time.
SELECT load_contract('models/bomb.yml',
  'a0: &a0 [x, x, x, x, x, x, x, x, x, x]' || E'\n' ||
  (SELECT string_agg(format('a%s: &a%s [%s]', i, i, rtrim(repeat(format('*a%s, ', i - 1), 10), ', ')), E'\n')
     FROM generate_series(1, 12) i) || E'\nsources: *a12\n');
-- A document far larger than any properties file.
SELECT load_contract('models/huge.yml', 'sources: []' || E'\n#' || repeat('x', 17000000));
-- The same source table from a second origin (dbt refuses this too).
SELECT load_contract('models/dup.yml', 'sources: [{name: app, tables: [{name: users}]}]');
-- Twice in one file.
SELECT load_contract('models/dup.yml', E'sources:\n  - name: x\n    tables:\n      - name: t\n      - name: t\n');
-- Empty origin; NULL arguments return NULL (strict), storing nothing.
SELECT load_contract('', 'sources: []');
SELECT load_contract(NULL, 'sources: []') IS NULL AS null_origin_is_null;

-- Nothing changed.
SELECT (SELECT count(*) FROM (SELECT * FROM drift_watch.contract EXCEPT SELECT * FROM before) x) AS added,
       (SELECT count(*) FROM (SELECT * FROM before EXCEPT SELECT * FROM drift_watch.contract) x) AS lost;
SELECT origin FROM drift_watch.contract_origin ORDER BY origin;

-- Errors carry SQLSTATEs an application can branch on.
\set VERBOSITY sqlstate
SELECT load_contract('models/broken.yml', 'sources: {name: app}');
SELECT load_contract('models/dup.yml', 'sources: [{name: app, tables: [{name: users}]}]');
SELECT * FROM drift_diff('no_such_server');
SELECT * FROM drift_diff('app_down');
SELECT * FROM drift_diff('app_unmapped');
\set VERBOSITY default

SELECT forget_contract(origin) FROM drift_watch.contract_origin;
