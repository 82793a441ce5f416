#!/usr/bin/env bash
# Backups keep the run state: an audit database with runs, baselines, open and resolved deltas,
# a delivered and a pending outbox item and an ignore rule is dumped with pg_dump and restored
# into a fresh database. Everything comes back, identity sequences included, and the next check
# there announces nothing new and collides with nothing.
#   tests/dump_restore.sh AUDIT_PORT APP_PORT WORKDIR      (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
port=$1; app_port=$2; W=$3
q() { pg "$port" -d "$1" -At -c "$2"; }
pg "$port" -c "DROP DATABASE IF EXISTS dump_src WITH (FORCE)" -c "DROP DATABASE IF EXISTS dump_dst WITH (FORCE)" \
   -c "CREATE DATABASE dump_src"
pg "$port" -d dump_src -v app_port="$app_port" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION drift_watch CASCADE;
CREATE SERVER app FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port :'app_port', dbname 'app');
CREATE USER MAPPING FOR postgres SERVER app OPTIONS (user 'postgres');
SELECT load_contract('models/app.yml', $y$
sources:
  - name: public
    tables:
      - name: customers
        columns: [{name: id, data_type: int8}, {name: gone_one}, {name: gone_two}]
      - name: no_such_table
$y$);
SELECT run_check('app');
-- The notifier delivered the announcement.
SELECT drift_watch.outbox_ack(c.id, c.claim_token, '1201') FROM drift_watch.outbox_claim(60) c;
-- The contract catches up on one column: a resolution follow-up, pending.
SELECT load_contract('models/app.yml', $y$
sources:
  - name: public
    tables:
      - name: customers
        columns: [{name: id, data_type: int8}, {name: gone_one}]
      - name: no_such_table
$y$);
SELECT run_check('app');
INSERT INTO drift_watch.ignore_rule (target, table_pattern, note) VALUES ('app', 'audit_%', 'kept');
SQL
counts="SELECT (SELECT count(*) FROM drift_watch.check_run), (SELECT count(*) FROM drift_watch.delta WHERE resolved_run IS NOT NULL),
               (SELECT count(*) FROM drift_watch.delta WHERE resolved_run IS NULL AND change <> 'undocumented'),
               (SELECT count(*) FROM drift_watch.outbox), (SELECT count(*) FROM drift_watch.outbox WHERE delivered_at IS NULL),
               (SELECT count(*) FROM drift_watch.snapshot), (SELECT count(*) FROM drift_watch.contract_table),
               (SELECT count(*) FROM drift_watch.ignore_rule), (SELECT max(asana_task_gid) FROM drift_watch.outbox)"
before=$(q dump_src "$counts")
IFS='|' read -r runs resolved open outbox pending snaps tables rules gid <<<"$before"
[ "$runs|$resolved|$outbox|$pending|$snaps|$rules|$gid" = "2|1|2|1|1|1|1201" ] && [ "$open" -gt 0 ] \
  || die "dump_restore: unexpected source state $before"

"$PG_BIN/pg_dump" -h 127.0.0.1 -p "$port" -U postgres -Fc -f "$W/audit.dump" dump_src
pg "$port" -c "CREATE DATABASE dump_dst"
"$PG_BIN/pg_restore" -h 127.0.0.1 -p "$port" -U postgres --exit-on-error -d dump_dst "$W/audit.dump"
after=$(q dump_dst "$counts")
[ "$after" = "$before" ] || die "dump_restore: restored state $after differs from the dumped $before"

# The next check in the restored database: nothing new, nothing resolved, no new outbox item,
# and a run id after the dumped ones (the identity sequence came back too).
max_run=$(q dump_src "SELECT max(id) FROM drift_watch.check_run")
run=$(q dump_dst "SELECT run_check('app')")
[ "$run" -gt "$max_run" ] || die "dump_restore: run id $run does not follow the restored $max_run"
got=$(q dump_dst "SELECT status, deltas_new, deltas_resolved, deltas_open FROM drift_watch.runs WHERE run_id = $run")
[ "$got" = "succeeded|0|0|$open" ] || die "dump_restore: the first check after restore gave $got, expected succeeded|0|0|$open"
items=$(q dump_dst "SELECT count(*) FROM drift_watch.outbox")
[ "$items" = 2 ] || die "dump_restore: the check after restore added outbox items ($items)"
# New rows take new ids: a contract load and an ignore rule after the restore.
q dump_dst "SELECT load_contract('models/more.yml', 'sources: [{name: more, tables: [{name: t}]}]')" >/dev/null
q dump_dst "INSERT INTO drift_watch.ignore_rule (note) VALUES ('new')" >/dev/null
echo "dump_restore: pg_dump + pg_restore kept $before (runs|resolved|open|outbox|pending|snapshots|tables|rules|gid); the next check announced nothing"
pg "$port" -c "DROP DATABASE dump_src WITH (FORCE)" -c "DROP DATABASE dump_dst WITH (FORCE)"
