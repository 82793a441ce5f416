-- drift_watch: the stored dbt source contract.
-- Everything lives in the extension's fixed schema `drift_watch`; see sql/public_api.sql for the
-- forwarding functions that make `SELECT * FROM drift_diff()` work on the default search_path.

-- One row per loaded document (a dbt YAML properties file or a manifest.json).
CREATE TABLE drift_watch.contract_origin (
    origin        text PRIMARY KEY CHECK (origin <> ''),
    document_kind text NOT NULL CHECK (document_kind IN ('yaml', 'manifest', 'model')),
    loaded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    loaded_by     name NOT NULL DEFAULT session_user
);

-- One row per enabled dbt source table; names are stored as Postgres stores them
-- (folded unless quoted), so matching against the catalog is exact. Documented columns are kept
-- as parallel arrays in document order (empty: the table is only checked for existence); one row
-- per table keeps a 30,000-column contract a 1,000-row read. The `contract` view unnests them.
CREATE TABLE drift_watch.contract_table (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin        text NOT NULL REFERENCES drift_watch.contract_origin ON DELETE CASCADE,
    table_no      integer NOT NULL,
    source_name   text NOT NULL,
    table_name    text NOT NULL,
    database_name text,
    schema_name   text NOT NULL,
    identifier    text NOT NULL,
    column_names  text[] NOT NULL DEFAULT '{}',
    data_types    text[] NOT NULL DEFAULT '{}',     -- NULL element: no data_type documented
    quoted        boolean[] NOT NULL DEFAULT '{}',
    -- Policy from the dbt project's `meta: {drift_watch: ...}` (source merged into table):
    -- what a live column the contract does not list is, and which change kinds to drop.
    undocumented  text NOT NULL DEFAULT 'baseline'
                  CHECK (undocumented IN ('baseline', 'alert', 'ignore')),
    ignore_changes text[] NOT NULL DEFAULT '{}',
    -- Whether dbt quotes the schema / identifier (explains a case-only mismatch).
    schema_quoted     boolean NOT NULL DEFAULT true,
    identifier_quoted boolean NOT NULL DEFAULT true,
    -- Per documented column: the change kinds its own meta ignores, comma-separated ('' none).
    column_ignore text[] NOT NULL DEFAULT '{}',
    -- Who owns the table (dbt meta owner key, or drift_watch: {owner: ...}): an email or an
    -- Asana user gid; and a severity that meta fixes for every change of the table.
    owner         text,
    severity      text CHECK (severity IN ('breaking', 'risky', 'info')),
    -- drift_watch: {target: ..., live_schema: ...} in dbt meta (map_sources overrides).
    meta_target      text,
    meta_live_schema text,
    CHECK (cardinality(data_types) = cardinality(column_names)
           AND cardinality(quoted) = cardinality(column_names)
           AND cardinality(column_ignore) IN (0, cardinality(column_names))),
    UNIQUE (origin, table_no),
    -- dbt itself refuses two definitions of source('s', 't'); so does the contract.
    CONSTRAINT contract_table_source_table_key UNIQUE (source_name, table_name)
);
CREATE INDEX contract_table_relation_idx ON drift_watch.contract_table (schema_name, identifier);
-- A target's tables (drift_watch._target_contract): by source name and by dbt meta.
CREATE INDEX contract_table_source_idx ON drift_watch.contract_table (source_name);
CREATE INDEX contract_table_meta_target_idx ON drift_watch.contract_table (meta_target)
    WHERE meta_target IS NOT NULL;

-- The dbt graph below the sources (see core/src/lineage.rs): models, snapshots and exposures,
-- with SQL only for a source's direct children, from a manifest or a pushed project's model
-- files and exposures. Replaced with its document like the contract tables.
CREATE TABLE drift_watch.lineage_node (
    origin        text NOT NULL REFERENCES drift_watch.contract_origin ON DELETE CASCADE,
    unique_id     text NOT NULL,
    resource_type text NOT NULL,
    name          text NOT NULL,
    file_path     text,
    code          text,
    compiled      boolean NOT NULL DEFAULT false,
    exposure_type text,
    url           text,
    owner_name    text,
    owner_email   text,
    PRIMARY KEY (origin, unique_id)
);
CREATE INDEX lineage_node_unique_id_idx ON drift_watch.lineage_node (unique_id);

-- child_id reads parent_id (a node), or the source table (source_name, table_name).
CREATE TABLE drift_watch.lineage_edge (
    origin      text NOT NULL REFERENCES drift_watch.contract_origin ON DELETE CASCADE,
    parent_id   text,
    source_name text,
    table_name  text,
    child_id    text NOT NULL,
    CHECK ((parent_id IS NULL) = (source_name IS NOT NULL AND table_name IS NOT NULL))
);
CREATE INDEX lineage_edge_parent_idx ON drift_watch.lineage_edge (parent_id);
CREATE INDEX lineage_edge_source_idx ON drift_watch.lineage_edge (source_name, table_name);
CREATE INDEX lineage_edge_origin_idx ON drift_watch.lineage_edge (origin);

-- Which target checks which dbt sources, and in which schema they live there
-- (drift_watch.map_sources). A target with mappings checks only the sources mapped to it; a
-- target without any checks the whole contract.
CREATE TABLE drift_watch.source_map (
    target         text NOT NULL CHECK (target <> ''),
    source_pattern text NOT NULL CHECK (source_pattern <> ''),
    live_schema    text CHECK (live_schema <> ''),
    mapped_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    mapped_by      name NOT NULL DEFAULT session_user,
    PRIMARY KEY (target, source_pattern)
);

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

-- Each contract table's mappings: (table, target, live schema). A SQL mapping whose pattern
-- matches the source wins; a source no SQL mapping matches follows its dbt meta
-- (drift_watch: {target, live_schema}).
CREATE FUNCTION drift_watch._source_targets()
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
CREATE FUNCTION drift_watch._target_contract(target text)
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

-- pg_dump keeps the contract (it is user data, not extension code).
SELECT pg_catalog.pg_extension_config_dump('drift_watch.source_map', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.lineage_node', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.lineage_edge', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.contract_origin', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.contract_table', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.contract_table_id_seq', '');

-- The contract as a person reads it: one row per documented column (or per table without any).
CREATE VIEW drift_watch.contract AS
SELECT t.origin, t.source_name, t.table_name, t.schema_name, t.identifier,
       c.column_name, c.data_type, c.quoted, t.undocumented, t.ignore_changes,
       NULLIF(c.ignore, '') AS column_ignore, t.owner, t.severity
FROM drift_watch.contract_table t
LEFT JOIN LATERAL unnest(t.column_names, t.data_types, t.quoted,
                         CASE WHEN cardinality(t.column_ignore) = 0
                              THEN array_fill(''::text, ARRAY[cardinality(t.column_names)])
                              ELSE t.column_ignore END) WITH ORDINALITY
          AS c(column_name, data_type, quoted, ignore, position) ON true
ORDER BY t.source_name, t.table_name, c.position;

-- For `drift-notifier contract push` of a dbt project: files that moved or were deleted under the
-- pushed folders must not linger. Returns the number of source tables removed.
CREATE FUNCTION drift_watch.forget_contracts_under(prefix text) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    IF prefix = '' THEN
        RAISE EXCEPTION 'drift_watch: prefix must not be empty' USING ERRCODE = '22023';
    END IF;
    LOCK TABLE drift_watch.contract_origin IN SHARE ROW EXCLUSIVE MODE;
    WITH gone AS (DELETE FROM drift_watch.contract_table t
                   WHERE starts_with(t.origin, prefix) RETURNING 1)
    SELECT count(*)::integer INTO n FROM gone;
    DELETE FROM drift_watch.contract_origin o WHERE starts_with(o.origin, prefix);
    RETURN n;
END
$$;

-- Maps the dbt sources whose name matches `source_pattern` (a LIKE pattern) to the foreign
-- server `target`, read in `live_schema` there when given (else the contract's schema). Returns
-- how many sources the pattern matches now (a pattern may name sources pushed later).
CREATE FUNCTION drift_watch.map_sources(target text, source_pattern text, live_schema text DEFAULT NULL)
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

-- Removes a mapping; true when there was one.
CREATE FUNCTION drift_watch.unmap_sources(target text, source_pattern text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE drift_watch.contract_origin IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM drift_watch.source_map m
     WHERE m.target = unmap_sources.target AND m.source_pattern = unmap_sources.source_pattern;
    RETURN FOUND;
END
$$;

-- Which sources each target covers (and where), and which sources no target covers (target
-- NULL; only when some source is mapped at all: otherwise every target checks everything).
CREATE VIEW drift_watch.target_sources AS
SELECT s.target, t.source_name, t.table_name, coalesce(s.live_schema, t.schema_name) AS live_schema,
       t.identifier
  FROM drift_watch.contract_table t
  JOIN drift_watch._source_targets() s ON s.table_id = t.id
UNION ALL
SELECT NULL, t.source_name, t.table_name, t.schema_name, t.identifier
  FROM drift_watch.contract_table t
 WHERE NOT EXISTS (SELECT 1 FROM drift_watch._source_targets() s WHERE s.table_id = t.id)
   AND EXISTS (SELECT 1 FROM drift_watch._source_targets())
ORDER BY 1 NULLS LAST, 2, 3;

-- What the given origins hold: sources, tables, documented columns.
CREATE FUNCTION drift_watch.contract_summary(origins text[])
RETURNS TABLE (sources bigint, tables bigint, columns bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(DISTINCT t.source_name), count(*),
           coalesce(sum(cardinality(t.column_names)), 0)::bigint
      FROM drift_watch.contract_table t WHERE t.origin = ANY (origins)
$$;
