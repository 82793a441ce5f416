#!/usr/bin/env bash
# On-demand scale benchmark for many targets (not part of CI): one audit database checks 100
# application databases, each through its own foreign server, each with 1,000 tables of 8
# columns that its own dbt source (1,000 tables, with data_type) describes, mapped with
# drift_watch.map_sources. The checks are pg_cron jobs (drift_watch.schedule_check), all due in
# the same minute. Measures:
#   - the wall time of a whole round, from the first run's start to the last run's end, for the
#     first round (every table's baseline taken) and a steady round (nothing changed); goal: all
#     100 under 60 s on a 2-core machine;
#   - the audit database's work per check: a no-change run_check of one target while the audit
#     database holds only that target's contract, and again with all 100 (goal: unchanged), side
#     by side in this run.
# Prints a Markdown table on stdout; progress goes to stderr. Takes about 4 minutes.
#
# Env: BENCH_SKIP_INSTALL=1 (use the installed build), SCALE_TARGETS (100), SCALE_TABLES (1000),
#      SCALE_CLUSTERS (2 target clusters), SCALE_JOBS (cron.max_running_jobs, 8), BENCH_REPS (7).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

TARGETS=${SCALE_TARGETS:-100}
TABLES=${SCALE_TABLES:-1000}
CLUSTERS=${SCALE_CLUSTERS:-2}
JOBS=${SCALE_JOBS:-8}
REPS=${BENCH_REPS:-7}

. bench/lib.sh
bench_install
load_avg=$(cut -d" " -f1 /proc/loadavg)

dir=$(mktemp -d /tmp/drift_watch_scale.XXXXXX)
chmod 755 "$dir"
cleanup() {
  if [ "${SCALE_KEEP:-0}" = 1 ]; then log "kept: $dir (audit port $aport)"; return; fi
  for d in "$dir"/*/; do [ -d "$d/data" ] && cluster_stop "${d%/}"; done
  rm -rf "$dir"
}
trap cleanup EXIT

aport=$(free_port)
echo "$aport" >"$dir/audit_port"
log "audit cluster (pg_cron, $JOBS jobs at once) on port $aport"
cluster_init "$dir/audit" "$aport" "shared_preload_libraries = 'pg_cron'" \
  "cron.database_name = 'audit'" "cron.use_background_workers = on" \
  "max_worker_processes = $((JOBS + 8))" "cron.max_running_jobs = $JOBS" \
  "max_connections = 200" "shared_buffers = '512MB'" "log_min_messages = warning"
audit() { pg "$aport" -d audit "$@"; }
pg "$aport" -d postgres -c "CREATE DATABASE audit"
audit -c "CREATE EXTENSION drift_watch CASCADE" -c "CREATE EXTENSION pg_cron" \
      -c "CREATE EXTENSION IF NOT EXISTS postgres_fdw"

# Target clusters: a template database with the tables, copied once per target.
declare -a tport
t0=$(date +%s)
for c in $(seq 1 "$CLUSTERS"); do
  port=$(free_port)
  tport[$c]=$port
  log "target cluster $c on port $port"
  cluster_init "$dir/target$c" "$port" "max_connections = 200" "fsync = off" \
    "log_min_messages = warning"
  pg "$port" -d postgres -c "CREATE DATABASE tmpl"
  pg "$port" -d tmpl -c "CREATE SCHEMA app" -c "
    DO \$\$BEGIN
      FOR i IN 1..$TABLES LOOP
        EXECUTE format('CREATE TABLE app.%I (id bigint PRIMARY KEY, name text NOT NULL,
          amount numeric(12,2), created_at timestamptz, active boolean, note varchar(200),
          qty integer, payload jsonb)', 't' || lpad(i::text, 4, '0'));
      END LOOP;
    END\$\$" -c "VACUUM ANALYZE"
done
# Targets are spread over the clusters; each is one database.
target_port() { echo "${tport[$(( ($1 - 1) % CLUSTERS + 1 ))]}"; }
name() { printf 't%03d' "$1"; }
for i in $(seq 1 "$TARGETS"); do
  pg "$(target_port "$i")" -d postgres -c "CREATE DATABASE $(name "$i") TEMPLATE tmpl STRATEGY FILE_COPY"
done
log "$TARGETS target databases × $TABLES tables built in $(( $(date +%s) - t0 )) s"

# Foreign servers, user mappings and the mapping of source src_NNN to target tNNN.
{
  for i in $(seq 1 "$TARGETS"); do
    n=$(name "$i")
    echo "CREATE SERVER $n FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$(target_port "$i")', dbname '$n');"
    echo "CREATE USER MAPPING FOR postgres SERVER $n OPTIONS (user 'postgres');"
  done
} | audit -q

# Source src_NNN's YAML: $TABLES tables, 8 columns with data_type each.
audit -c "
CREATE FUNCTION pg_temp.source_yaml(src text, ntables int) RETURNS text LANGUAGE sql AS \$\$
  SELECT E'version: 2\nsources:\n  - name: ' || src || E'\n    schema: app\n    tables:\n' ||
         string_agg(format(E'      - name: %s\n        columns:\n%s', t, cols), '' ORDER BY t)
    FROM (SELECT 't' || lpad(i::text, 4, '0') AS t FROM generate_series(1, ntables) i) x,
         (SELECT string_agg(format(E'          - {name: %s, data_type: \"%s\"}\n', c, d), '' ORDER BY o) AS cols
            FROM unnest(ARRAY['id','name','amount','created_at','active','note','qty','payload'],
                        ARRAY['bigint','text','numeric(12,2)','timestamp with time zone','boolean',
                              'character varying(200)','integer','jsonb']) WITH ORDINALITY AS u(c, d, o)) y
\$\$;
CREATE TABLE public.scale_yaml AS
  SELECT i, 'scale/src_' || lpad(i::text, 3, '0') || '.yml' AS origin,
         pg_temp.source_yaml('src_' || lpad(i::text, 3, '0'), $TABLES) AS yaml
    FROM generate_series(1, $TARGETS) i;" >/dev/null
yaml_kb=$(audit -At -c "SELECT octet_length(yaml) / 1024 FROM scale_yaml WHERE i = 1")

# run_ms SQL: median ms of $REPS warm runs of SQL on one connection (bench/lib.sh).
run_ms() {
  local f="$dir/q_$RANDOM.sql"
  echo "$1" >"$f"
  pgbench_ms "$aport" audit "$f" "$REPS" "$dir/log_rm"
}

# Work per check with one target's contract only, then with all of them.
audit -c "SELECT load_contract(origin, yaml) FROM scale_yaml WHERE i = 1" \
      -c "SELECT drift_watch.map_sources('t001', 'src_001')" -c "SELECT run_check('t001')" >/dev/null
one_ms=$(run_ms "SELECT run_check('t001');")
one_diff_ms=$(run_ms "SELECT count(*) FROM drift_diff('t001');")
log "no-change run_check('t001') with 1 source loaded: $one_ms ms"

t0=$(date +%s%N)
audit -c "SELECT sum(load_contract(origin, yaml)) FROM scale_yaml WHERE i > 1" >/dev/null
load_s=$(awk -v n="$(( $(date +%s%N) - t0 ))" 'BEGIN {printf "%.1f", n / 1e9}')
audit -c "SELECT drift_watch.map_sources(format('t%s', lpad(i::text, 3, '0')), format('src_%s', lpad(i::text, 3, '0')))
            FROM generate_series(2, $TARGETS) i" -c "VACUUM ANALYZE" >/dev/null
read -r ntables ncols < <(audit -At -F ' ' -c "SELECT count(*), sum(cardinality(column_names)) FROM drift_watch.contract_table")
all_ms=$(run_ms "SELECT run_check('t001');")
all_diff_ms=$(run_ms "SELECT count(*) FROM drift_diff('t001');")
log "no-change run_check('t001') with $TARGETS sources loaded ($ntables tables): $all_ms ms"

[ "${SCALE_ROUNDS:-1}" = 0 ] && exit 0
# The pg_cron round: every target scheduled every minute; a round is the runs that start in one
# minute. Waits for two rounds after the first full minute: the first takes the baselines of the
# 99 unchecked targets, the second changes nothing.
audit -c "SELECT count(drift_watch.schedule_check(format('t%s', lpad(i::text, 3, '0')), '* * * * *'))
            FROM generate_series(1, $TARGETS) i" >/dev/null
round() {  # round N: waits until $TARGETS runs started in the Nth minute after scheduling ended, then reports
  local minute=$1
  for _ in $(seq 1 240); do
    read -r done failed < <(audit -At -F ' ' -c "
      SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), count(*) FILTER (WHERE status = 'failed')
        FROM drift_watch.runs WHERE started_at >= '$minute'::timestamptz
         AND started_at < '$minute'::timestamptz + interval '1 minute'")
    [ "$done" -ge "$TARGETS" ] && break
    sleep 2
  done
  [ "$done" -ge "$TARGETS" ] || die "round at $minute: only $done of $TARGETS runs finished"
  [ "$failed" = 0 ] || die "round at $minute: $failed runs failed"
  audit -At -F ' ' -c "
    SELECT round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 1),
           round(extract(epoch FROM min(started_at) - '$minute'::timestamptz)::numeric, 1),
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) * 1000)::numeric),
           round((max(extract(epoch FROM finished_at - started_at)) * 1000)::numeric),
           sum(deltas_new), count(DISTINCT target)
      FROM drift_watch.runs WHERE started_at >= '$minute'::timestamptz
       AND started_at < '$minute'::timestamptz + interval '1 minute'"
}
m1=$(audit -At -c "SELECT date_trunc('minute', now()) + interval '1 minute'")
m2=$(audit -At -c "SELECT '$m1'::timestamptz + interval '1 minute'")
log "pg_cron rounds at $m1 and $m2"
read -r r1_wall r1_lag r1_med r1_max r1_new r1_targets < <(round "$m1")
log "round 1: $r1_wall s"
read -r r2_wall r2_lag r2_med r2_max r2_new r2_targets < <(round "$m2")
log "round 2: $r2_wall s"
audit -c "SELECT count(drift_watch.unschedule_check(format('t%s', lpad(i::text, 3, '0'))))
            FROM generate_series(1, $TARGETS) i" >/dev/null
# The views over everything: one query each, wall time.
wall_ms() { local t0; t0=$(date +%s%N); audit -At -c "$1" >/dev/null; echo $(( ($(date +%s%N) - t0) / 1000000 )); }
coverage_ms=$(wall_ms "SELECT count(*) FROM drift_watch.coverage")
sources_ms=$(wall_ms "SELECT count(*) FROM drift_watch.target_sources")
read -r snaps open_deltas < <(audit -At -F ' ' -c "SELECT (SELECT count(*) FROM drift_watch.snapshot),
  (SELECT count(*) FROM drift_watch.delta WHERE resolved_run IS NULL)")

cat <<EOF

### drift_watch scale benchmark ($(date -u +%Y-%m-%d), PostgreSQL $(audit -At -c "SHOW server_version" | cut -d' ' -f1), $(nproc) CPUs, load $load_avg, $build build)

$TARGETS targets (databases on $CLUSTERS loopback clusters, one foreign server each) × $TABLES tables × 8
columns; the audit database holds $ntables contract tables / $ncols columns in $TARGETS sources (YAML of
$yaml_kb KB each, loaded in $load_s s), each mapped to its target. pg_cron runs
\`drift_watch.run_check\` for every target in the same minute, at most $JOBS at once
(\`cron.max_running_jobs\`).

| Measurement | Value | Note |
|---|---:|---|
| pg_cron round 1: first checks ($r1_targets targets, baselines taken) | **$r1_wall s** | first start to last end; goal < 60 s; per run median $r1_med ms, max $r1_max ms; first start $r1_lag s after the minute |
| pg_cron round 2: nothing changed | **$r2_wall s** | per run median $r2_med ms, max $r2_max ms; $r2_new new deltas |
| no-change \`run_check('t001')\`, audit database holding 1 source | $one_ms ms | median of $REPS |
| no-change \`run_check('t001')\`, audit database holding $TARGETS sources | $all_ms ms | same run, same target |
| **work per check, $TARGETS sources / 1 source** | **$(ratio "$all_ms" "$one_ms")** | goal: unchanged (1.0×) |
| \`drift_diff('t001')\`, 1 source / $TARGETS sources | $one_diff_ms ms / $all_diff_ms ms | $(ratio "$all_diff_ms" "$one_diff_ms") |
| after the rounds | $snaps baselines, $open_deltas open deltas | every table checked, no drift reported |
| \`SELECT count(*) FROM drift_watch.coverage\` ($snaps relations) | $coverage_ms ms | each target's contract resolved once |
| \`SELECT count(*) FROM drift_watch.target_sources\` | $sources_ms ms | |
EOF
