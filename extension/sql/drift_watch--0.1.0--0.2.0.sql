-- drift_watch 0.1.0 -> 0.2.0 (ALTER EXTENSION drift_watch UPDATE). Never edited after release:
-- a later change to the extension's SQL ships its own drift_watch--0.2.0--<next>.sql.
\echo Use "ALTER EXTENSION drift_watch UPDATE TO '0.2.0'" to load this file. \quit

-- Many targets at scale: a target's contract is found through indexes, in time proportional to
-- its own tables (not the whole contract); a target that a mapping names checks exactly what is
-- mapped to it, even nothing.
CREATE INDEX contract_table_source_idx ON drift_watch.contract_table (source_name);
CREATE INDEX contract_table_meta_target_idx ON drift_watch.contract_table (meta_target)
    WHERE meta_target IS NOT NULL;

-- The contract tables `target` checks ('' or NULL: this database), with the schema each is read
-- in. A target that some mapping names (a SQL mapping, or a source's dbt meta) checks exactly the
-- tables mapped to it; any other target checks the whole contract in its own schemas.
-- The work is proportional to the target's own tables plus the number of distinct source names,
-- not to the whole contract: patterns are matched against the source names (found by skipping
-- through the source_name index, one probe per name), then the matched sources' tables are
-- fetched by index; meta mappings through an index on meta_target.
CREATE OR REPLACE FUNCTION drift_watch._target_contract(target text)
RETURNS TABLE (table_id bigint, live_schema text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE
    pat AS MATERIALIZED (
        SELECT m.source_pattern, m.live_schema FROM drift_watch.source_map m
         WHERE m.target = coalesce(_target_contract.target, '')),
    names (n) AS (
        SELECT min(t.source_name) FROM drift_watch.contract_table t WHERE EXISTS (SELECT 1 FROM pat)
        UNION ALL
        SELECT (SELECT min(t.source_name) FROM drift_watch.contract_table t WHERE t.source_name > names.n)
          FROM names WHERE names.n IS NOT NULL),
    by_sql AS MATERIALIZED (
        SELECT DISTINCT ON (names.n) names.n AS source_name, p.live_schema
          FROM names JOIN pat p ON names.n LIKE p.source_pattern
         ORDER BY names.n, length(p.source_pattern) DESC, p.source_pattern),
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
     WHERE NOT EXISTS (SELECT 1 FROM pat) AND NOT EXISTS (SELECT 1 FROM by_meta)
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
