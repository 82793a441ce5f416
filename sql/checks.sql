-- drift_watch: scheduled checks. A run reads the live schema once, compares it with the contract
-- and the stored baselines, and turns the result into a standing record: one row per drift, new
-- once, resolved when it goes away, announced through an outbox the notifier drains.
-- `target` is the foreign server name, or '' for the current database.

CREATE TABLE drift_watch.check_run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target          text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'succeeded', 'failed', 'stale', 'abandoned')),
    error           text,
    sqlstate        text,
    -- Reads of the target this run made (transient errors are retried within the run).
    attempts        integer,
    -- The target's state as the read saw it: a replica or not, how far its replay is behind
    -- what it received, whether replay is paused; and a note (e.g. the target was promoted).
    in_recovery     boolean,
    replay_lag      interval,
    replay_paused   boolean,
    note            text,
    -- The transaction that began the run: only it may finish the run (see _finish_check).
    began_xact      xid8,
    deltas_found    integer,
    deltas_new      integer,
    deltas_resolved integer,
    deltas_open     integer,
    -- Live columns the contract does not list, baselined at a table's first check: coverage,
    -- shown in drift_watch.undocumented_columns, never announced.
    deltas_undocumented integer,
    notified        boolean NOT NULL DEFAULT false
);
CREATE INDEX check_run_target_idx ON drift_watch.check_run (target, id DESC);

-- Per relation, the live columns a check compares with by attnum (see core `Baseline`): taken
-- at first sight, retaken when the table is re-created or its contract entry changes.
CREATE TABLE drift_watch.snapshot (
    target               text NOT NULL,
    schema_name          text NOT NULL,
    identifier           text NOT NULL,
    rel_oid              bigint NOT NULL,
    contract_fingerprint text NOT NULL,
    taken_run            bigint NOT NULL REFERENCES drift_watch.check_run ON DELETE CASCADE,
    attnums              integer[] NOT NULL,
    column_names         text[] NOT NULL,
    type_oids            bigint[] NOT NULL,
    typmods              integer[] NOT NULL,
    type_names           text[] NOT NULL,
    PRIMARY KEY (target, schema_name, identifier)
);

-- What the notifier delivers. One row per announcement: the new deltas of a run, a resolution
-- follow-up for an earlier announcement (`parent_id`), a run that failed after one that had not,
-- or the first good run after a failure (`recovered`, a follow-up to that failure's task).
-- Claimed with FOR UPDATE SKIP LOCKED; only a 2xx from Asana sets delivered_at.
CREATE TABLE drift_watch.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES drift_watch.check_run,
    kind            text NOT NULL CHECK (kind IN ('new_deltas', 'resolved', 'run_failed', 'recovered')),
    target          text NOT NULL,
    parent_id       bigint REFERENCES drift_watch.outbox,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- A stable marker written into the Asana task, to find it again after a crash between
    -- Asana's 201 and the acknowledgement (Asana has no idempotency keys).
    marker          text NOT NULL DEFAULT pg_catalog.md5(pg_catalog.random()::text || pg_catalog.clock_timestamp()::text),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    last_attempt_at timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    -- Asana gids are decimal numbers; nothing else may ever reach a URL path.
    asana_task_gid  text CHECK (asana_task_gid ~ '^[0-9]{1,32}$'),
    -- The current claim (outbox_claim): only its holder may acknowledge or postpone the item.
    claim_token     uuid,
    -- A follow-up's comment was accepted by Asana (its completion may still be pending): a
    -- retry completes the task without posting the comment again.
    commented_at    timestamptz,
    -- new_deltas: one item per owner and run (NULL: unowned), and its most urgent severity.
    owner           text,
    severity        text CHECK (severity IN ('breaking', 'risky', 'info'))
);
CREATE INDEX outbox_pending_idx ON drift_watch.outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- One record per drift. `fingerprint` identifies it (target, relation, column, change, types);
-- at most one open record per fingerprint, and a drift that comes back after being resolved is
-- a new record.
CREATE TABLE drift_watch.delta (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target             text NOT NULL,
    fingerprint        text NOT NULL,
    source_name        text NOT NULL,
    schema_name        text NOT NULL,
    table_name         text NOT NULL,
    column_name        text,
    change             text NOT NULL,
    contract_type      text,
    live_type          text,
    detail             text,
    -- For a rename: the column's old name (as stored, not parsed back out of `detail`).
    renamed_from       text,
    first_seen_run     bigint NOT NULL REFERENCES drift_watch.check_run,
    last_seen_run      bigint NOT NULL REFERENCES drift_watch.check_run,
    resolved_run       bigint REFERENCES drift_watch.check_run,
    first_seen_at      timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    resolved_at        timestamptz,
    announce_outbox_id bigint REFERENCES drift_watch.outbox,
    resolve_outbox_id  bigint REFERENCES drift_watch.outbox,
    -- Classified when first seen (drift_watch._impact): severity, the table's owner, and what it
    -- breaks downstream as the lineage stood then (NULL: no lineage known for the table).
    severity           text CHECK (severity IN ('breaking', 'risky', 'info')),
    owner              text,
    impact             jsonb
);
CREATE UNIQUE INDEX delta_open_fingerprint_idx ON drift_watch.delta (target, fingerprint)
    WHERE resolved_run IS NULL;
CREATE INDEX delta_announce_idx ON drift_watch.delta (announce_outbox_id);

-- Noise control, applied before deltas are recorded (drift_diff() itself is unfiltered). NULL
-- matches anything; patterns are LIKE patterns; column_pattern matches '' for table-level rows.
CREATE TABLE drift_watch.ignore_rule (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target         text,
    source_name    text,
    schema_pattern text NOT NULL DEFAULT '%',
    table_pattern  text NOT NULL DEFAULT '%',
    column_pattern text NOT NULL DEFAULT '%',
    change         text CHECK (change IN ('added', 'removed', 'retyped', 'renamed', 'table_missing',
                                          'undocumented')),
    note           text,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Per-target settings of a check; a target without a row uses the defaults shown. Set them as
-- the extension's owner, e.g.
--   INSERT INTO drift_watch.target_setting (target, max_replay_lag) VALUES ('app_replica', '15 min')
--   ON CONFLICT (target) DO UPDATE SET max_replay_lag = EXCLUDED.max_replay_lag;
CREATE TABLE drift_watch.target_setting (
    target            text PRIMARY KEY,
    -- Set on the target's session for the catalog read: a locked catalog or a slow replica ends
    -- the read (and the run, recorded as failed) instead of hanging it.
    statement_timeout interval NOT NULL DEFAULT '60 s' CHECK (statement_timeout >= '1 ms'),
    lock_timeout      interval NOT NULL DEFAULT '10 s' CHECK (lock_timeout >= '1 ms'),
    -- Transient errors (connection failures, 40001, 40P01, 57P01-57P03, 53300) are retried this
    -- many times in all, with growing waits, as long as the run stays within retry_window.
    retry_attempts    integer NOT NULL DEFAULT 3 CHECK (retry_attempts BETWEEN 1 AND 10),
    retry_window      interval NOT NULL DEFAULT '2 min',
    -- A replica whose replay is further behind than this is stale: its run resolves nothing.
    max_replay_lag    interval NOT NULL DEFAULT '1 hour'
);
SELECT pg_catalog.pg_extension_config_dump('drift_watch.target_setting', '');

-- The settings of a target (its row, or the defaults).
CREATE FUNCTION drift_watch._target_setting(p_target text)
RETURNS drift_watch.target_setting LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ROW(coalesce(p_target, ''), coalesce(s.statement_timeout, '60 s'),
               coalesce(s.lock_timeout, '10 s'), coalesce(s.retry_attempts, 3),
               coalesce(s.retry_window, '2 min'), coalesce(s.max_replay_lag, '1 hour')
           )::drift_watch.target_setting
      FROM (SELECT 1) one
      LEFT JOIN drift_watch.target_setting s ON s.target = coalesce(p_target, '')
$$;

-- SQLSTATEs worth another read within the run: the connection broke or could not be made, or
-- the target cancelled the query for reasons that pass (a hot-standby conflict, a restart).
CREATE FUNCTION drift_watch._retryable(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT state LIKE '08%' OR state IN ('40001', '40P01', '57P01', '57P02', '57P03', '53300')
$$;

-- Serialises checks of one target: a row lock that only drift_watch's own (definer) functions
-- can take, since nobody is granted anything on this table (unlike an advisory lock, whose key
-- anyone can compute and hold).
CREATE TABLE drift_watch.run_lock (
    target text PRIMARY KEY
);

-- pg_dump keeps the run state (runs, baselines, deltas, outbox) with their identity sequences,
-- so a restored audit database announces nothing twice.
SELECT pg_catalog.pg_extension_config_dump('drift_watch.ignore_rule', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.ignore_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.check_run', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.check_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.snapshot', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.delta', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.delta_id_seq', '');

CREATE FUNCTION drift_watch._ignored(p_target text, p_source text, p_schema text, p_table text,
                                     p_column text, p_change text)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM drift_watch.ignore_rule r
         WHERE (r.target IS NULL OR r.target = p_target)
           AND (r.source_name IS NULL OR r.source_name = p_source)
           AND p_schema LIKE r.schema_pattern
           AND p_table LIKE r.table_pattern
           AND coalesce(p_column, '') LIKE r.column_pattern
           AND (r.change IS NULL OR r.change = p_change))
$$;

-- Views a person reads.
CREATE VIEW drift_watch.runs AS
SELECT id AS run_id, NULLIF(target, '') AS target, started_at, finished_at, status, error,
       sqlstate, deltas_found, deltas_new, deltas_resolved, deltas_open, deltas_undocumented,
       attempts, in_recovery, replay_lag, replay_paused, note
  FROM drift_watch.check_run
 ORDER BY id DESC;

CREATE VIEW drift_watch.open_deltas AS
SELECT id AS delta_id, NULLIF(target, '') AS target, source_name, schema_name, table_name,
       column_name, change, contract_type, live_type, detail, first_seen_at, last_seen_at,
       severity, owner
  FROM drift_watch.delta
 WHERE resolved_run IS NULL AND change <> 'undocumented'
 ORDER BY target, source_name, schema_name, table_name, column_name NULLS FIRST, change;

-- Coverage: the live columns the contract does not document, known since the table's first
-- check (its baseline). Not drift: a column that appears later is an `added` delta instead.
CREATE VIEW drift_watch.undocumented_columns AS
SELECT id AS delta_id, NULLIF(target, '') AS target, source_name, schema_name, table_name,
       column_name, live_type, first_seen_at
  FROM drift_watch.delta
 WHERE resolved_run IS NULL AND change = 'undocumented'
 ORDER BY target, schema_name, table_name, column_name;

-- Per checked relation (as of its baseline): how many of its live columns the contract documents.
-- Each target's contract is resolved once (not once per relation), then joined by name.
CREATE VIEW drift_watch.coverage AS
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

CREATE VIEW drift_watch.resolved_deltas AS
SELECT id AS delta_id, NULLIF(target, '') AS target, source_name, schema_name, table_name,
       column_name, change, contract_type, live_type, detail, first_seen_at, last_seen_at,
       resolved_at
  FROM drift_watch.delta
 WHERE resolved_run IS NOT NULL AND change <> 'undocumented'
 ORDER BY resolved_at DESC, id;

-- What each delta breaks downstream, from the stored lineage: the source table's direct
-- children (for a removed, renamed or retyped column, whether and where each one's SQL reads the
-- column: the old name for a rename), the models and exposures reachable from it, the severity
-- and the table's owner. One pass for many deltas: the graph is walked once per relation.
--   severity: info for added/undocumented; otherwise breaking when an exposure is reached or a
--   direct child reads the column (table_missing: has any direct child), else risky; a
--   `severity` in the table's drift_watch meta overrides (the most urgent of merged sources).
CREATE FUNCTION drift_watch._impact(ids bigint[])
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

-- What each open delta breaks downstream, with the lineage as it stands now (see _impact; the
-- `severity` and `impact` stored on a delta are as they stood when it was first seen).
CREATE FUNCTION drift_watch.impact(target text DEFAULT NULL)
RETURNS TABLE (delta_id bigint, target text, source_name text, schema_name text,
               table_name text, column_name text, change text, severity text, owner text,
               direct_children text[], models_downstream integer, exposures text[],
               reads jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.id, NULLIF(d.target, ''), d.source_name, d.schema_name, d.table_name,
           d.column_name, d.change, i.severity, i.owner,
           ARRAY(SELECT x->>'name' FROM jsonb_array_elements(i.impact->'direct') x),
           coalesce((i.impact->>'models')::integer, 0),
           ARRAY(SELECT x->>'name' FROM jsonb_array_elements(i.impact->'exposures') x),
           i.impact->'direct'
      FROM drift_watch.delta d
      JOIN drift_watch._impact(ARRAY(
               SELECT x.id FROM drift_watch.delta x
                WHERE x.resolved_run IS NULL AND x.change <> 'undocumented'
                  AND (impact.target IS NULL OR x.target = impact.target))) i
        ON i.delta_id = d.id
     ORDER BY array_position(ARRAY['breaking', 'risky', 'info'], i.severity), d.target,
              d.source_name, d.schema_name, d.table_name, d.column_name NULLS FIRST, d.change
$$;

-- Failure text as it is stored and shown: the message, then the detail, without a Rust backtrace
-- (pgrx appends one to DETAIL when the server runs with RUST_BACKTRACE set), without anything
-- shaped like a password, at most 2,000 characters.
CREATE FUNCTION drift_watch._clean_error(message text, detail text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT left(regexp_replace(
             regexp_replace(
               coalesce(message, 'unknown error')
               || coalesce(E'\n' || NULLIF(regexp_replace(coalesce(detail, ''),
                                                          E'(^|\n) *[0-9]+: .*$', '', 's'), ''), ''),
               '(password|passwd|secret|token)(\s*[=:]\s*)(''[^'']*''|"[^"]*"|\S+)', '\1\2***', 'gi'),
             '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]', '', 'g'), 2000)
$$;

-- Whether this session holds a dblink connection of that name: dblink(name, ...) would prefer
-- it over the foreign server of that name, so the live read refuses to run then.
CREATE FUNCTION drift_watch._dblink_connection_open(conname text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
    open boolean;
BEGIN
    SELECT n.nspname INTO s
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'dblink';
    IF s IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT $1 = ANY (coalesce(%I.dblink_get_connections(), ''{}''::text[]))', s)
       INTO open USING left(conname, 63);
    RETURN coalesce(open, false);
END
$$;

-- One check run, in three steps with different privileges:
--   _begin_check   (definer)  takes the target's run lock, opens the run;
--   _read_check    (invoker)  reads the contract and the live schema as the CALLER, through the
--                             caller's user mapping, and keeps the result inside the extension;
--   _finish_check  (definer)  records what that read found: baselines, deltas, outbox, NOTIFY,
--                             or the failure, announced once per outage.
-- The result of the read never passes through SQL: it is held in the backend by the extension,
-- keyed by the run, so the caller can neither forge it nor record for a run it did not read.
CREATE FUNCTION drift_watch._open_run(p_target text) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text := coalesce(p_target, '');
    run bigint;
BEGIN
    INSERT INTO drift_watch.run_lock (target) VALUES (t) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM drift_watch.run_lock l WHERE l.target = t FOR UPDATE;
    -- Holding the lock, no other run of this target is in progress: a 'running' row left behind
    -- was begun by a transaction that committed without finishing it.
    UPDATE drift_watch.check_run r
       SET status = 'abandoned', finished_at = clock_timestamp(),
           error = 'drift_watch: the run was begun but never finished'
     WHERE r.target = t AND r.status = 'running';
    INSERT INTO drift_watch.check_run (target, began_xact) VALUES (t, pg_current_xact_id())
    RETURNING id INTO run;
    RETURN run;
END
$$;

-- Ends a run that compared nothing (failed or stale): its error, the drift left open, one
-- "check failing" announcement per unhealthy streak (none while the previous run was already
-- failing or stale), and the wake-up. Called by _finish_check only.
CREATE FUNCTION drift_watch._record_unhealthy(run bigint, t text, run_status text, run_error text,
                                              state text, previous text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE drift_watch.check_run
       SET status = run_status, finished_at = clock_timestamp(), error = run_error,
           sqlstate = state,
           deltas_open = (SELECT count(*) FROM drift_watch.delta d
                           WHERE d.target = t AND d.resolved_run IS NULL
                             AND d.change <> 'undocumented'),
           notified = true
     WHERE id = run;
    IF previous IS NULL OR previous = 'succeeded' THEN
        INSERT INTO drift_watch.outbox (run_id, kind, target) VALUES (run, 'run_failed', t);
    END IF;
    PERFORM pg_notify('drift_watch', json_build_object(
        'run_id', run, 'target', NULLIF(t, ''), 'status', run_status)::text);
END
$$;

CREATE FUNCTION drift_watch._finish_check(run bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
    st text;
    xact xid8;
    previous text;
    was_replica boolean;
    info record;
    setting drift_watch.target_setting;
    lag interval;
    message text;
    detail text;
    state text;
BEGIN
    SELECT r.target, r.status, r.began_xact INTO t, st, xact
      FROM drift_watch.check_run r WHERE r.id = run FOR UPDATE;
    IF NOT FOUND OR st <> 'running' OR xact IS DISTINCT FROM pg_current_xact_id() THEN
        RAISE EXCEPTION 'drift_watch: run % was not begun in this transaction', run
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Call drift_watch.run_check(target).';
    END IF;
    IF NOT drift_watch._has_read(run) THEN
        RAISE EXCEPTION 'drift_watch: no live read was made for run % in this session', run
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Call drift_watch.run_check(target).';
    END IF;
    setting := drift_watch._target_setting(t);
    -- How the target's last finished run went: an unhealthy streak (failed or stale runs) is
    -- announced once, and the first good run after one closes it.
    SELECT r.status INTO previous FROM drift_watch.check_run r
     WHERE r.target = t AND r.id < run AND r.status IN ('succeeded', 'failed', 'stale')
     ORDER BY r.id DESC LIMIT 1;
    SELECT r.in_recovery INTO was_replica FROM drift_watch.check_run r
     WHERE r.target = t AND r.id < run AND r.in_recovery IS NOT NULL
     ORDER BY r.id DESC LIMIT 1;
    -- What the read saw of the target, kept by the extension (not by the caller).
    SELECT * INTO info FROM drift_watch._read_info(run);
    lag := CASE WHEN info.replay_lag_ms IS NOT NULL
                THEN make_interval(secs => info.replay_lag_ms / 1000.0) END;
    UPDATE drift_watch.check_run
       SET attempts = info.attempts, in_recovery = info.in_recovery, replay_lag = lag,
           replay_paused = info.replay_paused,
           note = CASE WHEN was_replica AND info.in_recovery = false
                       THEN 'the target is no longer a replica (pg_is_in_recovery() is false): '
                            'it was promoted, or the foreign server now points at a primary' END
     WHERE id = run;
    IF info.in_recovery AND lag > setting.max_replay_lag THEN
        -- A stale replica's schema is an old one: compare nothing, resolve nothing.
        PERFORM drift_watch._record_unhealthy(run, t, 'stale',
            format('drift_watch: target "%s" is stale: its replay is %s behind what it '
                   'received%s (max_replay_lag is %s); nothing was compared',
                   t, date_trunc('second', lag),
                   CASE WHEN info.replay_paused THEN ', and replay is paused' ELSE '' END,
                   setting.max_replay_lag),
            NULL, previous);
        RETURN run;
    END IF;
    BEGIN
        PERFORM drift_watch._record_read(run);
        IF previous IN ('failed', 'stale') THEN
            INSERT INTO drift_watch.outbox (run_id, kind, target, parent_id)
            SELECT run, 'recovered', t, o.id FROM drift_watch.outbox o
             WHERE o.target = t AND o.kind = 'run_failed'
             ORDER BY o.id DESC LIMIT 1;
            PERFORM pg_notify('drift_watch', json_build_object(
                'run_id', run, 'target', NULLIF(t, ''), 'status', 'recovered')::text);
        END IF;
    EXCEPTION WHEN query_canceled OR others THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                                state = RETURNED_SQLSTATE;
        PERFORM drift_watch._record_unhealthy(run, t, 'failed',
            drift_watch._clean_error(message, detail), state, previous);
    END;
    RETURN run;
END
$$;

-- One check run. Serialised per target (two runs at once record one set of deltas). A run that
-- cannot read its target is recorded as failed and resolves nothing; the error is in the row.
CREATE FUNCTION drift_watch.run_check(target text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run bigint;
    setting drift_watch.target_setting;
    deadline timestamptz;
    attempt integer := 0;
    wait double precision := 2;
    retry boolean;
    looks integer := 0;
    info record;
    state text;
BEGIN
    run := drift_watch._begin_check(target);
    setting := drift_watch._target_setting(target);
    deadline := clock_timestamp() + setting.retry_window;
    LOOP
        attempt := attempt + 1;
        retry := false;
        BEGIN
            PERFORM drift_watch._read_check(run);
            -- Read, but the replica looks behind without being paused: it may just be catching
            -- up (after a restart, or a burst after a long idle spell); look again shortly.
            SELECT * INTO info FROM drift_watch._read_info(run);
            retry := info.in_recovery AND NOT coalesce(info.replay_paused, false)
                     AND info.replay_lag_ms > extract(epoch FROM setting.max_replay_lag) * 1000
                     AND looks < 3
                     AND clock_timestamp() + make_interval(secs => wait) <= deadline;
            looks := looks + 1;
            attempt := attempt - 1;  -- a second look is not a failed attempt
        EXCEPTION
            -- A cancel or a timeout, here or on the target: recorded as the run's failure.
            WHEN query_canceled THEN
                NULL;
            WHEN others THEN
                -- The extension keeps the read's error for _finish_check, which records it.
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
                retry := attempt < setting.retry_attempts AND drift_watch._retryable(state)
                         AND clock_timestamp() + make_interval(secs => wait) <= deadline;
        END;
        EXIT WHEN NOT retry;
        BEGIN
            PERFORM pg_sleep(wait);
        EXCEPTION WHEN query_canceled THEN
            EXIT;  -- cancelled while waiting: the last read's error is recorded
        END;
        wait := least(wait * 3, 60);
    END LOOP;
    RETURN drift_watch._finish_check(run);
END
$$;

-- The notifier's side of the outbox. It holds no privilege on any table: it claims an item
-- (getting a claim token), reads what to deliver, and acknowledges, postpones or parks the item
-- with that token. Only the current claim's holder can settle an item.
CREATE FUNCTION drift_watch.outbox_claim(lease_seconds double precision)
RETURNS TABLE (id bigint, kind text, target text, run_id bigint, marker text, attempts integer,
               parent_id bigint, claim_token uuid, commented boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    item bigint;
BEGIN
    IF lease_seconds IS NULL OR NOT lease_seconds > 0 THEN
        RAISE EXCEPTION 'drift_watch: lease_seconds must be positive' USING ERRCODE = '22023';
    END IF;
    SELECT o.id INTO item FROM drift_watch.outbox o
     WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
       AND (o.parent_id IS NULL OR EXISTS (
              SELECT 1 FROM drift_watch.outbox p
               WHERE p.id = o.parent_id AND p.delivered_at IS NOT NULL))
     ORDER BY o.id LIMIT 1
     FOR UPDATE OF o SKIP LOCKED;
    IF item IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE drift_watch.outbox o
       SET attempts = o.attempts + 1, last_attempt_at = now(),
           next_attempt_at = now() + make_interval(secs => lease_seconds),
           claim_token = gen_random_uuid()
     WHERE o.id = item
    RETURNING o.id, o.kind, o.target, o.run_id, o.marker, o.attempts, o.parent_id, o.claim_token,
              o.commented_at IS NOT NULL;
END
$$;

-- A delivery in progress keeps its claim: the lease is extended (heartbeat). False when the
-- claim was lost (the lease ran out and another notifier took the item over).
CREATE FUNCTION drift_watch.outbox_extend(item bigint, claim uuid, lease_seconds double precision)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF lease_seconds IS NULL OR NOT lease_seconds > 0 THEN
        RAISE EXCEPTION 'drift_watch: lease_seconds must be positive' USING ERRCODE = '22023';
    END IF;
    UPDATE drift_watch.outbox o
       SET next_attempt_at = now() + make_interval(secs => lease_seconds)
     WHERE o.id = item AND o.claim_token = claim AND o.delivered_at IS NULL;
    RETURN FOUND;
END
$$;

-- A follow-up's comment is posted; only its completion may be left to a retry.
CREATE FUNCTION drift_watch.outbox_commented(item bigint, claim uuid)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE drift_watch.outbox o SET commented_at = clock_timestamp()
     WHERE o.id = item AND o.claim_token = claim AND o.delivered_at IS NULL;
    RETURN FOUND;
END
$$;

CREATE FUNCTION drift_watch.outbox_ack(item bigint, claim uuid, task_gid text)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF task_gid IS NULL OR task_gid !~ '^[0-9]{1,32}$' THEN
        RAISE EXCEPTION 'drift_watch: an Asana task gid is a decimal number, not %',
                        quote_literal(left(task_gid, 40))
            USING ERRCODE = '22023';
    END IF;
    UPDATE drift_watch.outbox o
       SET delivered_at = now(), asana_task_gid = task_gid, last_error = NULL, claim_token = NULL
     WHERE o.id = item AND o.claim_token = claim AND o.delivered_at IS NULL;
    RETURN FOUND;
END
$$;

-- Not delivered: due again after retry_seconds, or parked (retry_seconds NULL: a rejection that
-- needs the configuration fixed; outbox_unpark, run at a notifier's start, retries those).
CREATE FUNCTION drift_watch.outbox_postpone(item bigint, claim uuid, retry_seconds double precision,
                                            error text)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE drift_watch.outbox o
       SET next_attempt_at = CASE WHEN retry_seconds IS NULL THEN 'infinity'::timestamptz
                                  ELSE now() + make_interval(secs => greatest(retry_seconds, 0)) END,
           last_error = left(error, 2000), claim_token = NULL
     WHERE o.id = item AND o.claim_token = claim AND o.delivered_at IS NULL;
    RETURN FOUND;
END
$$;

CREATE FUNCTION drift_watch.outbox_park(item bigint, claim uuid, error text)
RETURNS boolean LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT drift_watch.outbox_postpone(item, claim, NULL, error) $$;

CREATE FUNCTION drift_watch.outbox_unpark() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    UPDATE drift_watch.outbox o SET next_attempt_at = now()
     WHERE o.delivered_at IS NULL AND o.next_attempt_at = 'infinity';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Seconds until something becomes due (NULL: nothing pending), to sleep no longer than needed.
CREATE FUNCTION drift_watch.outbox_next_due() RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT extract(epoch FROM min(o.next_attempt_at) - now())::float8
      FROM drift_watch.outbox o
     WHERE o.delivered_at IS NULL AND o.next_attempt_at < 'infinity'
$$;

-- What is not delivered yet, unclaimed (a dry run prints it).
CREATE FUNCTION drift_watch.outbox_pending()
RETURNS TABLE (id bigint, kind text, target text, run_id bigint, marker text, attempts integer,
               parent_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.id, o.kind, o.target, o.run_id, o.marker, o.attempts, o.parent_id
      FROM drift_watch.outbox o WHERE o.delivered_at IS NULL ORDER BY o.id
$$;

-- What one item says. For a follow-up (resolved, recovered): the task it follows up on and,
-- for a resolution, whether every delta of that task is now resolved. For a failure: the
-- error's first line only (the whole text stays in drift_watch.runs). When the run ended.
CREATE FUNCTION drift_watch.outbox_item(item bigint)
RETURNS TABLE (kind text, target text, run_id bigint, parent_task_gid text, all_resolved boolean,
               error_first_line text, run_ended text, owner text, severity text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.kind, o.target, o.run_id, p.asana_task_gid,
           NOT EXISTS (SELECT 1 FROM drift_watch.delta d
                        WHERE d.announce_outbox_id = o.parent_id AND d.resolved_run IS NULL),
           CASE WHEN r.status = 'failed'
                THEN split_part(coalesce(r.error, 'unknown error'), E'\n', 1) END,
           to_char(coalesce(r.finished_at, r.started_at) AT TIME ZONE 'UTC',
                   'YYYY-MM-DD HH24:MI "UTC"'),
           coalesce(o.owner, p.owner), coalesce(o.severity, p.severity)
      FROM drift_watch.outbox o
      JOIN drift_watch.check_run r ON r.id = o.run_id
      LEFT JOIN drift_watch.outbox p ON p.id = o.parent_id
     WHERE o.id = item
$$;

-- The deltas an item files (new_deltas) or follows up on (resolved), in display order.
CREATE FUNCTION drift_watch.outbox_deltas(item bigint)
RETURNS TABLE (source_name text, schema_name text, table_name text, column_name text,
               change text, contract_type text, live_type text, detail text, first_seen text,
               renamed_from text, severity text, impact text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.source_name, d.schema_name, d.table_name, d.column_name, d.change,
           d.contract_type, d.live_type, d.detail,
           to_char(d.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
           d.renamed_from, d.severity, d.impact::text
      FROM drift_watch.outbox o
      JOIN drift_watch.delta d
        ON (o.kind = 'new_deltas' AND d.announce_outbox_id = o.id)
        OR (o.kind = 'resolved' AND d.resolve_outbox_id = o.id)
     WHERE o.id = item
     ORDER BY coalesce(array_position(ARRAY['breaking', 'risky', 'info'], d.severity), 4),
              d.source_name, d.schema_name, d.table_name, d.column_name NULLS FIRST, d.change
$$;

-- pg_cron scheduling, one job per target, named 'drift_watch: <target>'. pg_cron is optional:
-- without it in this database these say exactly what to do.
CREATE FUNCTION drift_watch._cron_job_name(target text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'drift_watch: ' || coalesce(target, '(this database)') $$;

CREATE FUNCTION drift_watch._require_pg_cron(target text, schedule text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'drift_watch: pg_cron is not installed in database "%"', current_database()
            USING ERRCODE = 'undefined_object',
                  HINT = format('Either set cron.database_name = %L in postgresql.conf (with '
                                'shared_preload_libraries = ''pg_cron'') and run CREATE EXTENSION '
                                'pg_cron here, or, in pg_cron''s own database, run: SELECT '
                                'cron.schedule_in_database(%L, %L, %L, %L);',
                                current_database(), drift_watch._cron_job_name(target), schedule,
                                format('SELECT drift_watch.run_check(%L)', target),
                                current_database());
    END IF;
END
$$;

CREATE FUNCTION drift_watch.schedule_check(target text DEFAULT NULL, schedule text DEFAULT '0 6 * * *')
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job bigint;
BEGIN
    PERFORM drift_watch._require_pg_cron(target, schedule);
    IF target IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = target) THEN
        RAISE EXCEPTION 'drift_watch: unknown target "%": there is no foreign server of that name', target
            USING ERRCODE = 'undefined_object';
    END IF;
    -- cron.schedule(name, ...) creates the job or updates the one with that name.
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
      USING drift_watch._cron_job_name(target), schedule,
            format('SELECT drift_watch.run_check(%L)', target);
    RETURN job;
END
$$;

CREATE FUNCTION drift_watch.unschedule_check(target text DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found boolean;
BEGIN
    PERFORM drift_watch._require_pg_cron(target, '0 6 * * *');
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)' INTO found
      USING drift_watch._cron_job_name(target);
    IF found THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING drift_watch._cron_job_name(target);
    END IF;
    RETURN found;
END
$$;

-- Roles (NOLOGIN; grant them to login roles). Each gets EXECUTE on functions and SELECT on
-- views, never INSERT/UPDATE/DELETE on a table: run state is written only by the definer
-- functions above.
--   drift_watch_checker   runs checks (as itself, through its own user mapping), reads results
--   drift_watch_notifier  drains the outbox through the outbox_* functions, reads results
--   drift_watch_loader    loads and forgets the contract (a dbt project's CI)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'drift_watch_checker') THEN
        CREATE ROLE drift_watch_checker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'drift_watch_notifier') THEN
        CREATE ROLE drift_watch_notifier NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'drift_watch_loader') THEN
        CREATE ROLE drift_watch_loader NOLOGIN;
    END IF;
END
$$;

-- Nothing of the extension is executable by PUBLIC, then each role gets what it needs.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA drift_watch FROM PUBLIC;
GRANT USAGE ON SCHEMA drift_watch
   TO drift_watch_checker, drift_watch_notifier, drift_watch_loader;
GRANT SELECT ON drift_watch.contract_origin, drift_watch.contract_table, drift_watch.contract,
                drift_watch.ignore_rule, drift_watch.lineage_node, drift_watch.lineage_edge
   TO drift_watch_checker;
GRANT EXECUTE ON FUNCTION drift_watch.impact(text) TO drift_watch_checker, drift_watch_notifier;
-- Reading the contract as a target sees it (source mappings), for the checker's own reads and the
-- views it and the notifier read.
GRANT SELECT ON drift_watch.source_map, drift_watch.target_sources TO drift_watch_checker;
GRANT EXECUTE ON FUNCTION drift_watch._source_targets(), drift_watch._target_contract(text)
   TO drift_watch_checker, drift_watch_notifier;
GRANT SELECT ON drift_watch.runs, drift_watch.open_deltas, drift_watch.resolved_deltas,
                drift_watch.undocumented_columns, drift_watch.coverage
   TO drift_watch_checker, drift_watch_notifier;
-- drift_diff compares with the stored baselines (what was there at a table's first check).
GRANT SELECT ON drift_watch.snapshot, drift_watch.target_setting TO drift_watch_checker;
GRANT EXECUTE ON FUNCTION drift_watch.run_check(text), drift_watch._begin_check(text),
                          drift_watch._read_check(bigint), drift_watch._finish_check(bigint),
                          drift_watch.drift_diff(text), drift_watch._catalog_query(),
                          drift_watch._dblink_connection_open(text),
                          drift_watch._canonical_types(text[]), drift_watch._parse_type(text),
                          drift_watch._target_setting(text), drift_watch._retryable(text),
                          drift_watch._read_info(bigint),
                          drift_watch.schedule_check(text, text),
                          drift_watch.unschedule_check(text),
                          drift_watch._cron_job_name(text), drift_watch._require_pg_cron(text, text)
   TO drift_watch_checker;
GRANT EXECUTE ON FUNCTION drift_watch.outbox_claim(double precision),
                          drift_watch.outbox_extend(bigint, uuid, double precision),
                          drift_watch.outbox_commented(bigint, uuid),
                          drift_watch.outbox_ack(bigint, uuid, text),
                          drift_watch.outbox_postpone(bigint, uuid, double precision, text),
                          drift_watch.outbox_park(bigint, uuid, text),
                          drift_watch.outbox_unpark(), drift_watch.outbox_next_due(),
                          drift_watch.outbox_pending(), drift_watch.outbox_item(bigint),
                          drift_watch.outbox_deltas(bigint)
   TO drift_watch_notifier;
GRANT EXECUTE ON FUNCTION drift_watch.load_contract(text, text), drift_watch.forget_contract(text),
                          drift_watch.forget_contracts_under(text),
                          drift_watch.map_sources(text, text, text),
                          drift_watch.unmap_sources(text, text),
                          drift_watch.contract_summary(text[])
   TO drift_watch_loader;

-- CREATE EXTENSION drift_watch CASCADE installs dblink and postgres_fdw (the control file requires
-- both) with their functions executable by PUBLIC:
-- any login could then connect anywhere a password reaches, or probe ports from this host. Revoke
-- that for dblink and (when present) postgres_fdw; the checker keeps the one dblink function the
-- live read uses. Connections are only made through foreign servers and user mappings.
DO $$
DECLARE
    f regprocedure;
    dblink_schema name;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
          JOIN pg_catalog.pg_proc p ON p.oid = d.objid
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e'
           AND e.extname IN ('dblink', 'postgres_fdw')
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
    SELECT n.nspname INTO dblink_schema
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'dblink';
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %I.dblink(text, text) TO drift_watch_checker',
                              dblink_schema);
END
$$;
