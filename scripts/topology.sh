#!/usr/bin/env bash
# The production shape on one machine, on 127.0.0.1, in a directory of your choice:
#
#   primary cluster ──streaming (pg_basebackup -R)──▶ replica cluster (read-only)
#     ├─ database app    the application (its schema from APP_SCHEMA_SQL)
#     └─ database audit  drift_watch + pg_cron (preloaded, cron.database_name = 'audit'),
#                        foreign server app_replica ──▶ replica:app as drift_reader
#
# TLS everywhere: a throw-away CA made here with openssl (DIR/tls/ca.crt) signs the clusters'
# certificate (127.0.0.1, localhost); both clusters run with ssl = on (TLS 1.3), and every login
# but the postgres superuser's must use TLS and its password (hostssl, scram-sha-256; plain-text
# attempts are rejected by pg_hba.conf). The foreign server verifies the replica (verify-full,
# channel_binding=require); the URLs in topology.env do the same.
#
# Roles, as the README's deployment section sets them up (each login with its own password):
#   drift_reader    (app side)  LOGIN, no grants on application tables
#   drift_cron      (audit)     LOGIN, member of drift_watch_checker, USAGE on schema cron and on
#                               the foreign server, a user mapping to the replica: the daily job
#                               runs as it
#   drift_notifier  (audit)     LOGIN, member of drift_watch_notifier: what the sidecar runs as
#   dbt_ci          (audit)     LOGIN, member of drift_watch_loader (EXECUTE on load_contract and
#                               forget_contract), nothing else
#
#   scripts/topology.sh up DIR APP_SCHEMA_SQL   start it; writes DIR/topology.env (ports, the CA
#                                               file, URLs; values single-quoted)
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
  W=$(cd "$W" && pwd)
  PRIMARY_PORT=$(free_port); REPLICA_PORT=$(free_port)
  # One password per login, new for every topology. The reader's goes only into the user
  # mappings; the audit-side ones into the URLs of topology.env.
  READER_PW=$(random_password); CRON_PW=$(random_password)
  NOTIFIER_PW=$(random_password); DBT_PW=$(random_password)

  log "test CA and server certificate (127.0.0.1, localhost) in $W/tls"
  tls_make_ca "$W/tls"
  CA=$W/tls/ca.crt

  log "primary cluster on 127.0.0.1:$PRIMARY_PORT (databases app and audit; pg_cron preloaded; TLS)"
  cluster_init "$W/primary" "$PRIMARY_PORT" "shared_preload_libraries = 'pg_cron'" \
    "cron.database_name = 'audit'" "cron.use_background_workers = on" "max_worker_processes = 16"
  # TLS: the certificate and key inside the data directory, named relative to it, so the
  # replica's copies (pg_basebackup copies the files and postgresql.conf) are the ones it uses.
  # log_connections records each login with its TLS protocol and cipher.
  tls_install_server "$W/tls" "$W/primary/data"
  printf '%s\n' "ssl = on" "ssl_cert_file = 'server.crt'" "ssl_key_file = 'server.key'" \
    "ssl_min_protocol_version = 'TLSv1.3'" "password_encryption = 'scram-sha-256'" \
    "log_connections = on" | as_pg tee -a "$W/primary/data/postgresql.conf" >/dev/null
  # Who may log in, and how (first match wins; the replica inherits this file):
  # - postgres, the superuser the scripts and tests use, as before (trust on 127.0.0.1 and the
  #   socket), and the replica's replication connection;
  # - every other login only over TLS with its password (scram-sha-256, which channel binding
  #   needs): drift_reader to the app database, the audit logins to the audit database;
  # - anything else without TLS is rejected outright, and the rest has no entry.
  cat >"$W/pg_hba.conf" <<HBA
# drift_watch topology (scripts/topology.sh)
# TYPE     DATABASE     USER                             ADDRESS        METHOD
local      all          postgres                                        trust
host       all          postgres                         127.0.0.1/32   trust
local      replication  postgres                                        trust
host       replication  postgres                         127.0.0.1/32   trust
hostnossl  all          all                              0.0.0.0/0      reject
hostssl    app          drift_reader                     127.0.0.1/32   scram-sha-256
hostssl    audit        drift_cron,drift_notifier,dbt_ci 127.0.0.1/32   scram-sha-256
HBA
  as_pg cp "$W/pg_hba.conf" "$W/primary/data/pg_hba.conf"
  # ssl, pg_hba.conf and log_connections all take effect on reload.
  pg "$PRIMARY_PORT" -qAt -c "SELECT pg_reload_conf()" >/dev/null
  pg_tls_check "$PRIMARY_PORT" postgres "$CA"
  pg "$PRIMARY_PORT" -c "CREATE DATABASE app" -c "CREATE DATABASE audit"
  pg "$PRIMARY_PORT" -d app -f "$schema"
  # drift_reader authenticates with its password (dblink insists on one for non-superusers).
  pg "$PRIMARY_PORT" -c "CREATE ROLE drift_reader LOGIN PASSWORD '$READER_PW'"

  log "streaming replica on 127.0.0.1:$REPLICA_PORT (pg_basebackup -R; TLS)"
  mkdir -p "$W/replica"; [ "$(id -u)" = 0 ] && chown postgres: "$W/replica"
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$W/replica/data" -R -X stream -c fast
  as_pg sed -i "s/^port = .*/port = $REPLICA_PORT/; s|^unix_socket_directories = .*|unix_socket_directories = '$W/replica'|; /^shared_preload_libraries/d; /^cron\./d" \
    "$W/replica/data/postgresql.conf"
  # The copies of the certificate and key, with the owner and mode Postgres requires.
  tls_install_server "$W/tls" "$W/replica/data"
  cluster_start "$W/replica"
  [ "$(pg "$REPLICA_PORT" -At -c 'SELECT pg_is_in_recovery()')" = t ] || die "the replica is not in recovery"
  pg_tls_check "$REPLICA_PORT" app "$CA"

  log "drift_watch in the audit database, reading the replica through foreign server app_replica"
  # The foreign server verifies the replica: its certificate chains to the test CA and names
  # 127.0.0.1 (verify-full), and SCRAM is bound to that TLS channel (channel_binding). The CA
  # file is readable by the postgres user (dblink opens it in the audit database's backend).
  pg "$PRIMARY_PORT" -d audit <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
CREATE EXTENSION drift_watch CASCADE;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;  -- drift_watch CASCADE installed it
CREATE SERVER app_replica FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$REPLICA_PORT', dbname 'app', connect_timeout '10',
           sslmode 'verify-full', sslrootcert '$CA', channel_binding 'require');
CREATE USER MAPPING FOR CURRENT_USER SERVER app_replica
  OPTIONS (user 'drift_reader', password '$READER_PW');
-- The daily job's role: checks only, pg_cron's schema, its own credentials for the replica.
CREATE ROLE drift_cron LOGIN PASSWORD '$CRON_PW' IN ROLE drift_watch_checker;
GRANT USAGE ON SCHEMA cron TO drift_cron;
GRANT USAGE ON FOREIGN SERVER app_replica TO drift_cron;
CREATE USER MAPPING FOR drift_cron SERVER app_replica
  OPTIONS (user 'drift_reader', password '$READER_PW');
CREATE ROLE drift_notifier LOGIN PASSWORD '$NOTIFIER_PW' IN ROLE drift_watch_notifier;
-- The dbt project's CI: loads the contract (drift-notifier contract push), nothing else. The
-- extension's drift_watch_loader holds EXECUTE on load_contract/forget_contract; no table grants.
CREATE ROLE dbt_ci LOGIN PASSWORD '$DBT_PW' IN ROLE drift_watch_loader;
SQL
  # Values are single-quoted: the file is sourced by bash (the URLs hold '&'); readers that parse
  # it as KEY=VALUE strip the quotes. Passwords are percent-encoded in the URLs.
  tls_query="sslmode=verify-full&sslrootcert=$(url_encode "$CA" /)&channel_binding=require"
  audit_login() { echo "postgres://$1:$(url_encode "$2")@127.0.0.1:$PRIMARY_PORT/audit?$tls_query"; }
  umask 077
  cat >"$W/topology.env" <<ENV
PRIMARY_PORT='$PRIMARY_PORT'
REPLICA_PORT='$REPLICA_PORT'
CA_FILE='$CA'
AUDIT_URL='postgres://postgres@127.0.0.1:$PRIMARY_PORT/audit'
CONTRACT_URL='$(audit_login dbt_ci "$DBT_PW")'
CHECKER_URL='$(audit_login drift_cron "$CRON_PW")'
NOTIFIER_URL='$(audit_login drift_notifier "$NOTIFIER_PW")'
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
