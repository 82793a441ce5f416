-- Real application schemas (../shared/realdata, loaded by tests/realdata/load.sh into the app
-- cluster): a typed contract generated from an older schema, diffed against the newer schema
-- through a foreign server, must report exactly what changed. "Exactly" is checked against an
-- independent oracle written in SQL over both catalogs, and the rows are listed for review.
SET client_min_messages = warning;

-- Live columns of ordinary and partitioned tables on a server. canonical = true formats types
-- with search_path = pg_catalog (every user type schema-qualified), as drift_diff compares them;
-- false gives the spellings a person or a generator would write (unqualified where visible).
CREATE FUNCTION pg_temp.catalog_of(server text, canonical boolean)
RETURNS TABLE (nsp text, rel text, col text, attnum int, typ text) LANGUAGE sql AS $fn$
  SELECT * FROM dblink(server,
    CASE WHEN canonical THEN 'SET search_path = pg_catalog; ' ELSE '' END || $q$
    SELECT n.nspname::text, c.relname::text, a.attname::text, a.attnum::int,
           format_type(a.atttypid, a.atttypmod)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  $q$) AS t(nsp text, rel text, col text, attnum int, typ text)
$fn$;

-- A dbt sources file for every table of a server: one source per schema, quoted names,
-- every column with its data_type.
CREATE FUNCTION pg_temp.contract_yaml(server text) RETURNS text LANGUAGE sql AS $fn$
  SELECT E'version: 2\nsources:\n' || string_agg(src, '' ORDER BY nsp)
    FROM (SELECT nsp, format(E'  - name: %s\n    quoting: {schema: true, identifier: true}\n    tables:\n%s',
                             to_json(nsp), string_agg(tbl, '' ORDER BY rel)) AS src
            FROM (SELECT nsp, rel,
                         format(E'      - name: %s\n        columns:\n%s', to_json(rel),
                                string_agg(format(E'          - {name: %s, quote: true, data_type: %s}\n',
                                                  to_json(col), to_json(typ)), '' ORDER BY attnum)) AS tbl
                    FROM pg_temp.catalog_of(server, false) GROUP BY nsp, rel) t
           GROUP BY nsp) s
$fn$;

-- The oracle: what changed between two servers' catalogs, by the rules of the issue.
CREATE FUNCTION pg_temp.expected_drift(old_server text, new_server text)
RETURNS TABLE (schema_name text, table_name text, column_name text, change text,
               contract_type text, live_type text) LANGUAGE sql AS $fn$
  WITH o AS (SELECT * FROM pg_temp.catalog_of(old_server, true)),
       n AS (SELECT * FROM pg_temp.catalog_of(new_server, true)),
       common AS (SELECT DISTINCT nsp, rel FROM o INTERSECT SELECT DISTINCT nsp, rel FROM n),
       removed AS (SELECT o.* FROM o JOIN common USING (nsp, rel)
                    WHERE NOT EXISTS (SELECT 1 FROM n WHERE (n.nsp, n.rel, n.col) = (o.nsp, o.rel, o.col))),
       added AS (SELECT n.* FROM n JOIN common USING (nsp, rel)
                  WHERE NOT EXISTS (SELECT 1 FROM o WHERE (o.nsp, o.rel, o.col) = (n.nsp, n.rel, n.col))),
       renames AS (SELECT r.nsp, r.rel, r.col AS old_col, a.col AS new_col, r.typ
                     FROM removed r JOIN added a USING (nsp, rel, typ)
                    WHERE (SELECT count(*) FROM removed x WHERE (x.nsp, x.rel) = (r.nsp, r.rel)) = 1
                      AND (SELECT count(*) FROM added x WHERE (x.nsp, x.rel) = (r.nsp, r.rel)) = 1)
  SELECT nsp, rel, NULL, 'table_missing', NULL, NULL
    FROM (SELECT DISTINCT nsp, rel FROM o EXCEPT SELECT nsp, rel FROM common) m
  UNION ALL
  SELECT nsp, rel, col, 'removed', typ, NULL FROM removed
   WHERE (nsp, rel) NOT IN (SELECT nsp, rel FROM renames)
  UNION ALL
  SELECT nsp, rel, col, 'added', NULL, typ FROM added
   WHERE (nsp, rel) NOT IN (SELECT nsp, rel FROM renames)
  UNION ALL
  SELECT nsp, rel, new_col, 'renamed', typ, typ FROM renames
  UNION ALL
  SELECT o.nsp, o.rel, o.col, 'retyped', o.typ, n.typ
    FROM o JOIN n USING (nsp, rel, col) WHERE o.typ <> n.typ
$fn$;

CREATE TEMP TABLE pairs (old_server text, new_server text);
INSERT INTO pairs VALUES ('gisia_2025_10', 'gisia_2025_11'), ('gisia_2025_11', 'gisia_2026_05'),
                         ('pagila_2018', 'pagila_2022'), ('mb_2022', 'mb_head');
CREATE TEMP TABLE results (old_server text, new_server text, source_tables int, drift_rows int,
                           missing_from_drift int, unexpected_in_drift int);
CREATE TEMP TABLE drift AS SELECT ''::text AS pair, * FROM drift_diff() LIMIT 0;

DO $do$
DECLARE p record; tables int;
BEGIN
  FOR p IN SELECT * FROM pairs LOOP
    tables := load_contract('generated/' || p.old_server || '.yml', pg_temp.contract_yaml(p.old_server));
    INSERT INTO drift SELECT p.old_server || ' -> ' || p.new_server, d.* FROM drift_diff(p.new_server) d;
    INSERT INTO results
    SELECT p.old_server, p.new_server, tables,
           (SELECT count(*) FROM drift WHERE pair = p.old_server || ' -> ' || p.new_server),
           (SELECT count(*) FROM (SELECT * FROM pg_temp.expected_drift(p.old_server, p.new_server)
                                  EXCEPT SELECT schema_name, table_name, column_name, change, contract_type, live_type
                                           FROM drift WHERE pair = p.old_server || ' -> ' || p.new_server) x),
           (SELECT count(*) FROM (SELECT schema_name, table_name, column_name, change, contract_type, live_type
                                    FROM drift WHERE pair = p.old_server || ' -> ' || p.new_server
                                  EXCEPT SELECT * FROM pg_temp.expected_drift(p.old_server, p.new_server)) x);
    PERFORM forget_contract('generated/' || p.old_server || '.yml');
  END LOOP;
END
$do$;

-- Both columns of zeros: drift_diff reports exactly the oracle's changes.
SELECT * FROM results ORDER BY old_server;
SELECT pair, change, count(*) FROM drift GROUP BY pair, change ORDER BY pair, change;
-- Every delta, for review.
SELECT pair, schema_name, table_name, column_name, change, contract_type, live_type, detail
  FROM drift ORDER BY pair, schema_name, table_name, column_name NULLS FIRST, change;

-- The same contract against itself: no drift (every generated spelling resolves on the target,
-- including domains such as pagila's year and enums such as mpaa_rating).
SELECT load_contract('generated/pagila_2022.yml', pg_temp.contract_yaml('pagila_2022')) AS pagila_tables;
SELECT count(*) AS self_drift FROM drift_diff('pagila_2022');
SELECT forget_contract('generated/pagila_2022.yml');
SELECT load_contract('generated/mb_head.yml', pg_temp.contract_yaml('mb_head')) AS mb_tables;
SELECT count(*) AS self_drift FROM drift_diff('mb_head');
SELECT forget_contract('generated/mb_head.yml');

-- Real third-party dbt sources files, as written.
\getenv realdata DW_REALDATA
-- Chinook: quoted PascalCase identifiers and quote: true columns match the 2022 schema ...
SELECT load_contract('chinook/sources.yml', pg_read_file(:'realdata' || '/chinook/dbt_sources_chinook-pipeline.yml'));
SELECT * FROM drift_diff('chinook_pascal');
-- ... and against the snake_case rename of 2024 every table is gone (dbt would fail the same way).
SELECT change, count(*) FROM drift_diff('chinook_snake') GROUP BY change;
SELECT forget_contract('chinook/sources.yml');
-- Table-list-only sources: only existence is checked.
SELECT load_contract('musicbrainz/sources.yml', pg_read_file(:'realdata' || '/musicbrainz/dbt_sources_geomusic_musicbrainz.yml'));
SELECT * FROM drift_diff('mb_head');
SELECT forget_contract('musicbrainz/sources.yml');
SELECT load_contract('pagila/jeanneta.yml', pg_read_file(:'realdata' || '/pagila/dbt_sources_dvdrental_jeanneta.yml'));
SELECT * FROM drift_diff('pagila_2022');
SELECT forget_contract(origin) FROM drift_watch.contract_origin;
