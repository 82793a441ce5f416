-- Security: an ordinary login attacks drift_watch, and every attempt fails while the legitimate
-- path keeps working. The cluster runs with RUST_BACKTRACE=1 in the postmaster's environment
-- (scripts/test.sh), as production servers often do.
SET client_min_messages = warning;
-- Whatever earlier suites checked, this one starts from targets never checked.
DELETE FROM drift_watch.snapshot;
SELECT load_contract('models/sec.yml', $yaml$
sources:
  - name: public
    tables:
      - name: customers
        columns:
          - {name: id, data_type: bigint}
          - {name: email, data_type: text}
          - {name: sec_missing_column}
      - name: orders
$yaml$);
SELECT option_value AS app_port FROM pg_options_to_table(
  (SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'app')) WHERE option_name = 'port' \gset
SELECT current_setting('port') AS audit_port \gset

-- 1. A hostile `public`: CREATE for everybody (as on every cluster upgraded from 14 or older),
--    operators planted for the common type pairs, functions shadowing the built-ins drift_watch
--    calls. Each trap records its call. A superuser then calls every entry point.
CREATE TABLE public.trap_log (trap text, called_by text);
GRANT SELECT, INSERT ON public.trap_log TO PUBLIC;
GRANT CREATE ON SCHEMA public TO PUBLIC;
CREATE ROLE sec_attacker LOGIN;
SET ROLE sec_attacker;
DO $plant$
DECLARE
    op text;
    l text;
    r text;
    fn text;
    sig text;
    n integer := 0;
BEGIN
    -- The attacker's own code must not trip over its traps while planting them.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);
    FOREACH op IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>=', '~~', '~', '||', '@>', '&&'] LOOP
        FOREACH l IN ARRAY ARRAY['oid', 'integer', 'bigint', 'smallint', 'text', 'name', 'boolean',
                                 'text[]', 'name[]', 'integer[]', 'xid8', 'uuid', 'timestamptz'] LOOP
            FOREACH r IN ARRAY ARRAY['oid', 'integer', 'bigint', 'smallint', 'text', 'name',
                                     'boolean', 'text[]', 'name[]', 'integer[]', 'xid8', 'uuid',
                                     'timestamptz'] LOOP
                n := n + 1;
                fn := 'public.trap_op_' || n;
                BEGIN
                    EXECUTE format(
                        'CREATE FUNCTION %s(%s, %s) RETURNS boolean LANGUAGE sql AS $f$ '
                        'INSERT INTO public.trap_log VALUES (%L, current_user) RETURNING NULL::boolean $f$',
                        fn, l, r, format('%s %s %s', l, op, r));
                    EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
                                   op, l, r, fn);
                EXCEPTION WHEN others THEN NULL;  -- a pair Postgres refuses (e.g. unknown)
                END;
            END LOOP;
        END LOOP;
    END LOOP;
    -- Functions named like every built-in the extension's SQL calls, with the argument types it
    -- passes, and with looser ones that would win over an implicit cast.
    FOREACH fn IN ARRAY ARRAY['format_type', 'unnest', 'array_position', 'md5', 'concat_ws',
                              'now', 'clock_timestamp', 'pg_notify', 'json_build_object',
                              'hashtext', 'current_setting', 'set_config', 'starts_with',
                              'array_agg', 'left', 'split_part', 'to_char', 'regexp_replace',
                              'make_interval', 'gen_random_uuid', 'pg_current_xact_id', 'format',
                              'quote_literal', 'cardinality', 'random', 'count', 'nullif',
                              'dblink', 'dblink_get_connections', 'pg_advisory_xact_lock',
                              'pg_options_to_table', 'coalesce', 'extract', 'greatest',
                              'pg_extension_config_dump', 'string_agg', 'array_length',
                              'jsonb_build_object', 'row_number', 'exists', 'lower', 'upper',
                              '_parse_type', 'drift_diff', 'run_check', 'load_contract'] LOOP
        FOREACH sig IN ARRAY ARRAY['', 'text', 'oid, integer', 'bigint, integer', 'integer, integer',
                                   'text, text', 'text, text, text', 'anyarray', 'anyelement',
                                   'anyarray, anyarray', 'text[], text[]', 'bigint', 'double precision',
                                   'text, text, boolean', 'text, bigint', 'bigint, text', 'text[]',
                                   'name, name'] LOOP
            BEGIN
                EXECUTE format(
                    'CREATE FUNCTION public.%I(%s) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN '
                    'INSERT INTO public.trap_log VALUES (%L, current_user); RETURN NULL; END $f$',
                    fn, sig, format('%s(%s)', fn, sig));
            EXCEPTION WHEN others THEN NULL;
            END;
        END LOOP;
    END LOOP;
END
$plant$;
RESET ROLE;
SELECT count(*) > 1000 AS operators_planted FROM pg_operator WHERE oprnamespace = 'public'::regnamespace;
SELECT count(*) > 500 AS functions_planted FROM pg_proc
 WHERE pronamespace = 'public'::regnamespace AND proowner = 'sec_attacker'::regrole;
-- Tables named like catalogs and like drift_watch's own tables, in this session's pg_temp.
CREATE TEMP TABLE pg_class (oid oid, relname name, relnamespace oid, relkind "char");
CREATE TEMP TABLE pg_namespace (oid oid, nspname name);
CREATE TEMP TABLE pg_attribute (attrelid oid, attname name, attnum int2, atttypid oid,
                                atttypmod int4, attisdropped boolean);
CREATE TEMP TABLE pg_type (oid oid, typname name, typnamespace oid, typarray oid);
CREATE TEMP TABLE pg_foreign_server (oid oid, srvname name);
CREATE TEMP TABLE pg_user_mappings (srvid oid, umuser oid);
CREATE TEMP TABLE pg_roles (oid oid, rolname name);
CREATE TEMP TABLE pg_extension (oid oid, extname name, extnamespace oid);
CREATE TEMP TABLE contract_table (origin text);
CREATE TEMP TABLE check_run (id bigint);
CREATE TEMP TABLE outbox (id bigint);
-- The superuser calls every entry point.
SELECT count(*) AS local_rows FROM drift_watch.drift_diff(NULL);
SELECT change, count(*) FROM drift_watch.drift_diff('app') GROUP BY change ORDER BY 1;
SELECT change, count(*) FROM drift_watch.drift_diff('app_dblink') GROUP BY change ORDER BY 1;
SELECT count(*) AS forwarded_rows FROM public.drift_diff('app'::text);
SELECT drift_watch.run_check('app') AS r1, drift_watch.run_check(NULL) AS r2,
       public.run_check('app'::text) AS r3 \gset
SELECT run_id = :r1 AS first, status FROM drift_watch.runs WHERE run_id IN (:r1, :r2, :r3) ORDER BY run_id;
SELECT drift_watch.load_contract('models/sec2.yml', 'sources: [{name: extra, tables: [{name: t}]}]');
SELECT * FROM drift_watch.contract_summary(ARRAY['models/sec.yml', 'models/sec2.yml']);
SELECT drift_watch.forget_contract('models/sec2.yml');
SELECT drift_watch.load_contract('models/sub/a.yml', 'sources: [{name: sub, tables: [{name: t}]}]');
SELECT drift_watch.forget_contracts_under('models/sub/');
SELECT drift_watch.schedule_check('app', '0 6 * * *') > 0 AS scheduled;
SELECT drift_watch.unschedule_check('app');
SELECT length(drift_watch._catalog_query()) > 0 AS catalog_query;
SELECT count(*) >= 0 AS pending FROM drift_watch.outbox_pending();
SELECT drift_watch.outbox_next_due() IS NOT NULL AS something_due;
SELECT drift_watch.outbox_unpark() >= 0 AS unparked;
SELECT id AS claimed, claim_token AS token FROM drift_watch.outbox_claim(60) \gset
SELECT count(*) > 0 AS item_read FROM drift_watch.outbox_item(:claimed);
SELECT count(*) >= 0 AS deltas_read FROM drift_watch.outbox_deltas(:claimed);
SELECT drift_watch.outbox_postpone(:claimed, :'token', 0, 'retry') AS postponed;
DROP TABLE pg_temp.pg_class, pg_temp.pg_namespace, pg_temp.pg_attribute, pg_temp.pg_type,
           pg_temp.pg_foreign_server, pg_temp.pg_user_mappings, pg_temp.pg_roles,
           pg_temp.pg_extension, pg_temp.contract_table, pg_temp.check_run, pg_temp.outbox;
-- Not one trap fired, and the attacker is still who it was.
SELECT count(*) AS traps_fired FROM public.trap_log;
SELECT rolsuper AS attacker_is_superuser FROM pg_roles WHERE rolname = 'sec_attacker';
-- The traps are real: SQL on a path that includes public does call them.
SET search_path = public, pg_catalog;
SELECT (1::oid = 1::integer) IS NULL AS unpinned_sql_calls_the_trap;
RESET search_path;
SELECT count(*) > 0 AS trap_works FROM public.trap_log;
DROP OWNED BY sec_attacker;
DROP TABLE public.trap_log;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Every function of the extension pins its search path.
SELECT p.oid::regprocedure AS unpinned_function
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'drift_watch')
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
 ORDER BY 1;

-- 2. The checker login forges run state and Asana actions.
CREATE ROLE sec_checker LOGIN IN ROLE drift_watch_checker;
CREATE ROLE sec_notifier LOGIN IN ROLE drift_watch_notifier;
GRANT USAGE ON FOREIGN SERVER app_dblink TO sec_checker;
CREATE USER MAPPING FOR sec_checker SERVER app_dblink OPTIONS (user 'reader', password 'reader-secret');
SELECT max(id) AS last_item FROM drift_watch.outbox \gset
SELECT max(run_id) AS last_run FROM drift_watch.runs \gset
-- Runs an attempt; its SQLSTATE and message, with numbers (run ids) masked.
CREATE FUNCTION pg_temp.attempt(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'succeeded';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N', 'g');
END
$$;
SET ROLE sec_checker;
UPDATE drift_watch.outbox SET asana_task_gid = '../projects/4242';
INSERT INTO drift_watch.outbox (run_id, kind, target) VALUES (:last_run, 'run_failed', 'app');
UPDATE drift_watch.check_run SET error = 'URGENT: rotate creds at https://evil.example';
INSERT INTO drift_watch.check_run (target, status, error) VALUES ('app', 'failed', 'URGENT');
UPDATE drift_watch.delta SET resolved_run = :last_run;
DELETE FROM drift_watch.snapshot;
SELECT * FROM drift_watch.run_lock FOR UPDATE;
-- The steps of run_check, out of order or for a run it did not begin: refused, nothing recorded.
SELECT pg_temp.attempt(format('SELECT drift_watch._finish_check(%s)', :last_run));
SELECT pg_temp.attempt(format('SELECT drift_watch._read_check(%s)', :last_run));
SELECT pg_temp.attempt(format('SELECT drift_watch._record_read(%s)', :last_run));
SELECT pg_temp.attempt(format('SELECT drift_watch._has_read(%s)', :last_run));
SELECT pg_temp.attempt('SELECT drift_watch._open_run(''app'')');
SELECT pg_temp.attempt('SELECT drift_watch._finish_check(drift_watch._begin_check(''app''))');
-- The legitimate path works: a check as the checker, through its own user mapping.
SELECT drift_watch.run_check('app_dblink') AS checker_run \gset
SELECT status, deltas_new FROM drift_watch.runs WHERE run_id = :checker_run;
SELECT count(*) > 0 AS checker_reads_runs FROM drift_watch.runs;
RESET ROLE;
SELECT count(*) AS forged_runs FROM drift_watch.check_run WHERE error LIKE '%URGENT%' OR status = 'running';
SELECT count(*) AS forged_gids FROM drift_watch.outbox WHERE asana_task_gid !~ '^[0-9]+$';

-- 3. The notifier login: only through the outbox functions, only with its claim, only digits.
SELECT drift_watch.run_check('app_dblink') IS NOT NULL AS ran;
SET ROLE sec_notifier;
UPDATE drift_watch.outbox SET asana_task_gid = '../projects/4242';
UPDATE drift_watch.outbox SET delivered_at = now();
SELECT drift_watch.run_check('app');
SELECT id AS item, claim_token AS token FROM drift_watch.outbox_claim(60) \gset
SELECT drift_watch.outbox_ack(:item, :'token', '../projects/4242');
SELECT drift_watch.outbox_ack(:item, :'token', '12 34');
SELECT drift_watch.outbox_ack(:item, gen_random_uuid(), '1234') AS ack_with_another_claim;
SELECT drift_watch.outbox_postpone(:item, gen_random_uuid(), 1, 'x') AS postpone_with_another_claim;
SELECT drift_watch.outbox_ack(:item, :'token', '1234') AS ack_with_its_claim;
SELECT drift_watch.outbox_ack(:item, :'token', '5678') AS ack_twice;
RESET ROLE;
SELECT asana_task_gid, delivered_at IS NOT NULL AS delivered FROM drift_watch.outbox WHERE id = :item;
-- Even the owner cannot store a gid that is not a number.
\set VERBOSITY terse
UPDATE drift_watch.outbox SET asana_task_gid = '../projects/4242' WHERE id = :item;
\set VERBOSITY default

-- 4. Whoever holds the advisory key the old versions used does not block checks; the run lock
--    cannot be taken by anyone but drift_watch.
SELECT dblink_connect('sec_adv', format('host=127.0.0.1 port=%s dbname=regress user=sec_attacker', :'audit_port'));
SELECT * FROM dblink('sec_adv', 'SELECT pg_advisory_lock(hashtext(''drift_watch.run_check''), hashtext(''app'')), pg_advisory_lock(hashtext(''drift_watch.contract''))') AS t(a text, b text);
SELECT * FROM dblink('sec_adv', 'SELECT * FROM drift_watch.run_lock FOR UPDATE') AS t(x text);
SET lock_timeout = '5s';
SELECT drift_watch.run_check('app') AS locked_run \gset
SELECT status FROM drift_watch.runs WHERE run_id = :locked_run;
SELECT drift_watch.load_contract('models/sec3.yml', 'sources: [{name: s3, tables: [{name: t}]}]');
SELECT drift_watch.forget_contract('models/sec3.yml');
RESET lock_timeout;
SELECT dblink_disconnect('sec_adv');

-- 5. dblink and postgres_fdw are not PUBLIC's: a login with no grants cannot connect anywhere.
SET ROLE sec_attacker;
SELECT * FROM dblink(format('host=127.0.0.1 port=%s dbname=app user=reader password=reader-secret', :'app_port'), 'SELECT 1') AS t(x int);
SELECT dblink_connect('x', 'host=127.0.0.1 port=1');
SELECT * FROM postgres_fdw_get_connections();
SELECT postgres_fdw_disconnect_all();
SELECT * FROM drift_watch.drift_diff('app');
SELECT drift_watch.run_check('app');
RESET ROLE;
-- A session's named connection does not stand in for the foreign server of that name.
SELECT dblink_connect('app', format('host=127.0.0.1 port=%s dbname=regress user=postgres', :'audit_port'));
SELECT count(*) FROM drift_watch.drift_diff('app');
SELECT drift_watch.run_check('app') AS taken_run \gset
SELECT status, error FROM drift_watch.runs WHERE run_id = :taken_run;
SELECT dblink_disconnect('app');

-- 6. Bad bytes: NUL and control characters are refused with file:line:col; nothing is stored.
SELECT count(*) AS tables_before FROM drift_watch.contract_table \gset
SELECT load_contract('models/nul.yml', E'sources:\n  - name: app\n    tables:\n      - name: "users\\0"\n');
SELECT load_contract('models/ctl.yml', E'sources:\n  - name: app\n    tables:\n      - name: users\n        columns:\n          - {name: "e\\x01mail"}\n          - {name: ok, data_type: "int\\tor drop"}\n');
SELECT load_contract('target/manifest.json', '{"nodes": {}, "sources": {"source.a.b.c": {"source_name": "b", "name": "c", "schema": "s\u0000x", "columns": {}}}}');
SELECT load_contract('target/manifest.json', '{"nodes": {}, "sources": {"source.a.b.c": {"source_name": "b", "name": "c", "schema": "s", "columns": {"x": {"name": "a\u001fb", "data_type": "int"}}}}}');
SELECT load_contract(E'models/x\x01.yml', 'sources: []');
SELECT count(*) = :tables_before AS nothing_stored FROM drift_watch.contract_table;

-- 7. Failure text: no backtrace, no password, no query; the first line is what Asana gets.
-- A Postgres error raised under Rust code: with RUST_BACKTRACE=1 in the server's environment,
-- pgrx would append a Rust backtrace as DETAIL; there is none.
SELECT * FROM drift_watch._parse_type('integer(');
CREATE SERVER sec_badpw FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host '127.0.0.1', port :'app_port', dbname 'no_such_db');
CREATE USER MAPPING FOR postgres SERVER sec_badpw OPTIONS (user 'reader', password 'WRONG-secret-4711');
SELECT drift_watch.run_check('sec_badpw') AS badpw_run \gset
SELECT status, sqlstate, error !~ 'WRONG-secret' AS no_password,
       error !~ '(backtrace|[0-9]+: |\.rs:|rust_begin_unwind)' AS no_backtrace,
       error !~ 'SELECT|pg_attribute' AS no_query
  FROM drift_watch.runs WHERE run_id = :badpw_run;
SELECT drift_watch.run_check('app_down') AS down_run \gset
SELECT sqlstate, attempts, error FROM drift_watch.runs WHERE run_id = :down_run;
SELECT o.error_first_line FROM drift_watch.outbox x, drift_watch.outbox_item(x.id) o
 WHERE x.run_id = :badpw_run;
-- A cancel (here, this session's statement_timeout firing while a retry waits) still records
-- the run as failed, with the last read's error, instead of rolling it back.
SET statement_timeout = '1s';
SELECT drift_watch.run_check('app_down') AS cancelled_run \gset
RESET statement_timeout;
SELECT status, sqlstate, attempts FROM drift_watch.runs WHERE run_id = :cancelled_run;
SELECT drift_watch._clean_error('boom', E'detail line\n   0: pgrx::something\n             at /src/x.rs:1:2\n   1: std::rt');
SELECT drift_watch._clean_error('could not connect: password=hunter2 user=x', 'token: abc');

-- Clean up.
DROP USER MAPPING FOR postgres SERVER sec_badpw;
DROP SERVER sec_badpw;
DROP USER MAPPING FOR sec_checker SERVER app_dblink;
REVOKE USAGE ON FOREIGN SERVER app_dblink FROM sec_checker;
DROP ROLE sec_checker, sec_notifier, sec_attacker;
SELECT forget_contract(origin) FROM drift_watch.contract_origin;
