#!/usr/bin/env bash
# The production shape on one machine, on 127.0.0.1, in a directory of your choice:
#
#   primary cluster ──streaming (pg_basebackup -R)──▶ replica cluster (read-only)
#     ├─ database app    the application (its schema from APP_SCHEMA_SQL)
#     └─ database audit  drift_watch + pg_cron (preloaded, cron.database_name = 'audit'),
#                        foreign server app_replica ──▶ replica:app as drift_reader
#
# Roles, as the README's deployment section sets them up:
#   drift_reader    (app side)  LOGIN, password (scram), no grants on application tables
#   drift_cron      (audit)     LOGIN, member of drift_watch_checker, USAGE on schema cron, a user
#                               mapping to the replica: the daily job runs as it
#   drift_notifier  (audit)     LOGIN, member of drift_watch_notifier: what the sidecar runs as
#   dbt_ci          (audit)     LOGIN, may load the contract and nothing else
#
#   scripts/topology.sh up DIR APP_SCHEMA_SQL   start it; writes DIR/topology.env (ports, URLs)
#   scripts/topology.sh replay DIR              wait until the replica has replayed the primary
#   scripts/topology.sh stop-replica DIR | start-replica DIR
#   scripts/topology.sh down DIR                stop both clusters and remove DIR
#
# Used by scripts/demo.sh (README command 1) and by the end-to-end test (notifier/tests/e2e.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

cmd=${1:-}; W=${2:-}
[ -n "$cmd" ] && [ -n "$W" ] || die "usage: scripts/topology.sh up|replay|stop-replica|start-replica|down DIR [APP_SCHEMA_SQL]"

load_env() {
  [ -f "$W/topology.env" ] || die "no topology in $W (run: scripts/topology.sh up $W APP_SCHEMA_SQL)"
  . "$W/topology.env"
}

wait_for_replay() {
  load_env
  local lsn; lsn=$(pg "$PRIMARY_PORT" -At -c "SELECT pg_current_wal_lsn()")
  for _ in $(seq 1 300); do
    [ "$(pg "$REPLICA_PORT" -d app -At -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
    sleep 0.1
  done
  die "the replica did not replay $lsn within 30 s"
}

case $cmd in
up)
  schema=${3:-}
  [ -f "$schema" ] || die "usage: scripts/topology.sh up DIR APP_SCHEMA_SQL (no file '$schema')"
  mkdir -p "$W"; chmod 755 "$W"
  PRIMARY_PORT=$(free_port); REPLICA_PORT=$(free_port)
  log "primary cluster on 127.0.0.1:$PRIMARY_PORT (databases app and audit; pg_cron preloaded)"
  cluster_init "$W/primary" "$PRIMARY_PORT" "shared_preload_libraries = 'pg_cron'" \
    "cron.database_name = 'audit'" "cron.use_background_workers = on" "max_worker_processes = 16"
  pg "$PRIMARY_PORT" -c "CREATE DATABASE app" -c "CREATE DATABASE audit"
  pg "$PRIMARY_PORT" -d app -f "$schema"
  pg "$PRIMARY_PORT" -c "CREATE ROLE drift_reader LOGIN PASSWORD 'local-only'"
  # drift_reader authenticates with its password (dblink insists on one for non-superusers); the
  # replica inherits this pg_hba.conf through pg_basebackup.
  { echo "host all drift_reader 127.0.0.1/32 scram-sha-256"; cat "$W/primary/data/pg_hba.conf"; } >"$W/pg_hba.conf"
  as_pg cp "$W/pg_hba.conf" "$W/primary/data/pg_hba.conf"
  pg "$PRIMARY_PORT" -qAt -c "SELECT pg_reload_conf()" >/dev/null

  log "streaming replica on 127.0.0.1:$REPLICA_PORT (pg_basebackup -R)"
  mkdir -p "$W/replica"; [ "$(id -u)" = 0 ] && chown postgres: "$W/replica"
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$W/replica/data" -R -X stream -c fast
  as_pg sed -i "s/^port = .*/port = $REPLICA_PORT/; s|^unix_socket_directories = .*|unix_socket_directories = '$W/replica'|; /^shared_preload_libraries/d; /^cron\./d" \
    "$W/replica/data/postgresql.conf"
  cluster_start "$W/replica"
  [ "$(pg "$REPLICA_PORT" -At -c 'SELECT pg_is_in_recovery()')" = t ] || die "the replica is not in recovery"

  log "drift_watch in the audit database, reading the replica through foreign server app_replica"
  pg "$PRIMARY_PORT" -d audit <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
CREATE EXTENSION drift_watch CASCADE;
CREATE EXTENSION postgres_fdw;
CREATE SERVER app_replica FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$REPLICA_PORT', dbname 'app', connect_timeout '10');
CREATE USER MAPPING FOR CURRENT_USER SERVER app_replica
  OPTIONS (user 'drift_reader', password 'local-only');
-- The daily job's role: checks only, pg_cron's schema, its own credentials for the replica.
CREATE ROLE drift_cron LOGIN PASSWORD 'local-only' IN ROLE drift_watch_checker;
GRANT USAGE ON SCHEMA cron TO drift_cron;
GRANT USAGE ON FOREIGN SERVER app_replica TO drift_cron;
CREATE USER MAPPING FOR drift_cron SERVER app_replica
  OPTIONS (user 'drift_reader', password 'local-only');
CREATE ROLE drift_notifier LOGIN PASSWORD 'local-only' IN ROLE drift_watch_notifier;
-- The dbt project's CI: loads the contract (drift-notifier contract push), nothing else.
CREATE ROLE dbt_ci LOGIN PASSWORD 'local-only';
GRANT USAGE ON SCHEMA drift_watch TO dbt_ci;
GRANT EXECUTE ON FUNCTION drift_watch.load_contract(text, text), drift_watch.forget_contract(text)
   TO dbt_ci;
GRANT SELECT, INSERT, UPDATE, DELETE ON drift_watch.contract_origin, drift_watch.contract_table
   TO dbt_ci;
SQL
  cat >"$W/topology.env" <<ENV
PRIMARY_PORT=$PRIMARY_PORT
REPLICA_PORT=$REPLICA_PORT
AUDIT_URL=postgres://postgres@127.0.0.1:$PRIMARY_PORT/audit
CONTRACT_URL=postgres://dbt_ci@127.0.0.1:$PRIMARY_PORT/audit
CHECKER_URL=postgres://drift_cron@127.0.0.1:$PRIMARY_PORT/audit
NOTIFIER_URL=postgres://drift_notifier@127.0.0.1:$PRIMARY_PORT/audit
ENV
  ;;
replay) wait_for_replay ;;
stop-replica) cluster_stop "$W/replica" ;;
start-replica)
  cluster_start "$W/replica"
  wait_for_replay
  ;;
down)
  cluster_stop "$W/replica"; cluster_stop "$W/primary"
  rm -rf "$W"
  ;;
*) die "unknown command '$cmd' (up|replay|stop-replica|start-replica|down)" ;;
esac
