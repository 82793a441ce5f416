-- run_check(): one record per drift, new once, resolved when it goes away, new again when it
-- comes back; exact renames and retypes from snapshots; failed reads resolve nothing; NOTIFY is a
-- small wake-up; concurrent runs record one set; ignore rules; privileges.
SET client_min_messages = warning;
CREATE SCHEMA app;
CREATE TABLE app.users (id bigint, email text, amount integer, updated_at timestamptz);
CREATE TABLE app.orders (id bigint, total numeric(12,2));

-- Deltas with run ids replaced by their order, so the expected output does not depend on how
-- many runs other suites made.
CREATE VIEW pg_temp.lifecycle AS
SELECT d.table_name, d.column_name, d.change, d.contract_type, d.live_type, d.detail,
       d.first_seen_run - r.base AS first_run, d.last_seen_run - r.base AS last_run,
       d.resolved_run - r.base AS resolved_run
  FROM drift_watch.delta d,
       (SELECT coalesce(min(id), 1) - 1 AS base FROM drift_watch.check_run WHERE target = '') r
 WHERE d.target = ''
 ORDER BY d.id;
CREATE VIEW pg_temp.last_run AS
SELECT status, deltas_found, deltas_new, deltas_resolved, deltas_open, error
  FROM drift_watch.check_run ORDER BY id DESC LIMIT 1;

SELECT load_contract('models/app.yml', $yaml$
sources:
  - name: app
    tables:
      - name: users
        columns:
          - {name: id, data_type: bigint}
          - {name: email}
          - {name: amount}
          - {name: updated_at}
      - name: orders
        columns: [{name: id}, {name: total, data_type: "numeric(12,2)"}]
$yaml$);

-- 1. No drift: a run records nothing and notifies nothing.
SELECT run_check() > 0 AS ran;
SELECT * FROM pg_temp.last_run;

-- 2. A migration: a rename plus an unrelated new column (the history-free heuristic could not
--    pair them), a retype of a column the contract gives no data_type, a dropped column.
ALTER TABLE app.users RENAME COLUMN email TO email_address;
ALTER TABLE app.users ADD COLUMN phone text;
ALTER TABLE app.users ALTER COLUMN amount TYPE bigint;
ALTER TABLE app.orders DROP COLUMN total;
SELECT run_check() > 0 AS ran;
SELECT * FROM pg_temp.last_run;
SELECT * FROM pg_temp.lifecycle;

-- 3. Seen again: no new record, last seen moves, nothing announced twice.
SELECT run_check() > 0 AS ran;
SELECT * FROM pg_temp.last_run;
SELECT table_name, column_name, change, first_run, last_run FROM pg_temp.lifecycle;
SELECT kind, count(*) FROM drift_watch.outbox WHERE target = '' GROUP BY kind ORDER BY kind;

-- 4. A failed read leaves every open delta open, records the error, and is announced once.
SELECT run_check('app_down') > 0 AS ran;
SELECT status, error LIKE 'drift_watch: could not read the live schema of target "app_down"%' AS error_names_target
  FROM drift_watch.runs LIMIT 1;
SELECT run_check('app_down') > 0 AS ran_again;
SELECT count(*) AS run_failed_announcements FROM drift_watch.outbox WHERE target = 'app_down';
SELECT count(*) AS still_open FROM drift_watch.open_deltas WHERE target IS NULL;

-- 5. The contract catches up with part of it: those deltas resolve; the follow-up points at the
--    announcement that filed them.
SELECT load_contract('models/app.yml', $yaml$
sources:
  - name: app
    tables:
      - name: users
        columns:
          - {name: id, data_type: bigint}
          - {name: email_address}
          - {name: amount, data_type: bigint}
          - {name: updated_at}
          - {name: phone}
      - name: orders
        columns: [{name: id}, {name: total, data_type: "numeric(12,2)"}]
$yaml$);
SELECT run_check() > 0 AS ran;
SELECT * FROM pg_temp.last_run;
SELECT table_name, column_name, change, resolved_run IS NOT NULL AS resolved FROM pg_temp.lifecycle;
SELECT o.kind, p.kind AS follows_up, (SELECT count(*) FROM drift_watch.delta d WHERE d.resolve_outbox_id = o.id) AS deltas
  FROM drift_watch.outbox o JOIN drift_watch.outbox p ON p.id = o.parent_id WHERE o.target = '';

-- 6. The migration is reverted: the last delta resolves. Then it comes back: a new record.
ALTER TABLE app.orders ADD COLUMN total numeric(12,2);
SELECT run_check() > 0 AS ran;
SELECT * FROM pg_temp.last_run;
ALTER TABLE app.orders DROP COLUMN total;
SELECT run_check() > 0 AS ran;
SELECT * FROM pg_temp.last_run;
SELECT table_name, column_name, change, first_run, resolved_run FROM pg_temp.lifecycle
 WHERE table_name = 'orders';

-- 7. A table dropped and re-created is not a rename of its columns: grand_total takes total's
--    attnum, but in a new table (new oid); with a second arrival the heuristic cannot pair them.
ALTER TABLE app.orders ADD COLUMN total numeric(12,2);
SELECT run_check() > 0 AS ran;
DROP TABLE app.orders;
CREATE TABLE app.orders (id bigint, grand_total numeric(12,2), note text);
SELECT run_check() > 0 AS ran;
SELECT column_name, change, contract_type, live_type, detail FROM drift_watch.open_deltas
 WHERE table_name = 'orders';

-- 8. Noise control: every updated_at, every table like tmp_%, and 'added' on source app.
INSERT INTO drift_watch.ignore_rule (column_pattern, note) VALUES ('updated_at', 'audit columns');
INSERT INTO drift_watch.ignore_rule (table_pattern, note) VALUES ('tmp\_%', 'scratch tables');
INSERT INTO drift_watch.ignore_rule (source_name, change, note) VALUES ('app', 'added', 'we only care about breaking changes');
SELECT load_contract('models/tmp.yml', 'sources: [{name: app, tables: [{name: tmp_import}]}]');
ALTER TABLE app.users ALTER COLUMN updated_at TYPE timestamp, ADD COLUMN nickname text;
SELECT run_check() > 0 AS ran;
SELECT column_name, change FROM drift_watch.open_deltas WHERE target IS NULL ORDER BY 1, 2;
DELETE FROM drift_watch.ignore_rule;
SELECT forget_contract('models/tmp.yml');

-- 9. NOTIFY carries a small summary, never the delta list: 1,000 new columns, one small payload.
SELECT dblink_connect('listener', format('host=127.0.0.1 port=%s dbname=%s user=postgres',
                                         inet_server_port(), current_database()));
CREATE TABLE app.wide (id int);
SELECT load_contract('models/wide.yml', 'sources: [{name: app, tables: [{name: wide, columns: [{name: id}]}]}]');
SELECT run_check() > 0 AS baselined;  -- the columns arrive after the table's first check
SELECT dblink_exec('listener', 'LISTEN drift_watch');
DO $$ BEGIN
  FOR i IN 1..1000 LOOP EXECUTE format('ALTER TABLE app.wide ADD COLUMN c%s int', i); END LOOP;
END $$;
SELECT run_check() > 0 AS ran;
SELECT deltas_new FROM pg_temp.last_run;
SELECT notify_name, length(extra) < 200 AS small,
       (extra::json ->> 'new')::int AS new, extra::json ->> 'status' AS status,
       (extra::json ->> 'run_id')::bigint = (SELECT max(id) FROM drift_watch.check_run) AS run_id_is_last
  FROM dblink_get_notify('listener');
SELECT dblink_disconnect('listener');
SELECT forget_contract('models/wide.yml');
DROP TABLE app.wide;

-- 10. Two concurrent run_check calls on one target record one set of deltas.
ALTER TABLE app.users ADD COLUMN concurrent_a text, ADD COLUMN concurrent_b text;
SELECT dblink_connect('a', format('host=127.0.0.1 port=%s dbname=%s user=postgres', inet_server_port(), current_database()));
SELECT dblink_connect('b', format('host=127.0.0.1 port=%s dbname=%s user=postgres', inet_server_port(), current_database()));
SELECT dblink_send_query('a', 'SELECT drift_watch.run_check()'), dblink_send_query('b', 'SELECT drift_watch.run_check()');
SELECT count(*) AS finished FROM (SELECT * FROM dblink_get_result('a') AS r(id bigint)
                                  UNION ALL SELECT * FROM dblink_get_result('b') AS r(id bigint)) x;
SELECT dblink_disconnect('a'), dblink_disconnect('b');
SELECT column_name, count(*) AS records FROM drift_watch.delta
 WHERE target = '' AND column_name LIKE 'concurrent_%' GROUP BY column_name ORDER BY 1;
SELECT status, deltas_new FROM drift_watch.check_run ORDER BY id DESC LIMIT 2;

-- 11. Privileges: the checker runs checks but cannot touch the contract or the run state; the
--     notifier works the outbox through its functions only (see tests/sql/security.sql).
CREATE ROLE test_checker IN ROLE drift_watch_checker;
CREATE ROLE test_notifier IN ROLE drift_watch_notifier;
SET ROLE test_checker;
SELECT run_check() > 0 AS checker_can_run;
SELECT load_contract('models/evil.yml', 'sources: []');
DELETE FROM drift_watch.contract_table;
RESET ROLE;
SET ROLE test_notifier;
SELECT count(*) > 0 AS notifier_reads_pending FROM drift_watch.outbox_pending();
SELECT count(*) > 0 AS notifier_reads_runs FROM drift_watch.runs;
SELECT count(*) FROM drift_watch.outbox;
INSERT INTO drift_watch.delta (target) VALUES ('x');
UPDATE drift_watch.outbox SET kind = 'resolved' WHERE false;
SELECT run_check();
RESET ROLE;
DROP ROLE test_checker;
DROP ROLE test_notifier;

-- Clean up for the next suite.
SELECT forget_contract(origin) FROM drift_watch.contract_origin;
DROP SCHEMA app CASCADE;
