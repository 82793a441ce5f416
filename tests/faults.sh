#!/usr/bin/env bash
# Faults of the replica, on the real topology (scripts/topology.sh: primary, streaming replica
# with TLS, audit database reading the replica through foreign server app_replica):
#   1. the replica's catalog locked (an ACCESS EXCLUSIVE lock on pg_namespace taken on the primary
#      and replayed): the read ends at the target's lock_timeout, the run is recorded as failed
#      with the target's SQLSTATE, well within this session's own statement_timeout;
#   2. the replica down for 5 seconds when the check starts: retried within the run, which
#      succeeds; no "check failing" task;
#   3. the replica's replay paused past max_replay_lag: a stale run that resolves nothing, one
#      notice for the streak, closed when replay resumes;
#   4. the replica promoted: the run notes that the target is no longer a replica.
#   tests/faults.sh WORKDIR        (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
W=$1/faults
rm -rf "$W"
bash scripts/topology.sh up "$W" examples/shop/app_schema.sql >/dev/null 2>&1 \
  || { bash scripts/topology.sh up "$W" examples/shop/app_schema.sql; die "faults: topology failed"; }
[ -n "${DW_KEEP:-}" ] || trap 'bash scripts/topology.sh down "$W" >/dev/null 2>&1 || true' EXIT
. "$W/topology.env"
audit() { pg "$PRIMARY_PORT" -d audit -At "$@"; }
check_fail() { echo "faults: $*" >&2; exit 1; }

audit -c "SELECT load_contract('models/app.yml', 'sources: [{name: shop, schema: public, tables: [{name: customers, columns: [{name: id}, {name: email}, {name: gone_column}]}, {name: orders}]}]')" >/dev/null
audit -c "INSERT INTO drift_watch.target_setting (target, lock_timeout, statement_timeout, retry_attempts, retry_window, max_replay_lag)
          VALUES ('app_replica', '2 s', '20 s', 3, '2 min', '3 s')" >/dev/null
run=$(audit -c "SELECT run_check('app_replica')")
[ "$(audit -c "SELECT status || ':' || deltas_open FROM drift_watch.runs WHERE run_id = $run")" = "succeeded:1" ] \
  || check_fail "baseline run: $(audit -c "SELECT status, error FROM drift_watch.runs WHERE run_id = $run")"
items() { audit -c "SELECT count(*) FROM drift_watch.outbox WHERE kind = '$1'"; }

# 1. A locked catalog on the replica.
pg "$PRIMARY_PORT" -d app -c "BEGIN; LOCK TABLE pg_catalog.pg_namespace IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
locker=$!
sleep 1
# The lock's WAL record waits in the primary's buffers until something flushes them.
pg "$PRIMARY_PORT" -At -c "SELECT pg_switch_wal()" >/dev/null
sleep 1
start=$(date +%s%N)
run=$(audit -c "SET statement_timeout = '10s'" -c "SELECT run_check('app_replica')" | tail -1)
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
got=$(audit -c "SELECT concat_ws('|', status, sqlstate, attempts) FROM drift_watch.runs WHERE run_id = $run")
kill "$locker" 2>/dev/null || true; wait "$locker" 2>/dev/null || true
pg "$PRIMARY_PORT" -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE pg_catalog.pg_namespace%'" >/dev/null
[ "$got" = "failed|55P03|1" ] || check_fail "locked catalog: run $run is $got ($(audit -c "SELECT error FROM drift_watch.runs WHERE run_id = $run"))"
[ "$elapsed_ms" -lt 8000 ] || check_fail "locked catalog: the run took ${elapsed_ms} ms (lock_timeout is 2 s)"
[ "$(items run_failed)" = 1 ] || check_fail "locked catalog: expected one failure notice"
bash scripts/topology.sh replay "$W" >/dev/null
run=$(audit -c "SELECT run_check('app_replica')")
[ "$(audit -c "SELECT status FROM drift_watch.runs WHERE run_id = $run")" = succeeded ] || check_fail "after the lock: not succeeded"
[ "$(items recovered)" = 1 ] || check_fail "after the lock: the failure notice is not followed up"
echo "faults: locked catalog -> failed run 55P03 in ${elapsed_ms} ms, recorded and announced once; recovered"

# 2. The replica down for 5 seconds when the check starts.
failed_before=$(items run_failed)
bash scripts/topology.sh stop-replica "$W" >/dev/null
( sleep 5; bash scripts/topology.sh start-replica "$W" >/dev/null 2>&1 ) &
starter=$!
run=$(audit -c "SELECT run_check('app_replica')")
wait "$starter"
got=$(audit -c "SELECT concat_ws('|', status, attempts) FROM drift_watch.runs WHERE run_id = $run")
case $got in succeeded\|[2-6]) ;; *) check_fail "blip: run $run is $got ($(audit -c "SELECT error FROM drift_watch.runs WHERE run_id = $run"))";; esac
[ "$(items run_failed)" = "$failed_before" ] || check_fail "blip: a failure notice was filed"
echo "faults: replica down 5 s at the start -> run $got (attempts), no failure notice"

# 3. Replay paused past max_replay_lag (3 s here).
open_before=$(audit -c "SELECT count(*) FROM drift_watch.open_deltas")
pg "$REPLICA_PORT" -c "SELECT pg_wal_replay_pause()" >/dev/null
pg "$PRIMARY_PORT" -d app -c "ALTER TABLE customers ADD COLUMN gone_column text" >/dev/null
sleep 4
run=$(audit -c "SELECT run_check('app_replica')")
got=$(audit -c "SELECT concat_ws('|', status, in_recovery, replay_paused, replay_lag > '3 s') FROM drift_watch.runs WHERE run_id = $run")
[ "$got" = "stale|t|t|t" ] || check_fail "paused replay: run $run is $got ($(audit -c "SELECT error FROM drift_watch.runs WHERE run_id = $run"))"
[ "$(audit -c "SELECT count(*) FROM drift_watch.open_deltas")" = "$open_before" ] || check_fail "a stale run changed the deltas"
[ "$(items run_failed)" = $((failed_before + 1)) ] || check_fail "paused replay: expected one notice"
run=$(audit -c "SELECT run_check('app_replica')")
[ "$(audit -c "SELECT status FROM drift_watch.runs WHERE run_id = $run")" = stale ] || check_fail "second paused run not stale"
[ "$(items run_failed)" = $((failed_before + 1)) ] || check_fail "paused replay: a second notice for the same streak"
error=$(audit -c "SELECT error FROM drift_watch.runs WHERE run_id = $run")
pg "$REPLICA_PORT" -c "SELECT pg_wal_replay_resume()" >/dev/null
bash scripts/topology.sh replay "$W" >/dev/null
run=$(audit -c "SELECT run_check('app_replica')")
got=$(audit -c "SELECT concat_ws('|', status, deltas_resolved) FROM drift_watch.runs WHERE run_id = $run")
[ "$got" = "succeeded|1" ] || check_fail "after resume: run $run is $got"
[ "$(items recovered)" = 2 ] || check_fail "after resume: the stale notice is not followed up"
echo "faults: replay paused -> stale runs resolve nothing, one notice ($error); resumed -> resolved 1, recovered"

# 4. The replica promoted.
pg "$REPLICA_PORT" -c "SELECT pg_promote()" >/dev/null
for _ in $(seq 1 50); do [ "$(pg "$REPLICA_PORT" -At -c 'SELECT pg_is_in_recovery()')" = f ] && break; sleep 0.2; done
run=$(audit -c "SELECT run_check('app_replica')")
note=$(audit -c "SELECT in_recovery || '|' || coalesce(note, '') FROM drift_watch.runs WHERE run_id = $run")
case $note in "false|the target is no longer a replica"*) ;; *) check_fail "promotion: run $run says $note";; esac
echo "faults: replica promoted -> the run notes it"
