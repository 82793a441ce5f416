#!/usr/bin/env bash
# The test command (README): installs what is missing, then runs every test.
#   1. cargo fmt --check and clippy -D warnings
#   2. plain `cargo test` of the pure logic (drift_watch_core)
#   3. the extension built and installed into the system PostgreSQL 15
#   4. SQL regression suites (tests/sql, tests/expected) run by pg_regress against real clusters
#      started here: an audit cluster with the extension, and an app cluster holding the real
#      schemas from ../shared/realdata, read through foreign servers.
#   5. tests/upgrade.sh: the build's SQL is the frozen release's; ALTER EXTENSION UPDATE from every
#      earlier release (filled) gives the same objects and keeps every row; DROP/CREATE EXTENSION
#      tests/majors.sh: real PostgreSQL 13, 14, 16, 17, 18 servers as targets (drift_diff = 15's)
#   6. backup (dump/restore), replica faults, the notifier's tests (unit, delivery, routing,
#      end to end, soak), real dbt's manifest
#   7. tests/package.sh: the .deb packages built, linted, installed, exercised and purged (last)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROOT=$PWD
REALDATA=${REALDATA:-$ROOT/../shared/realdata}
[ -d "$REALDATA" ] || die "real test data not found at $REALDATA (the shared/ folder beside the checkout)"
REALDATA=$(cd "$REALDATA" && pwd)
export REALDATA DW_REALDATA=$REALDATA

bash scripts/setup.sh

summary=()
step() { log "$1"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy -q -p drift_watch_core --all-targets -- -D warnings
cargo clippy -q -p drift_watch --lib -- -D warnings
cargo clippy -q -p drift-notifier --all-targets -- -D warnings
summary+=("fmt + clippy: clean")

step "unit tests (pure logic)"
# cargo's own exit status decides: a crashed test binary fails the step even without a
# "test result: FAILED" line.
set +e
cargo test -q -p drift_watch_core 2>&1 | tee "${TMPDIR:-/tmp}/dw-unit.log" | grep -E "^test result|FAILED|panicked"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || die "unit tests failed (cargo test exited $rc)"
grep -q "test result: ok" "${TMPDIR:-/tmp}/dw-unit.log" || die "unit tests did not run"
summary+=("unit: $(grep -m1 '^test result' "${TMPDIR:-/tmp}/dw-unit.log")")

step "build and install the extension"
install_flags=(--pg-config "$PG_CONFIG")
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
(cd extension && cargo pgrx install "${install_flags[@]}" >/dev/null)

W=$(mktemp -d "${TMPDIR:-/tmp}/drift_watch-test.XXXXXX")
chmod 755 "$W"
cleanup() { cluster_stop "$W/audit"; cluster_stop "$W/app"; rm -rf "$W"; }
trap cleanup EXIT
AUDIT_PORT=$(free_port); APP_PORT=$(free_port)
step "starting clusters: audit on 127.0.0.1:$AUDIT_PORT, app on 127.0.0.1:$APP_PORT"
# The audit cluster preloads pg_cron for the regression database, as a production audit database
# would (cron.database_name); jobs run in background workers, so no network settings are needed.
# RUST_BACKTRACE=1 in the postmaster's environment, as production servers often have it: no
# backtrace may reach an error message (tests/sql/security.sql).
RUST_BACKTRACE=1 cluster_init "$W/audit" "$AUDIT_PORT" "shared_preload_libraries = 'pg_cron'" \
  "cron.database_name = 'regress'" "cron.use_background_workers = on" "max_worker_processes = 16"
cluster_init "$W/app" "$APP_PORT"

step "loading the real schemas into the app cluster"
bash tests/realdata/load.sh "$APP_PORT"
pg "$APP_PORT" -c "CREATE DATABASE app" -c "CREATE ROLE reader LOGIN PASSWORD 'reader-secret'"
# reader logs in with its password (dblink refuses a non-superuser's connection otherwise).
{ echo "host all reader 127.0.0.1/32 scram-sha-256"; cat "$W/app/data/pg_hba.conf"; } >"$W/app_hba.conf"
as_pg cp "$W/app_hba.conf" "$W/app/data/pg_hba.conf"
pg "$APP_PORT" -qAt -c "SELECT pg_reload_conf()" >/dev/null
pg "$APP_PORT" -d app -f tests/fixtures/app.sql

# The regression database: the extension, and one foreign server per app database.
gzip -dc "$REALDATA/manifests/gitlab_analytics_manifest_dbt0.19.1_2022-02.json.gz" > "$W/manifest.json"
chmod 644 "$W/manifest.json"
pg "$AUDIT_PORT" -c "CREATE DATABASE regress" -c "CREATE DATABASE nocron"
{
  echo "SET client_min_messages = warning;"
  echo "CREATE EXTENSION drift_watch CASCADE;"
  echo "CREATE EXTENSION IF NOT EXISTS postgres_fdw;  -- drift_watch CASCADE installed it"
  echo "CREATE EXTENSION pg_cron;"
  cat tests/fixtures/contract_relations.sql
  for db in $(pg "$APP_PORT" -At -c "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres','template0','template1')"); do
    echo "CREATE SERVER $db FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$APP_PORT', dbname '$db');"
    echo "CREATE USER MAPPING FOR postgres SERVER $db OPTIONS (user 'postgres');"
  done
  # A dblink_fdw server, a server nobody listens on, and one without a user mapping.
  echo "CREATE SERVER app_dblink FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host '127.0.0.1', port '$APP_PORT', dbname 'app');"
  echo "CREATE USER MAPPING FOR PUBLIC SERVER app_dblink OPTIONS (user 'reader', password 'reader-secret');"
  echo "CREATE SERVER app_down FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '1', dbname 'app', connect_timeout '5');"
  echo "CREATE USER MAPPING FOR postgres SERVER app_down OPTIONS (user 'postgres');"
  echo "CREATE SERVER app_unmapped FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$APP_PORT', dbname 'app');"
} | pg "$AUDIT_PORT" -d regress

step "SQL regression suites"
export DW_MANIFEST="$W/manifest.json"
tests=$(cd tests/sql && ls *.sql | sed 's/\.sql$//' | sort)
set +e
"$($PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress" \
  --use-existing --host=127.0.0.1 --port="$AUDIT_PORT" --user=postgres --dbname=regress \
  --inputdir=tests --outputdir="$W/regress" $tests
rc=$?
set -e
if [ $rc -ne 0 ]; then
  head -300 "$W/regress/regression.diffs" 2>/dev/null || true
  if [ -n "${DW_KEEP_RESULTS:-}" ]; then
    mkdir -p "$DW_KEEP_RESULTS" && cp -r "$W/regress/." "$DW_KEEP_RESULTS/"
  fi
  die "SQL regression suites failed"
fi
summary+=("sql regression: $(echo $tests | wc -w) suites passed ($(echo $tests))")

step "upgrades: the build is release $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml)'s SQL; ALTER EXTENSION UPDATE from every earlier release keeps and works; DROP/CREATE EXTENSION"
bash tests/upgrade.sh 2>&1 | grep -v "^NOTICE:  installing required extension" | tee "$W/upgrade.log"
summary+=("upgrades: $(grep -c '^.*updated to [0-9.]*: same' "$W/upgrade.log") earlier release(s) updated to the same objects, every row kept")

step "PostgreSQL 13, 14, 16, 17 and 18 as targets: drift_diff on the real-data pairs, as through 15"
bash tests/majors.sh "$AUDIT_PORT" "$W" | tee "$W/majors.log"
summary+=("majors: $(grep -c 'identical to 15$' "$W/majors.log") other majors (13 14 16 17 18) = 15 on $(grep -om1 '[0-9]* pairs, [0-9]* rows' "$W/majors.log") each")

step "backup: pg_dump + pg_restore of an audit database keeps the run state"
bash tests/dump_restore.sh "$AUDIT_PORT" "$APP_PORT" "$W" 2> >(grep -v "circular foreign-key\|detail: outbox\|hint: \(You might\|Consider using\)" >&2)
summary+=("backup: dump + restore announces nothing new")

step "faults of the replica on the real topology: locked catalog, 5 s outage, paused replay, promotion"
bash tests/faults.sh "$W"
summary+=("faults: locked catalog, outage blip, stale replica, promotion")

step "drift-notifier: unit tests, and integration tests against the audit cluster + a fake Asana"
# One thread: a test restarts the cluster under the notifier.
set +e
DW_TEST_PG_PORT=$AUDIT_PORT DW_TEST_PGDATA=$W/audit/data DW_PG_BIN=$PG_BIN \
  cargo test -q -p drift-notifier -- --test-threads=1 2>&1 | tee "$W/notifier.log" \
  | grep -E "^test result|FAILED|panicked|^---- "
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || { tail -60 "$W/notifier.log"; die "notifier tests failed (cargo test exited $rc)"; }
[ "$(grep -c '^test result: ok' "$W/notifier.log")" -ge 2 ] || { tail -60 "$W/notifier.log"; die "notifier tests did not run"; }
summary+=("notifier: $(grep '^test result' "$W/notifier.log" | awk '{s+=$4} END {print s}') tests passed")

step "real dbt: a manifest from dbt parse loads the same contract as the YAML files"
bash tests/real_dbt.sh "$AUDIT_PORT" "$W" "$ROOT/target/debug/drift-notifier" 2> >(grep -v "does not exist, skipping" >&2)
summary+=("real dbt: $(grep -o 'dbt [0-9.]*' <<<"$("${DW_DBT_VENV:-$HOME/.cache/drift_watch/dbt-venv}/bin/dbt" --version 2>/dev/null | grep installed)" || echo "dbt") manifest = YAML contract")

step "Debian packages: scripts/package.sh, lintian, apt-get install, CREATE EXTENSION, the unit verified and run as it says, purge"
# Last: the packages overwrite, then remove, the extension files installed in step 3; the test
# puts those files back byte for byte.
bash tests/package.sh "$W"
summary+=("packages: $(cat "$W/package/summary")")

log "summary"
printf '  %s\n' "${summary[@]}"
