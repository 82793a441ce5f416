#!/usr/bin/env bash
# The main job, end to end on an embedded default (README command 1):
#   a primary PostgreSQL 15 cluster holding the sample app database and the audit database,
#   a physical streaming replica of it (pg_basebackup -R), drift_watch installed in the audit
#   database with a foreign server + user mapping pointing at the replica, the sample dbt project
#   (examples/shop) loaded as the contract, then a sample migration on the primary, and
#   drift_diff() reading the replica before and after it.
# Everything runs on 127.0.0.1 in a temporary directory and is stopped at the end, unless
# DW_KEEP=1 is set (then it prints how to connect and how to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
PROJECT=${1:-examples/shop}

bash scripts/setup.sh
log "building and installing the extension (release)"
install_flags=(--release --pg-config "$PG_CONFIG")
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
(cd extension && cargo pgrx install "${install_flags[@]}" >/dev/null)
log "building drift-notifier"
cargo build -q --release -p drift-notifier
NOTIFIER=$PWD/target/release/drift-notifier

W=$(mktemp -d "${TMPDIR:-/tmp}/drift_watch-demo.XXXXXX")
chmod 755 "$W"
PRIMARY=$(free_port); REPLICA=$(free_port)
stop_all() { cluster_stop "$W/replica"; cluster_stop "$W/primary"; rm -rf "$W"; }
if [ -z "${DW_KEEP:-}" ]; then trap stop_all EXIT; fi

log "primary cluster on 127.0.0.1:$PRIMARY (app + audit databases)"
cluster_init "$W/primary" "$PRIMARY"
pg "$PRIMARY" -c "CREATE DATABASE app" -c "CREATE DATABASE audit"
pg "$PRIMARY" -d app -f "$PROJECT/app_schema.sql"
# A read-only login for drift_watch on the app side: no grants on application tables.
pg "$PRIMARY" -c "CREATE ROLE drift_reader LOGIN PASSWORD 'demo-only'"

log "streaming replica on 127.0.0.1:$REPLICA (pg_basebackup -R)"
mkdir -p "$W/replica" && { [ "$(id -u)" = 0 ] && chown postgres: "$W/replica" || true; }
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY" -U postgres -D "$W/replica/data" -R -X stream -c fast
as_pg sed -i "s/^port = .*/port = $REPLICA/; s|^unix_socket_directories = .*|unix_socket_directories = '$W/replica'|" "$W/replica/data/postgresql.conf"
cluster_start "$W/replica"
[ "$(pg "$REPLICA" -At -c 'SELECT pg_is_in_recovery()')" = t ] || die "the replica is not in recovery"

log "drift_watch in the audit database, reading the replica through a foreign server"
pg "$PRIMARY" -d audit <<SQL
SET client_min_messages = warning;
CREATE EXTENSION drift_watch CASCADE;
CREATE EXTENSION postgres_fdw;
CREATE SERVER app_replica FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$REPLICA', dbname 'app', connect_timeout '10');
CREATE USER MAPPING FOR CURRENT_USER SERVER app_replica
  OPTIONS (user 'drift_reader', password 'demo-only');
SQL

export DATABASE_URL="postgres://postgres@127.0.0.1:$PRIMARY/audit"
log "drift-notifier contract push $PROJECT (one transaction, through load_contract)"
"$NOTIFIER" contract push "$PROJECT"

wait_for_replay() {
  local lsn; lsn=$(pg "$PRIMARY" -At -c "SELECT pg_current_wal_lsn()")
  for _ in $(seq 1 100); do
    [ "$(pg "$REPLICA" -At -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
    sleep 0.1
  done
  die "the replica did not replay $lsn in 10 s"
}

log "drift_diff('app_replica') before the migration"
pg "$PRIMARY" -d audit -c "SELECT * FROM drift_diff('app_replica')"

log "applying $PROJECT/migration.sql on the primary; waiting for the replica to replay it"
sed 's/^/    /' "$PROJECT/migration.sql"
pg "$PRIMARY" -d app -f "$PROJECT/migration.sql"
wait_for_replay

log "drift_diff('app_replica') after the migration"
pg "$PRIMARY" -d audit -c "SELECT source_name, table_name, column_name, change, contract_type, live_type, detail FROM drift_diff('app_replica')"

log "drift-notifier check app_replica (records the run, as the daily pg_cron job would)"
"$NOTIFIER" check app_replica

if [ -n "${ASANA_TOKEN:-}" ]; then
  log "drift-notifier run --once: filing the task in Asana project ${ASANA_PROJECT:-?}"
  "$NOTIFIER" run --once
else
  log "drift-notifier run --once (ASANA_TOKEN is not set: dry run, the task it would file)"
  "$NOTIFIER" run --once --dry-run
fi

if [ -n "${DW_KEEP:-}" ]; then
  log "left running (DW_KEEP=1):"
  echo "  audit database:  psql -h 127.0.0.1 -p $PRIMARY -U postgres audit"
  echo "  replica:         psql -h 127.0.0.1 -p $REPLICA -U postgres app"
  echo "  stop and clean:  for d in replica primary; do runuser -u postgres -- $PG_BIN/pg_ctl -D $W/\$d/data stop; done; rm -rf $W"
else
  log "done; both clusters are stopped and $W removed (DW_KEEP=1 keeps them running)"
fi
