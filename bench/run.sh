#!/usr/bin/env bash
# On-demand performance benchmark for drift_watch (not part of CI): builds the extension in release
# mode, fills a throwaway cluster with a synthetic 150,000-column catalog and a 1,000-table contract,
# times drift_diff() against the physical limit (the bare catalog query) and against what dbt-based
# tools do (one information_schema query per table), then times load_contract() on a real manifest.
# Prints a Markdown table on stdout; progress goes to stderr.
#
# Env: BENCH_SKIP_INSTALL=1 (use the installed build), BENCH_REPS (default 7),
#      BENCH_MANIFEST (a gzipped manifest.json).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

REPS=${BENCH_REPS:-7}
MANIFEST=${BENCH_MANIFEST:-../shared/realdata/manifests/gitlab_analytics_manifest_dbt0.19.1_2022-02.json.gz}
[ -f "$MANIFEST" ] || die "no manifest at $MANIFEST"

. bench/lib.sh
bench_install
# Whether the library changed during the run.
lib_sum=$(md5sum <"$lib")
load_avg=$(cut -d" " -f1 /proc/loadavg)   # benchmarks on a busy machine are noisy: say so

dir=$(mktemp -d /tmp/drift_watch_bench.XXXXXX)
port=$(free_port)
trap 'cluster_stop "$dir"; rm -rf "$dir"' EXIT
log "cluster on port $port in $dir"
cluster_init "$dir" "$port" "shared_buffers = '256MB'"
pg "$port" -d postgres -c "CREATE DATABASE bench"
db() { pg "$port" -d bench "$@"; }

# run_ms NAME FILE [N]: median ms of N warm runs of the pgbench script FILE (bench/lib.sh).
run_ms() { pgbench_ms "$port" bench "$2" "${3:-$REPS}" "$dir/log_$1"; }
sql_file() { local f="$dir/$1.sql"; cat >"$f"; echo "$f"; }   # stdin -> $dir/NAME.sql

log "synthetic catalog: 5 schemas × 1,000 tables × 30 columns"
t0=$(date +%s)
db -c "CREATE EXTENSION drift_watch CASCADE" -c "CREATE EXTENSION IF NOT EXISTS postgres_fdw" -f bench/synthetic.sql
db -c "VACUUM ANALYZE"   # catalog statistics, as on a long-lived warehouse
log "catalog built in $(( $(date +%s) - t0 )) s"

# The contract, as YAML text generated in SQL; then drift in 20 tables.
# Written to a file so that the timed load does not include generating it.
db -At -c "SELECT bench.contract_yaml()" >"$dir/contract.yml"
chmod 644 "$dir/contract.yml"
yaml_kb=$(( $(stat -c %s "$dir/contract.yml") / 1024 ))
yaml_ms=$(run_ms load_yaml "$(sql_file load_yaml <<<"SELECT load_contract('bench.yml', pg_read_file('$dir/contract.yml'));")")
db -c "SELECT bench.make_drift()" >/dev/null
read -r ntables ncols < <(db -At -F ' ' -c "SELECT count(*), sum(cardinality(column_names))
  FROM drift_watch.contract_table")
ndelta=$(db -At -c "SELECT count(*) FROM drift_diff()")
log "contract: $ntables tables, $ncols columns; drift_diff() returns $ndelta rows"

# Remote side: a postgres_fdw server pointing back at this very database.
db -c "CREATE SERVER bench_self FOREIGN DATA WRAPPER postgres_fdw
         OPTIONS (host '127.0.0.1', port '$port', dbname 'bench')" \
   -c "CREATE USER MAPPING FOR postgres SERVER bench_self OPTIONS (user 'postgres')"

# The statement drift_diff() issues, alone: extension/src/catalog_read.sql with the contract's
# inputs as literals, as a target receives it (drift_watch._catalog_query()). Wrapped so that
# every column is computed while one row reaches the client.
query=$(db -At -c "SELECT drift_watch._catalog_query()")
wrap='SELECT count(*), sum(length(q.attname) + q.atttypid::int8 + q.atttypmod + coalesce(length(q.user_type), 0) + coalesce(length(q.summary::text), 0)) FROM'
cols='relation int4, attnum int4, attname text, atttypid oid, atttypmod int4, user_type text, summary json'
spellings=$(db -At -c "SELECT quote_literal(array_agg(DISTINCT d)::text) FROM drift_watch.contract_table, unnest(data_types) d")
# The floor under that: the same rows with no type spelling at all (user types are not spelled).
user_spelling='CASE WHEN a.atttypid >= 10000 THEN format_type(a.atttypid, a.atttypmod) END'
[[ "$query" == *"$user_spelling"* ]] || die "catalog_read.sql no longer spells user types as bench/run.sh expects"
query_oids=${query//"$user_spelling"/NULL::text}

# The floors: the minimal query (names + one format_type per column), and the same with oids.
min_query=$(db -At -c "SELECT bench.minimal_query(false)")
min_oids_query=$(db -At -c "SELECT bench.minimal_query(true)")
min_wrap='SELECT count(*), sum(length(q.b) + length(q.c) + length(q.f)) FROM'
oids_wrap='SELECT count(*), sum(length(q.b) + length(q.c) + q.t::int8 + q.m) FROM'

log "timing (median of $REPS after one warm-up run)"
diff_ms=$(run_ms diff "$(sql_file diff <<<"SELECT count(*) FROM drift_diff();")")
raw_ms=$(PGOPTIONS='-c search_path=pg_catalog' run_ms raw "$(sql_file raw <<<"$wrap ($query) q;")")
raw_oids_ms=$(PGOPTIONS='-c search_path=pg_catalog' run_ms raw_oids "$(sql_file raw_oids <<<"$wrap ($query_oids) q;")")
min_ms=$(PGOPTIONS='-c search_path=pg_catalog' run_ms min "$(sql_file min <<<"$min_wrap ($min_query) q;")")
min_oids_ms=$(PGOPTIONS='-c search_path=pg_catalog' run_ms min_oids "$(sql_file min_oids <<<"$oids_wrap ($min_oids_query) q;")")
contract_ms=$(run_ms contract "$(sql_file contract <<<"SELECT count(*), sum(cardinality(c.column_names) + cardinality(c.data_types))
  FROM (SELECT source_name, table_name, database_name, schema_name, identifier,
               column_names, data_types, quoted
          FROM drift_watch.contract_table ORDER BY source_name, table_name) c;")")
canon_ms=$(run_ms canon "$(sql_file canon <<<"SELECT count(*) FROM drift_watch._canonical_types($spellings::text[]);")")
db -At -c "SELECT * FROM bench.information_schema_queries()" >"$dir/infoschema.sql"
info_ms=$(run_ms infoschema "$dir/infoschema.sql" 3)
rdiff_ms=$(run_ms rdiff "$(sql_file rdiff <<<"SELECT count(*) FROM drift_diff('bench_self');")")
rraw_ms=$(run_ms rraw "$(sql_file rraw <<<"$wrap dblink('bench_self', \$bench\$SET search_path = pg_catalog; $query\$bench\$) AS q($cols);")")
rmin_ms=$(run_ms rmin "$(sql_file rmin <<<"$min_wrap dblink('bench_self', \$bench\$SET search_path = pg_catalog; $min_query\$bench\$) AS q(b text, c text, f text);")")
rmin_oids_ms=$(run_ms rmin_oids "$(sql_file rmin_oids <<<"$oids_wrap dblink('bench_self', \$bench\$$min_oids_query\$bench\$) AS q(b text, c text, t oid, m int4);")")
rconn_ms=$(run_ms rconn "$(sql_file rconn <<<"SELECT * FROM dblink('bench_self', 'SELECT 1') AS t(x int);")")

# run_check: the first run takes 1,000 baselines and records the 60 deltas; a repeat run with no
# change only moves last_seen. Goal: a no-change run <= 2x drift_diff().
t0=$(date +%s%N)
db -c "SELECT run_check()" >/dev/null
first_check_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_ms=$(run_ms check "$(sql_file check <<<"SELECT run_check();")")
read -r check_new check_open < <(db -At -F ' ' -c "SELECT deltas_new, deltas_open FROM drift_watch.runs LIMIT 1")

# The real manifest: decompressed where the server (OS user postgres) can read it.
log "real manifest: $MANIFEST"
gzip -dc "$MANIFEST" >"$dir/manifest.json"
chmod 644 "$dir/manifest.json"
manifest_mb=$(awk -v b="$(stat -c %s "$dir/manifest.json")" 'BEGIN {printf "%.1f", b / 1048576}')
read_sql="pg_read_file('$dir/manifest.json')"
# octet_length, not length: counting the characters of 20 MB would cost more than reading them.
fread_ms=$(run_ms fread "$(sql_file fread <<<"SELECT octet_length($read_sql);")")
# Postgres's own JSON parser over the same text (validates every byte, builds nothing): the
# floor of any load that reads the whole document.
jparse_ms=$(run_ms jparse "$(sql_file jparse <<<"SELECT ($read_sql)::json IS NULL;")")
load_ms=$(run_ms load "$(sql_file load <<<"SELECT load_contract('manifest.json', $read_sql);")")
nmanifest=$(db -At -c "SELECT load_contract('manifest.json', $read_sql)")
read -r lnodes ledges lsql_kb < <(db -At -F ' ' -c "SELECT (SELECT count(*) FROM drift_watch.lineage_node),
  (SELECT count(*) FROM drift_watch.lineage_edge),
  (SELECT coalesce(sum(octet_length(code)), 0) / 1024 FROM drift_watch.lineage_node)")

# Peak memory: VmHWM (peak resident set) of a fresh backend, read by the backend itself from
# /proc/self/status, before and after one statement. Baseline first, in the same session.
hwm="SELECT substring(pg_read_file('/proc/self/status') from 'VmHWM:\s+(\d+)')::int"
hwm_delta() { db -At -c "$hwm" -c "$1" -c "$hwm" | awk 'NR == 1 {a = $1} END {printf "%d %d\n", a / 1024, ($1 - a) / 1024}'; }
read -r base_mb load_mem_mb < <(hwm_delta "SELECT load_contract('manifest.json', $read_sql) IS NULL")
read -r _ read_mem_mb < <(hwm_delta "SELECT octet_length($read_sql) IS NULL")
db -c "SELECT forget_contract('manifest.json')" >/dev/null   # back to the synthetic contract
read -r _ diff_mem_mb < <(hwm_delta "SELECT count(*) IS NULL FROM drift_diff()")
read -r _ raw_mem_mb < <(PGOPTIONS='-c search_path=pg_catalog' hwm_delta "$wrap ($query) q")

[ "$(md5sum <"$lib")" = "$lib_sum" ] || { log "warning: drift_watch.so was reinstalled during the run"; build="$build, REPLACED MID-RUN"; }

cat <<EOF

### drift_watch benchmark ($(date -u +%Y-%m-%d), PostgreSQL $(db -At -c "SHOW server_version" | cut -d' ' -f1), $(nproc) CPUs, load $load_avg, $build build)

Synthetic catalog: 5,000 tables / 150,000 columns; contract: $ntables tables / $ncols columns with
\`data_type\`, 20 tables drifted ($ndelta rows). Median of $REPS warm runs (information_schema: 3).

| Measurement | Median | Note |
|---|---:|---|
| (a) \`drift_diff()\`, local | $diff_ms ms | |
| (m) minimal query: relation + column names + one \`format_type\` per column, same 1,000 tables | $min_ms ms | the floor |
| **drift_diff / minimal query** | **$(ratio "$diff_ms" "$min_ms")** | goal ≤ 1.5× |
| (m′) minimal query with type oids only | $min_oids_ms ms | the floor under it |
| **drift_diff / minimal oids query** | **$(ratio "$diff_ms" "$min_oids_ms")** | |
| **remote drift_diff / remote minimal query** | **$(ratio "$rdiff_ms" "$rmin_ms")** | goal ≤ 1.2×; minimal via dblink: $rmin_ms ms |
| remote drift_diff / remote minimal oids query | $(ratio "$rdiff_ms" "$rmin_oids_ms") | minimal oids via dblink: $rmin_oids_ms ms |
| \`run_check()\`, first run (1,000 baselines, 60 new deltas) | $first_check_ms ms | one run, psql wall time |
| \`run_check()\`, repeat run with no change | $check_ms ms | $check_new new, $check_open open |
| **no-change \`run_check()\` / \`drift_diff()\`** | **$(ratio "$check_ms" "$diff_ms")** | goal ≤ 1.5× |
| (b) drift_diff's own catalog statement alone (\`_catalog_query()\`: type oids, \`format_type\` for user types only) | $raw_ms ms | what drift_diff runs |
| drift_diff / its own statement | $(ratio "$diff_ms" "$raw_ms") | |
| (b′) the same statement with no type spelling at all | $raw_oids_ms ms | floor |
| drift_diff / floor | $(ratio "$diff_ms" "$raw_oids_ms") | |
| drift_diff / (raw + contract read) | $(ratio "$diff_ms" "$(awk -v a="$raw_ms" -v b="$contract_ms" 'BEGIN {print a + b}')") | both reads are unavoidable |
| &nbsp;&nbsp;contract read (ORDER BY query alone) | $contract_ms ms | part of (a) |
| &nbsp;&nbsp;\`_canonical_types\` ($(tr -cd , <<<"$spellings" | wc -c | awk '{print $1 + 1}') spellings) | $canon_ms ms | part of (a) |
| (c) \`information_schema.columns\`, 1 query per table | $info_ms ms | $ntables queries, as dbt does |
| **information_schema / drift_diff** | **$(ratio "$info_ms" "$diff_ms")** | |
| (d) \`drift_diff('bench_self')\` via postgres_fdw server | $rdiff_ms ms | same cluster, TCP |
| (d) raw query via \`dblink\` | $rraw_ms ms | |
| **remote drift_diff / raw** | **$(ratio "$rdiff_ms" "$rraw_ms")** | dblink connect alone: $rconn_ms ms |
| \`load_contract\`, synthetic YAML (${yaml_kb} KB) | $yaml_ms ms | $ntables tables |
| \`load_contract\`, real manifest (${manifest_mb} MB) | $load_ms ms | $nmanifest source tables + lineage ($lnodes nodes, $ledges edges, $lsql_kb KB of SQL); goal < 1 s |
| \`pg_read_file\` of the manifest alone | $fread_ms ms | physical limit of the load |
| \`pg_read_file(...)::json\` (Postgres parses it, builds nothing) | $jparse_ms ms | parse floor |
| **manifest load / (read + parse floor)** | **$(ratio "$load_ms" "$jparse_ms")** | |
| backend peak memory (VmHWM) increase, manifest load | +$load_mem_mb MB | fresh backend: $base_mb MB |
| backend peak memory increase, file read alone | +$read_mem_mb MB | |
| backend peak memory increase, \`drift_diff()\` | +$diff_mem_mb MB | raw query alone: +$raw_mem_mb MB |
EOF
