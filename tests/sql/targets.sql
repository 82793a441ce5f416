-- Many targets from one audit database: which dbt sources each foreign server checks
-- (map_sources, or dbt meta), and in which schema they live there.
SET client_min_messages = warning;
DELETE FROM drift_watch.snapshot;

-- Two app databases behind one dbt project: `shop` lives in the app database (dbt reads it from
-- a replicated copy, raw_shop, in the warehouse), `music` in chinook_pascal.
SELECT load_contract('targets/sources.yml', $yaml$
version: 2
sources:
  - name: shop
    schema: raw_shop
    tables:
      - name: customers
        columns: [{name: id, data_type: bigint}, {name: email}, {name: full_name}, {name: tags}, {name: created_at}]
  - name: music
    schema: chinook
    tables:
      - name: Artist
        columns: [{name: ArtistId, data_type: integer, quote: true}, {name: Name, quote: true}]
  - name: billing
    schema: billing
    tables:
      - name: subscriptions
$yaml$);
-- Without mappings every target checks the whole contract: each reports the other's tables.
CREATE TEMP VIEW ours AS SELECT unnest(ARRAY['shop', 'music', 'billing', 'billing_meta']) AS source_name;
SELECT source_name, schema_name, table_name, change FROM drift_diff('chinook_pascal')
 WHERE source_name IN (SELECT * FROM ours) ORDER BY 1, 3;
SELECT source_name, schema_name, table_name, change FROM drift_diff('app')
 WHERE source_name IN (SELECT * FROM ours) ORDER BY 1, 3;
SELECT count(*) AS no_mapping_rows FROM drift_watch.target_sources;

-- Map them: each target checks only its sources, shop read in public.
SELECT drift_watch.map_sources('chinook_pascal', 'music') AS music;
SELECT drift_watch.map_sources('app', 'sho%', 'public') AS shop;
SELECT * FROM drift_diff('chinook_pascal');
SELECT * FROM drift_diff('app');
-- billing is mapped nowhere: the view says so.
SELECT * FROM drift_watch.target_sources WHERE source_name IN (SELECT * FROM ours);
-- Checks follow the mapping: snapshots in the live schema, nothing missing.
SELECT drift_watch.run_check('app') AS r1 \gset
SELECT status, deltas_found, deltas_new FROM drift_watch.runs WHERE run_id = :r1;
SELECT schema_name, identifier FROM drift_watch.snapshot WHERE target = 'app';
SELECT target, schema_name, table_name, source_names, documented_columns FROM drift_watch.coverage
 WHERE target = 'app';
-- The local target (this database) has no mappings: the whole contract, as before.
SELECT count(*) AS local_rows FROM drift_diff() WHERE source_name IN ('shop', 'music', 'billing');

-- The longest matching pattern decides a source's schema on a target; remapping replaces it.
SELECT drift_watch.map_sources('app', '%', 'nowhere') > 2 AS everything;
SELECT source_name, schema_name, table_name, change FROM drift_diff('app')
 WHERE source_name IN (SELECT * FROM ours) ORDER BY 1;
SELECT drift_watch.unmap_sources('app', '%') AS removed, drift_watch.unmap_sources('app', '%') AS again;

-- dbt meta declares a mapping, versioned with the project; SQL overrides it.
SELECT load_contract('targets/billing.yml', $yaml$
version: 2
sources:
  - name: billing_meta
    schema: raw_billing
    meta: {drift_watch: {target: app, live_schema: billing}}
    tables:
      - name: subscriptions
        identifier: subscriptions
        columns: [{name: id}, {name: plan}, {name: Seats, quote: true}]
$yaml$);
SELECT target, source_name, live_schema FROM drift_watch.target_sources WHERE source_name = 'billing_meta';
SELECT source_name, schema_name, table_name, change FROM drift_diff('app')
 WHERE source_name IN (SELECT * FROM ours) ORDER BY 1;
SELECT drift_watch.map_sources('chinook_pascal', 'billing_meta') AS sql_wins;
SELECT target, source_name, live_schema FROM drift_watch.target_sources WHERE source_name = 'billing_meta';
SELECT drift_watch.unmap_sources('chinook_pascal', 'billing_meta');
-- A target that mappings name checks exactly what they map, even nothing (not the whole contract).
SELECT drift_watch.map_sources('chinook_pascal', 'no_such_source%') AS matches_now;
SELECT count(*) AS rows_on_chinook FROM drift_diff('chinook_pascal');
SELECT drift_watch.unmap_sources('chinook_pascal', 'no_such_source%');
-- LIKE escapes: an escaped _ matches only itself.
SELECT drift_watch.map_sources('chinook_pascal', 'billing\_meta') AS escaped,
       drift_watch.map_sources('chinook_pascal', 'billing\_metaX') AS escaped_none,
       drift_watch.map_sources('chinook_pascal', 'billing_me_a') AS wildcard;
SELECT source_name, table_name FROM drift_watch.target_sources WHERE target = 'chinook_pascal';
SELECT drift_watch.unmap_sources('chinook_pascal', p) FROM unnest(ARRAY['billing\_meta', 'billing\_metaX', 'billing_me_a']) p;

-- Bad input.
SELECT drift_watch.map_sources('no_such_server', 'shop');
SELECT drift_watch.map_sources('app', '');
SELECT drift_watch.map_sources('app', 'shop', '');
SELECT drift_watch.map_sources('app', 'shop\');
SELECT load_contract('targets/bad.yml', E'sources:\n  - name: x\n    meta: {drift_watch: {target: [a]}}\n    tables: [{name: t}]\n');
-- Rights: the loader maps, the checker reads the view, nobody else does either.
CREATE ROLE tg_loader IN ROLE drift_watch_loader;
CREATE ROLE tg_checker IN ROLE drift_watch_checker;
SET ROLE tg_loader;
SELECT drift_watch.map_sources('chinook_pascal', 'music') AS loader_maps;
RESET ROLE;
SET ROLE tg_checker;
SELECT count(*) > 0 AS checker_reads FROM drift_watch.target_sources;
SELECT drift_watch.map_sources('chinook_pascal', 'music');
INSERT INTO drift_watch.source_map (target, source_pattern) VALUES ('app', 'x');
RESET ROLE;
DROP ROLE tg_loader;
DROP ROLE tg_checker;

-- Clean up for the next suite.
DELETE FROM drift_watch.source_map;
SELECT forget_contract('targets/sources.yml'), forget_contract('targets/billing.yml');
DELETE FROM drift_watch.snapshot;
