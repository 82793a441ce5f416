-- drift_watch 0.1.0 -> 0.2.0 (ALTER EXTENSION drift_watch UPDATE). Never edited after release:
-- a later change to the extension's SQL ships its own drift_watch--0.2.0--<next>.sql.
\echo Use "ALTER EXTENSION drift_watch UPDATE TO '0.2.0'" to load this file. \quit

-- Many targets at scale: a target's contract is found through indexes, in time proportional to
-- its own tables (not the whole contract); a target that a mapping names checks exactly what is
-- mapped to it, even nothing.
CREATE INDEX contract_table_source_idx ON drift_watch.contract_table (source_name);
CREATE INDEX contract_table_meta_target_idx ON drift_watch.contract_table (meta_target)
    WHERE meta_target IS NOT NULL;

-- The dbt sources SQL mappings give `target` (NULL: every target): (source name, target, live
-- schema); per target, the longest matching pattern decides. Patterns are matched against the
-- distinct source names, found by skipping through the source_name index (one probe per name),
-- so the cost follows the number of sources, not of contract tables (bench/scale.sh).
CREATE FUNCTION drift_watch._mapped_sources(target text)
RETURNS TABLE (source_name text, target text, live_schema text)
LANGUAGE sql STABLE SECURITY DEFINER
-- A few sources per target: so the planner fetches their tables by index, not by a hash of all.
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE
    pat AS MATERIALIZED (
        SELECT m.target, m.source_pattern, m.live_schema FROM drift_watch.source_map m
         WHERE _mapped_sources.target IS NULL OR m.target = _mapped_sources.target),
    names (n) AS (
        SELECT min(t.source_name) FROM drift_watch.contract_table t WHERE EXISTS (SELECT 1 FROM pat)
        UNION ALL
        SELECT (SELECT min(t.source_name) FROM drift_watch.contract_table t WHERE t.source_name > names.n)
          FROM names WHERE names.n IS NOT NULL)
    SELECT DISTINCT ON (names.n, p.target) names.n, p.target, p.live_schema
      FROM names JOIN pat p ON names.n LIKE p.source_pattern
     ORDER BY names.n, p.target, length(p.source_pattern) DESC, p.source_pattern
$$;
-- As every function of a fresh install: no EXECUTE for PUBLIC (called by definer functions).
REVOKE ALL ON FUNCTION drift_watch._mapped_sources(text) FROM PUBLIC;

-- Each contract table's mappings: (table, target, live schema). A SQL mapping whose pattern
-- matches the source wins; a source no SQL mapping matches follows its dbt meta
-- (drift_watch: {target, live_schema}).
CREATE OR REPLACE FUNCTION drift_watch._source_targets()
RETURNS TABLE (table_id bigint, target text, live_schema text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH by_sql AS MATERIALIZED (SELECT * FROM drift_watch._mapped_sources(NULL))
    SELECT t.id, s.target, s.live_schema
      FROM by_sql s JOIN drift_watch.contract_table t ON t.source_name = s.source_name
    UNION ALL
    SELECT t.id, t.meta_target, t.meta_live_schema
      FROM drift_watch.contract_table t
     WHERE t.meta_target IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM by_sql s WHERE s.source_name = t.source_name)
$$;

-- The contract tables `target` checks ('' or NULL: this database), with the schema each is read
-- in. A target that some mapping names (a SQL mapping, or a source's dbt meta) checks exactly the
-- tables mapped to it; any other target checks the whole contract in its own schemas.
-- The work follows the target's own tables and the number of sources, not the whole contract:
-- its SQL-mapped sources come from _mapped_sources, their tables by index; meta mappings through
-- an index on meta_target.
CREATE OR REPLACE FUNCTION drift_watch._target_contract(target text)
RETURNS TABLE (table_id bigint, live_schema text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH
    by_sql AS MATERIALIZED (
        SELECT s.source_name, s.live_schema
          FROM drift_watch._mapped_sources(coalesce(_target_contract.target, '')) s),
    by_meta AS MATERIALIZED (
        SELECT t.id, t.meta_live_schema, t.source_name FROM drift_watch.contract_table t
         WHERE t.meta_target = coalesce(_target_contract.target, '')),
    meta_names AS (
        SELECT d.n FROM (SELECT DISTINCT b.source_name AS n FROM by_meta b) d
         WHERE NOT EXISTS (SELECT 1 FROM drift_watch.source_map m WHERE d.n LIKE m.source_pattern))
    SELECT t.id, coalesce(s.live_schema, t.schema_name)
      FROM by_sql s JOIN drift_watch.contract_table t ON t.source_name = s.source_name
    UNION ALL
    SELECT b.id, coalesce(b.meta_live_schema, t.schema_name)
      FROM by_meta b JOIN meta_names mn ON mn.n = b.source_name
      JOIN drift_watch.contract_table t ON t.id = b.id
    UNION ALL
    SELECT t.id, t.schema_name
      FROM drift_watch.contract_table t
     WHERE NOT EXISTS (SELECT 1 FROM drift_watch.source_map m
                        WHERE m.target = coalesce(_target_contract.target, ''))
       AND NOT EXISTS (SELECT 1 FROM by_meta)
$$;

-- map_sources refuses a pattern ending in an unpaired escape character.
CREATE OR REPLACE FUNCTION drift_watch.map_sources(target text, source_pattern text, live_schema text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    IF target IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server s WHERE s.srvname = target) THEN
        RAISE EXCEPTION 'drift_watch: unknown target "%": there is no foreign server of that name', target
              USING ERRCODE = '42704',
                    HINT = 'Map sources to a foreign server (CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw).';
    END IF;
    IF source_pattern IS NULL OR source_pattern = '' THEN
        RAISE EXCEPTION 'drift_watch: source_pattern must be a LIKE pattern on dbt source names'
              USING ERRCODE = '22023';
    END IF;
    IF live_schema = '' THEN
        RAISE EXCEPTION 'drift_watch: live_schema must be a schema name or NULL' USING ERRCODE = '22023';
    END IF;
    -- A pattern LIKE rejects (ending in an unpaired escape character) would fail later checks.
    IF source_pattern ~ '(^|[^\\])(\\\\)*\\$' THEN
        RAISE EXCEPTION 'drift_watch: source_pattern % is not a valid LIKE pattern', pg_catalog.quote_literal(source_pattern)
              USING ERRCODE = '22025', HINT = 'A backslash escapes the next character; end the pattern with \\ for a literal backslash.';
    END IF;
    LOCK TABLE drift_watch.contract_origin IN SHARE ROW EXCLUSIVE MODE;
    INSERT INTO drift_watch.source_map AS m (target, source_pattern, live_schema)
    VALUES (map_sources.target, map_sources.source_pattern, map_sources.live_schema)
    ON CONFLICT ON CONSTRAINT source_map_pkey
    DO UPDATE SET live_schema = EXCLUDED.live_schema, mapped_at = pg_catalog.now(),
                  mapped_by = session_user;
    SELECT count(DISTINCT t.source_name)::integer INTO n
      FROM drift_watch.contract_table t WHERE t.source_name LIKE map_sources.source_pattern;
    RETURN n;
END
$$;

-- coverage and _impact resolve each target's contract once, not once per relation.
-- Each target's contract is resolved once (not once per relation), then joined by name.
CREATE OR REPLACE VIEW drift_watch.coverage AS
WITH contract AS MATERIALIZED (
    SELECT g.target, m.table_id, m.live_schema
      FROM (SELECT DISTINCT target FROM drift_watch.snapshot) g
     CROSS JOIN LATERAL drift_watch._target_contract(g.target) m),
documented AS (
    SELECT m.target, m.live_schema, t.identifier,
           string_agg(DISTINCT t.source_name, ', ') AS source_names,
           array_agg(DISTINCT n) FILTER (WHERE n IS NOT NULL) AS names
      FROM contract m
      JOIN drift_watch.contract_table t ON t.id = m.table_id
      LEFT JOIN LATERAL unnest(t.column_names) AS n ON true
     GROUP BY m.target, m.live_schema, t.identifier)
SELECT NULLIF(s.target, '') AS target, s.schema_name, s.identifier AS table_name,
       c.source_names, cardinality(s.column_names) AS live_columns,
       d.documented AS documented_columns,
       cardinality(s.column_names) - d.documented AS undocumented_columns
  FROM drift_watch.snapshot s
  LEFT JOIN documented c
    ON c.target = s.target AND c.live_schema = s.schema_name AND c.identifier = s.identifier
  CROSS JOIN LATERAL (
       SELECT count(*)::integer AS documented FROM unnest(s.column_names) AS l
        WHERE l = ANY (coalesce(c.names, '{}'))) d
 ORDER BY 1, 2, 3;

CREATE OR REPLACE FUNCTION drift_watch._impact(ids bigint[])
RETURNS TABLE (delta_id bigint, severity text, owner text, impact jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
WITH RECURSIVE
d AS (
    SELECT d.id, d.target, d.schema_name, d.table_name, d.change,
           CASE WHEN d.change IN ('removed', 'retyped') THEN d.column_name
                WHEN d.change = 'renamed' THEN d.renamed_from END AS read_column
      FROM drift_watch.delta d WHERE d.id = ANY (ids)),
-- The contract tables on each delta's relation, as its target reads them (source mappings).
rel AS (
    SELECT r.target, r.schema_name, r.table_name, t.source_name AS src, t.table_name AS tbl,
           t.owner, t.severity
      FROM (SELECT DISTINCT target, schema_name, table_name FROM d) r
      JOIN (SELECT g.target, m.table_id, m.live_schema
              FROM (SELECT DISTINCT target FROM d) g
             CROSS JOIN LATERAL drift_watch._target_contract(g.target) m) c
        ON c.target = r.target AND c.live_schema = r.schema_name
      JOIN drift_watch.contract_table t ON t.id = c.table_id
     WHERE t.identifier = r.table_name),
reach (target, schema_name, table_name, node, direct) AS (
    SELECT DISTINCT r.target, r.schema_name, r.table_name, e.child_id, true
      FROM rel r JOIN drift_watch.lineage_edge e
        ON e.source_name = r.src AND e.table_name = r.tbl
    UNION
    SELECT r.target, r.schema_name, r.table_name, e.child_id, false
      FROM reach r JOIN drift_watch.lineage_edge e ON e.parent_id = r.node),
reached AS (
    SELECT r.target, r.schema_name, r.table_name, r.node, bool_or(r.direct) AS direct
      FROM reach r GROUP BY 1, 2, 3, 4),
node AS (
    SELECT DISTINCT ON (n.unique_id) n.*
      FROM drift_watch.lineage_node n
     WHERE n.unique_id IN (SELECT node FROM reached)
     ORDER BY n.unique_id, n.origin),
per_table AS (
    SELECT r.target, r.schema_name, r.table_name,
           count(*) FILTER (WHERE n.resource_type = 'model') AS models,
           coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                        'name', n.name, 'type', n.exposure_type, 'url', n.url,
                        'owner', n.owner_name, 'email', n.owner_email)) ORDER BY n.name)
                    FILTER (WHERE n.resource_type = 'exposure'), '[]') AS exposures
      FROM reached r JOIN node n ON n.unique_id = r.node
     GROUP BY 1, 2, 3),
per_delta AS (
    SELECT d.id,
           jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'name', n.name, 'type', n.resource_type, 'file', n.file_path,
               'lines', CASE WHEN d.read_column IS NOT NULL THEN to_jsonb(c.lines) END,
               'reads_all', CASE WHEN d.read_column IS NOT NULL THEN to_jsonb(c.star_lines) END))
               ORDER BY n.name) AS direct,
           bool_or(cardinality(c.lines) > 0 OR cardinality(c.star_lines) > 0) AS read
      FROM d
      JOIN reached r ON r.target = d.target AND r.schema_name = d.schema_name
                    AND r.table_name = d.table_name AND r.direct
      JOIN node n ON n.unique_id = r.node
      LEFT JOIN LATERAL drift_watch._column_refs(n.code, d.read_column) c
             ON d.read_column IS NOT NULL
     GROUP BY d.id),
meta AS (
    SELECT r.target, r.schema_name, r.table_name,
           (array_agg(r.owner ORDER BY r.src, r.tbl) FILTER (WHERE r.owner IS NOT NULL))[1] AS owner,
           (array_agg(r.severity ORDER BY array_position(ARRAY['breaking', 'risky', 'info'], r.severity))
                FILTER (WHERE r.severity IS NOT NULL))[1] AS severity
      FROM rel r GROUP BY 1, 2, 3)
SELECT d.id,
       coalesce(m.severity,
                CASE WHEN d.change IN ('added', 'undocumented') THEN 'info'
                     WHEN jsonb_array_length(coalesce(t.exposures, '[]')) > 0 THEN 'breaking'
                     WHEN d.change = 'table_missing' AND p.direct IS NOT NULL THEN 'breaking'
                     WHEN p.read THEN 'breaking'
                     ELSE 'risky' END),
       m.owner,
       -- NULL only when no lineage is stored at all (nothing is known either way).
       CASE WHEN t.schema_name IS NOT NULL OR EXISTS (SELECT 1 FROM drift_watch.lineage_edge) THEN
           jsonb_build_object('direct', coalesce(p.direct, '[]'), 'models', coalesce(t.models, 0),
                              'exposures', coalesce(t.exposures, '[]'),
                              'column', d.read_column) END
  FROM d
  LEFT JOIN per_table t USING (target, schema_name, table_name)
  LEFT JOIN per_delta p ON p.id = d.id
  LEFT JOIN meta m USING (target, schema_name, table_name)
$$;
