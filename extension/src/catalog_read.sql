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
-- Result: one row per live column, and one summary row; the non-null columns tell which.
--   a live column  (attnum non-null): relation (index into $1/$2), attnum, attname, atttypid,
--                  atttypmod, and user_type = format_type(atttypid, atttypmod) for types that
--                  are not built-in (oid >= 10000, FirstGenbkiObjectId: oids below it are
--                  hand-assigned and mean the same type on every server of every major; the rest
--                  are numbered by initdb or CREATE TYPE, so they are spelled here, by the
--                  target). Built-in types are compared by oid and spelled once per
--                  (oid, typmod) by the caller.
--   the summary    (summary non-null): one json object, everything else about the read (a few
--                  values, not one per column: kept off the column rows, which a target sends
--                  30,000 of, so that they stay narrow):
--                  relation_oids  per relation of $1/$2, in order: its pg_class.oid if it exists
--                                 as named with relkind r, p, v, m or f, else null;
--                  case_variants  [relation, schema, name] for each relation that does not exist
--                                 as named but does under a schema and name differing from it
--                                 only in case (what quoting rules get wrong); null when none;
--                  probes         per probe of $3.., in order: [oid, format_type] of the type on
--                                 the target, or [null, null] when it has no such type; null
--                                 when there are no probes;
--                  in_recovery    pg_is_in_recovery();
--                  replay_lag_ms  how far replay is behind what was received (0 when caught up,
--                                 null on a primary);
--                  replay_paused  pg_is_wal_replay_paused() (null on a primary).
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
       NULL::json AS summary
  FROM rel r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, json_build_object(
  'relation_oids',
    (SELECT json_agg(r.oid::int8 ORDER BY w.ord) FROM want w LEFT JOIN rel r ON r.ord = w.ord),
  'case_variants',
    (SELECT json_agg(json_build_array(w.ord, n.nspname, c.relname)
                     ORDER BY w.ord, n.nspname, c.relname)
       FROM missing w
       JOIN pg_namespace n ON lower(n.nspname) = lower(w.nsp)
       JOIN pg_class c ON c.relnamespace = n.oid AND lower(c.relname) = lower(w.rel)
                      AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      WHERE EXISTS (SELECT 1 FROM missing)),
  -- A user type is looked up by name in pg_type, in the schemas given: unlike to_regtype this
  -- needs no USAGE on the application's schemas.
  'probes',
    (SELECT json_agg(json_build_array(f.oid::int8, format_type(f.oid, NULL)) ORDER BY p.ord)
       FROM unnest($3::text[], $4::bool[], $5::text[], $6::text[], $7::text[])
            WITH ORDINALITY AS p(typname, arr, s1, s2, s3, ord)
       LEFT JOIN LATERAL (
           SELECT CASE WHEN p.arr THEN t.typarray ELSE t.oid END AS oid
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typname = p.typname AND n.nspname IN (p.s1, p.s2, p.s3)
            ORDER BY array_position(ARRAY[p.s1, p.s2, p.s3], n.nspname::text)
            LIMIT 1) f ON true),
  'in_recovery', pg_is_in_recovery(),
  'replay_lag_ms',
    CASE WHEN NOT pg_is_in_recovery() THEN NULL
         WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
         ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::int8 END,
  'replay_paused', CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END)
