-- drift_watch's read of a live catalog: the one statement a run sends (extension/src/catalog.rs).
--
-- Runs locally through SPI with its inputs bound as parameters, and on a target through dblink
-- with each input substituted as one escaped literal (the same text either way; catalog.rs
-- replaces the $n outside comments and string literals). It must run with
-- search_path = pg_catalog, pg_temp: format_type then qualifies every type outside pg_catalog,
-- so the spellings do not depend on the caller's path.
--
-- Inputs:
--   $1 name[]  the schemas of the relations the contract names;
--   $2 name[]  their names: relation i is ($1[i], $2[i]), i from 1;
--   $3 text[]  user types to probe for: pg_type.typname;
--   $4 bool[]  whether the probe is the array type of that typname;
--   $5 text[], $6 text[], $7 text[]  the schemas to look probe i up in, in that order (NULL: none).
--   $3 to $7 have the same length (0 when the contract names no user type).
--
-- Result: every row is exactly one of the following; the non-null columns tell which.
--   a live column  (attnum non-null): relation, attnum, attname, atttypid, atttypmod, and
--                  user_type = format_type(atttypid, atttypmod) for types that are not built-in
--                  (oid >= 10000, FirstGenbkiObjectId: oids below it are hand-assigned and mean
--                  the same type on every server of every major; the rest are numbered by initdb
--                  or CREATE TYPE, so they are spelled here, by the target). Built-in types are
--                  compared by oid and spelled once per (oid, typmod) by the caller.
--   a relation     (relation_oid non-null): relation, relation_oid = its pg_class.oid. Only
--                  relations that exist, as named, with relkind r, p, v, m or f.
--   a case variant (variant_name non-null): relation, variant_schema, variant_name: a relation
--                  that does not exist as named, but does under a schema and name differing from
--                  it only in case (what quoting rules get wrong).
--   a probe        (probe non-null): probe (index into $3), probe_type = the type's oid on the
--                  target and probe_spelling its format_type, both NULL when there is no such type.
--   freshness      (in_recovery non-null): one row, the target's replication state:
--                  pg_is_in_recovery(); replay_lag_ms, how far replay is behind what was
--                  received (0 when caught up, NULL on a primary); pg_is_wal_replay_paused()
--                  (NULL on a primary).
WITH want AS MATERIALIZED (
    SELECT w.nsp, w.rel, w.ord::int4 AS ord
      FROM unnest($1::name[], $2::name[]) WITH ORDINALITY AS w(nsp, rel, ord)),
rel AS MATERIALIZED (
    SELECT w.ord, c.oid
      FROM want w
      JOIN pg_namespace n ON n.nspname = w.nsp
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel
                     AND c.relkind IN ('r', 'p', 'v', 'm', 'f')),
missing AS MATERIALIZED (
    SELECT w.* FROM want w WHERE NOT EXISTS (SELECT 1 FROM rel r WHERE r.ord = w.ord))
SELECT r.ord AS relation, a.attnum::int4 AS attnum, a.attname::text AS attname,
       a.atttypid AS atttypid, a.atttypmod AS atttypmod,
       CASE WHEN a.atttypid >= 10000 THEN format_type(a.atttypid, a.atttypmod) END AS user_type,
       NULL::oid AS relation_oid, NULL::text AS variant_schema, NULL::text AS variant_name,
       NULL::int4 AS probe, NULL::oid AS probe_type, NULL::text AS probe_spelling,
       NULL::bool AS in_recovery, NULL::int8 AS replay_lag_ms, NULL::bool AS replay_paused
  FROM rel r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT r.ord, NULL, NULL, NULL, NULL, NULL, r.oid, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM rel r
UNION ALL
SELECT w.ord, NULL, NULL, NULL, NULL, NULL, NULL, n.nspname::text, c.relname::text,
       NULL, NULL, NULL, NULL, NULL, NULL
  FROM missing w
  JOIN pg_namespace n ON lower(n.nspname) = lower(w.nsp)
  JOIN pg_class c ON c.relnamespace = n.oid AND lower(c.relname) = lower(w.rel)
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
 WHERE EXISTS (SELECT 1 FROM missing)
UNION ALL
-- A user type is looked up by name in pg_type, in the schemas given: unlike to_regtype this needs
-- no USAGE on the application's schemas.
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       p.ord::int4, f.oid, format_type(f.oid, NULL), NULL, NULL, NULL
  FROM unnest($3::text[], $4::bool[], $5::text[], $6::text[], $7::text[])
       WITH ORDINALITY AS p(typname, arr, s1, s2, s3, ord)
  LEFT JOIN LATERAL (
      SELECT CASE WHEN p.arr THEN t.typarray ELSE t.oid END AS oid
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE t.typname = p.typname AND n.nspname IN (p.s1, p.s2, p.s3)
       ORDER BY array_position(ARRAY[p.s1, p.s2, p.s3], n.nspname::text)
       LIMIT 1) f ON true
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::int8 END,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END
