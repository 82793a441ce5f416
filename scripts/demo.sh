#!/usr/bin/env bash
# The main job, end to end on an embedded default (README command 1):
#   a primary PostgreSQL 15 cluster holding the sample app database and the audit database,
#   a physical streaming replica of it (pg_basebackup -R), drift_watch installed in the audit
#   database with a foreign server + user mapping pointing at the replica, the sample dbt project
#   (examples/shop) loaded as the contract, then a sample migration on the primary, and
#   drift_diff() reading the replica before and after it.
# Everything runs on 127.0.0.1 in a temporary directory and is stopped at the end, unless
# DW_KEEP=1 is set (then it prints how to connect and how to stop). The clusters serve TLS from a
# test CA the topology makes; every login but the postgres superuser's is TLS-only, verified
# (sslmode=verify-full, the URLs in topology.env).
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
NOTIFIER=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/drift-notifier

W=$(mktemp -d "${TMPDIR:-/tmp}/drift_watch-demo.XXXXXX")
stop_all() { bash scripts/topology.sh down "$W"; }
if [ -z "${DW_KEEP:-}" ]; then trap stop_all EXIT; fi
bash scripts/topology.sh up "$W" "$PROJECT/app_schema.sql"
. "$W/topology.env"

log "drift-notifier contract push $PROJECT as dbt_ci (one transaction, through load_contract)"
DATABASE_URL=$CONTRACT_URL "$NOTIFIER" contract push "$PROJECT"
export DATABASE_URL=$AUDIT_URL

log "drift_diff('app_replica') before the migration"
pg "$PRIMARY_PORT" -d audit -c "SELECT * FROM drift_diff('app_replica')"

log "drift-notifier check app_replica: the first check takes each table's baseline (as the first daily job would)"
"$NOTIFIER" check app_replica

log "applying $PROJECT/migration.sql on the primary; waiting for the replica to replay it"
sed 's/^/    /' "$PROJECT/migration.sql"
pg "$PRIMARY_PORT" -d app -f "$PROJECT/migration.sql"
bash scripts/topology.sh replay "$W"

log "drift_diff('app_replica') after the migration"
pg "$PRIMARY_PORT" -d audit -c "SELECT source_name, table_name, column_name, change, contract_type, live_type, detail FROM drift_diff('app_replica')"

log "drift-notifier check app_replica after the migration (records the run, as the next daily job would)"
"$NOTIFIER" check app_replica

log "drift_watch.impact('app_replica'): what each change breaks downstream (models, exposures), its severity and owner"
pg "$PRIMARY_PORT" -d audit -c "SELECT severity, owner, table_name, column_name, change, direct_children, models_downstream AS models, exposures FROM drift_watch.impact('app_replica')"

log "schedule_check('app_replica') as drift_cron (TLS, verify-full): the daily pg_cron job (06:00 GMT by default)"
psql -X -q -v ON_ERROR_STOP=1 "$CHECKER_URL" \
  -c "SELECT schedule_check('app_replica') AS job_id" \
  -c "SELECT jobname, schedule, command, username FROM cron.job"

# The sidecar's own login: a member of drift_watch_notifier, nothing more.
export DATABASE_URL=$NOTIFIER_URL
if [ -n "${ASANA_TOKEN:-}" ]; then
  log "drift-notifier run --once: filing the task in Asana project ${ASANA_PROJECT:-?}"
  "$NOTIFIER" run --once
else
  log "drift-notifier run --once (ASANA_TOKEN is not set: dry run, the task it would file)"
  "$NOTIFIER" run --once --dry-run
fi

if [ -n "${DW_KEEP:-}" ]; then
  log "left running (DW_KEEP=1):"
  tls="sslmode=verify-full&sslrootcert=$(url_encode "$CA_FILE" /)"
  # The logins' URLs hold their passwords: they are read from topology.env, not printed.
  echo "  audit database:  psql 'postgres://postgres@127.0.0.1:$PRIMARY_PORT/audit?$tls'"
  echo "  replica:         psql 'postgres://postgres@127.0.0.1:$REPLICA_PORT/app?$tls'"
  echo "  as the checker:  (. $W/topology.env && psql \"\$CHECKER_URL\")"
  echo "  the sidecar:     (. $W/topology.env && DATABASE_URL=\$NOTIFIER_URL $NOTIFIER run --dry-run)"
  echo "  stop and clean:  bash scripts/topology.sh down $W"
else
  log "done; both clusters are stopped and $W removed (DW_KEEP=1 keeps them running)"
fi
