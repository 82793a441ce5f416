-- Real dbt projects without noise: names as dbt-postgres resolves them, a quiet first check,
-- policy in the dbt YAML, and two dbt sources on one relation. Real files from ../shared/realdata:
-- the Chinook sources file (documents only some columns, as real projects do) against the real
-- Chinook schema (app cluster, foreign server chinook_pascal), and GitLab's dbt 0.19 manifest.
SET client_min_messages = warning;
\getenv realdata DW_REALDATA
SELECT pg_read_file(:'realdata' || '/chinook/dbt_sources_chinook-pipeline.yml') AS chinook \gset

-- 1. The first check of a partly documented project announces nothing: the live columns the
--    contract does not list are that table's known undocumented columns.
SELECT load_contract('chinook/sources.yml', :'chinook');
SELECT drift_watch.run_check('chinook_pascal') AS r1 \gset
SELECT status, deltas_found, deltas_new, deltas_open, deltas_undocumented
  FROM drift_watch.runs WHERE run_id = :r1;
SELECT count(*) AS outbox_items FROM drift_watch.outbox WHERE run_id = :r1;
SELECT count(*) AS open_drift FROM drift_watch.open_deltas WHERE target = 'chinook_pascal';
SELECT table_name, count(*) AS undocumented
  FROM drift_watch.undocumented_columns WHERE target = 'chinook_pascal' GROUP BY 1 ORDER BY 1;
SELECT table_name, source_names, live_columns, documented_columns, undocumented_columns
  FROM drift_watch.coverage WHERE target = 'chinook_pascal';
SELECT change, count(*) FROM drift_diff('chinook_pascal') GROUP BY 1 ORDER BY 1;
-- A second run: still nothing new.
SELECT drift_watch.run_check('chinook_pascal') AS r1b \gset
SELECT status, deltas_new, deltas_undocumented FROM drift_watch.runs WHERE run_id = :r1b;

-- 2. A column the app ships afterwards is drift: exactly one `added`, one task listing only it.
SELECT dblink_exec('chinook_pascal', 'ALTER TABLE chinook."Album" ADD COLUMN "Rating" int');
SELECT drift_watch.run_check('chinook_pascal') AS r2 \gset
SELECT status, deltas_found, deltas_new, deltas_undocumented FROM drift_watch.runs WHERE run_id = :r2;
SELECT o.kind, d.table_name, d.column_name, d.change, d.live_type
  FROM drift_watch.outbox o, drift_watch.outbox_deltas(o.id) d WHERE o.run_id = :r2;
SELECT change, count(*) FROM drift_diff('chinook_pascal') GROUP BY 1 ORDER BY 1;

-- 3. Policy in the dbt YAML. `undocumented: alert` (meta or config.meta) restores the old report.
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'  - name: chinook\n',
               E'  - name: chinook\n    meta: {drift_watch: {undocumented: alert}}\n'));
SELECT change, count(*) FROM drift_diff('chinook_pascal') GROUP BY 1 ORDER BY 1;
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'  - name: chinook\n',
               E'  - name: chinook\n    config: {meta: {drift_watch: {undocumented: ignore}}}\n'));
SELECT change, count(*) FROM drift_diff('chinook_pascal') GROUP BY 1 ORDER BY 1;
-- Ignore one change kind on one table: the Album addition disappears, nothing else does.
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'        identifier: Album\n',
               E'        identifier: Album\n        meta:\n          drift_watch:\n            ignore: [added]\n'));
SELECT change, count(*) FROM drift_diff('chinook_pascal') GROUP BY 1 ORDER BY 1;
-- A typo'd key is an error naming file, line and column; the stored contract is unchanged.
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'        identifier: Album\n',
               E'        identifier: Album\n        meta:\n          drift_watch:\n            undocumneted: alert\n'));
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'        identifier: Album\n',
               E'        identifier: Album\n        meta:\n          drift_watch:\n            ignore: [added, dropped]\n'));
SELECT count(*) AS album_ignores FROM drift_watch.contract_table
 WHERE origin = 'chinook/sources.yml' AND identifier = 'Album' AND ignore_changes = '{added}';

-- 4. Quoting as dbt-postgres does it: schema and identifier are quoted unless quoting says false.
--    Without the file's quoting block every PascalCase table is still found.
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'    quoting:\n      database: true\n      schema: true\n      identifier: true\n', ''));
SELECT count(*) AS table_missing FROM drift_diff('chinook_pascal') WHERE change = 'table_missing';
-- With quoting: {identifier: false} dbt queries chinook.album, which does not exist; the detail
-- says what dbt queries and what the database has.
SELECT load_contract('chinook/sources.yml',
       replace(:'chinook', E'    quoting:\n      database: true\n      schema: true\n      identifier: true\n',
               E'    quoting: {identifier: false}\n'));
SELECT table_name, change, detail FROM drift_diff('chinook_pascal')
 WHERE change = 'table_missing' ORDER BY table_name;
-- A manifest with the same settings agrees (null quoting = dbt's default: quoted).
SELECT forget_contract('chinook/sources.yml');
SELECT load_contract('chinook/manifest.json', $json$
{"metadata": {"dbt_version": "1.11.0"}, "nodes": {}, "sources": {
  "source.p.chinook.album": {"source_name": "chinook", "name": "album", "schema": "chinook",
    "identifier": "Album", "quoting": {"database": null, "schema": null, "identifier": null},
    "columns": {"AlbumId": {"name": "AlbumId", "quote": true, "data_type": null}}},
  "source.p.chinook.artist": {"source_name": "chinook", "name": "artist", "schema": "chinook",
    "identifier": "Artist", "quoting": {"identifier": false}, "columns": {}}}}
$json$);
SELECT table_name, change, detail FROM drift_diff('chinook_pascal')
 WHERE change IN ('table_missing', 'removed') ORDER BY table_name;
SELECT forget_contract('chinook/manifest.json');
SELECT dblink_exec('chinook_pascal', 'ALTER TABLE chinook."Album" DROP COLUMN "Rating"');

-- 5. Two dbt sources on one relation (GitLab's real manifest has two such pairs): the check reads
--    it once, snapshots it once, reports its drift once, naming every source.
\getenv manifest_path DW_MANIFEST
SELECT load_contract('gitlab/manifest.json', pg_read_file(:'manifest_path')) AS gitlab_tables;
SELECT schema_name, identifier, string_agg(source_name || '.' || table_name, ', ' ORDER BY source_name) AS sources
  FROM drift_watch.contract_table GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2;
-- Its relations, created here (this database is the target): one table per relation, with the
-- contract's columns, typed where the type is a Postgres type (GitLab's are Snowflake's), by
-- tests/fixtures/contract_relations.sql.
CREATE TEMP TABLE gitlab_schemas AS
SELECT s AS schema_name FROM dw_create_contract_relations() AS s;
SELECT drift_watch.run_check() AS gl1 \gset
SELECT status, error, deltas_new FROM drift_watch.runs WHERE run_id = :gl1;
SELECT change, count(*) FROM drift_watch.open_deltas WHERE target IS NULL GROUP BY 1 ORDER BY 1;
SELECT count(*) AS snapshots, count(DISTINCT (schema_name, identifier)) AS relations
  FROM drift_watch.snapshot WHERE target = '';
-- Neither source documents columns of the shared relations; dropping one is one delta, naming
-- both dbt sources.
DROP TABLE account_usage.query_history;
SELECT drift_watch.run_check() AS gl2 \gset
SELECT status, deltas_new FROM drift_watch.runs WHERE run_id = :gl2;
SELECT source_name, schema_name, table_name, change, detail
  FROM drift_watch.open_deltas WHERE target IS NULL;
SELECT count(*) AS outbox_items FROM drift_watch.outbox WHERE run_id = :gl2;

-- Clean up for the next suite.
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
SELECT drift_watch.run_check() IS NOT NULL AS cleared;
-- Later suites diff these targets as never checked.
DELETE FROM drift_watch.snapshot WHERE target IN ('', 'chinook_pascal');
