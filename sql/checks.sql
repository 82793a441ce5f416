-- drift_watch: scheduled checks. A run reads the live schema once, compares it with the contract
-- and the stored baselines, and turns the result into a standing record: one row per drift, new
-- once, resolved when it goes away, announced through an outbox the notifier drains.
-- `target` is the foreign server name, or '' for the current database.

CREATE TABLE drift_watch.check_run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target          text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    error           text,
    deltas_found    integer,
    deltas_new      integer,
    deltas_resolved integer,
    deltas_open     integer,
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
    asana_task_gid  text
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
    first_seen_run     bigint NOT NULL REFERENCES drift_watch.check_run,
    last_seen_run      bigint NOT NULL REFERENCES drift_watch.check_run,
    resolved_run       bigint REFERENCES drift_watch.check_run,
    first_seen_at      timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    resolved_at        timestamptz,
    announce_outbox_id bigint REFERENCES drift_watch.outbox,
    resolve_outbox_id  bigint REFERENCES drift_watch.outbox
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
    change         text CHECK (change IN ('added', 'removed', 'retyped', 'renamed', 'table_missing')),
    note           text,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);

SELECT pg_catalog.pg_extension_config_dump('drift_watch.ignore_rule', '');

CREATE FUNCTION drift_watch._ignored(p_target text, p_source text, p_schema text, p_table text,
                                     p_column text, p_change text)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog
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
       deltas_found, deltas_new, deltas_resolved, deltas_open
  FROM drift_watch.check_run
 ORDER BY id DESC;

CREATE VIEW drift_watch.open_deltas AS
SELECT id AS delta_id, NULLIF(target, '') AS target, source_name, schema_name, table_name,
       column_name, change, contract_type, live_type, detail, first_seen_at, last_seen_at
  FROM drift_watch.delta
 WHERE resolved_run IS NULL
 ORDER BY target, source_name, schema_name, table_name, column_name NULLS FIRST, change;

CREATE VIEW drift_watch.resolved_deltas AS
SELECT id AS delta_id, NULLIF(target, '') AS target, source_name, schema_name, table_name,
       column_name, change, contract_type, live_type, detail, first_seen_at, last_seen_at,
       resolved_at
  FROM drift_watch.delta
 WHERE resolved_run IS NOT NULL
 ORDER BY resolved_at DESC, id;

-- One check run. Serialised per target (two runs at once record one set of deltas). A run that
-- cannot read its target is recorded as failed and resolves nothing; the error is in the row.
CREATE FUNCTION drift_watch.run_check(target text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    t text := coalesce(target, '');
    run bigint;
    message text;
    detail text;
    previous text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('drift_watch.run_check'), hashtext(t));
    INSERT INTO drift_watch.check_run (target) VALUES (t) RETURNING id INTO run;
    -- How the target's last finished run went: a failure is announced once per outage, and the
    -- first good run after one closes it.
    SELECT r.status INTO previous FROM drift_watch.check_run r
     WHERE r.target = t AND r.id < run AND r.status <> 'running'
     ORDER BY r.id DESC LIMIT 1;
    BEGIN
        PERFORM drift_watch._record_check(run, target);
        IF previous = 'failed' THEN
            INSERT INTO drift_watch.outbox (run_id, kind, target, parent_id)
            SELECT run, 'recovered', t, o.id FROM drift_watch.outbox o
             WHERE o.target = t AND o.kind = 'run_failed'
             ORDER BY o.id DESC LIMIT 1;
            PERFORM pg_notify('drift_watch', json_build_object(
                'run_id', run, 'target', NULLIF(t, ''), 'status', 'recovered')::text);
        END IF;
    EXCEPTION WHEN others THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        UPDATE drift_watch.check_run
           SET status = 'failed', finished_at = clock_timestamp(),
               error = message || coalesce(E'\n' || NULLIF(detail, ''), ''),
               deltas_open = (SELECT count(*) FROM drift_watch.delta d
                               WHERE d.target = t AND d.resolved_run IS NULL),
               notified = true
         WHERE id = run;
        -- Announce a failure once: when the previous run did not fail already.
        IF previous IS DISTINCT FROM 'failed' THEN
            INSERT INTO drift_watch.outbox (run_id, kind, target) VALUES (run, 'run_failed', t);
        END IF;
        PERFORM pg_notify('drift_watch', json_build_object(
            'run_id', run, 'target', NULLIF(t, ''), 'status', 'failed')::text);
    END;
    RETURN run;
END
$$;

-- pg_cron scheduling, one job per target, named 'drift_watch: <target>'. pg_cron is optional:
-- without it in this database these say exactly what to do.
CREATE FUNCTION drift_watch._cron_job_name(target text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'drift_watch: ' || coalesce(target, '(this database)') $$;

CREATE FUNCTION drift_watch._require_pg_cron(target text, schedule text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
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
SET search_path = pg_catalog
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
SET search_path = pg_catalog
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

-- Roles (NOLOGIN; grant them to login roles). The checker may run checks and read results; the
-- notifier may read what to deliver and record deliveries. Neither can change the contract.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'drift_watch_checker') THEN
        CREATE ROLE drift_watch_checker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'drift_watch_notifier') THEN
        CREATE ROLE drift_watch_notifier NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA drift_watch TO drift_watch_checker, drift_watch_notifier;
GRANT SELECT ON drift_watch.contract_origin, drift_watch.contract_table, drift_watch.contract,
                drift_watch.ignore_rule
   TO drift_watch_checker;
GRANT SELECT, INSERT, UPDATE ON drift_watch.check_run, drift_watch.snapshot, drift_watch.delta,
                                drift_watch.outbox
   TO drift_watch_checker;
GRANT DELETE ON drift_watch.snapshot TO drift_watch_checker;
GRANT SELECT ON drift_watch.check_run, drift_watch.delta, drift_watch.outbox, drift_watch.runs,
                drift_watch.open_deltas, drift_watch.resolved_deltas
   TO drift_watch_notifier;
GRANT UPDATE (attempts, next_attempt_at, last_attempt_at, last_error, delivered_at, asana_task_gid)
   ON drift_watch.outbox TO drift_watch_notifier;
REVOKE EXECUTE ON FUNCTION drift_watch.load_contract(text, text), drift_watch.forget_contract(text)
  FROM PUBLIC;
