# Shared by the benchmarks: sourced after scripts/lib.sh, from the repository's root.

# bench_install: installs the release build (unless BENCH_SKIP_INSTALL=1), then sets `lib` (the
# installed library) and `build` (release, debug or other: which build is measured). The installed
# library is shared with every other build on this machine (scripts/test.sh installs a debug
# build), so a benchmark says which one it measured.
bench_install() {
  if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
    log "cargo pgrx install --release"
    (cd extension && cargo pgrx install --release --pg-config "$PG_CONFIG") >&2
  fi
  lib="$($PG_CONFIG --pkglibdir)/drift_watch.so"
  build=other
  cmp -s "$lib" target/release/libdrift_watch.so && build=release
  cmp -s "$lib" target/debug/libdrift_watch.so && build=debug
  [ "$build" = release ] || log "warning: the installed drift_watch.so is not target/release's ($build build)"
}

# pgbench_ms PORT DB FILE N LOG: runs the pgbench script FILE N+1 times on one connection and
# prints the median latency in ms of the last N (the first run warms the backend's caches and is
# dropped). pgbench's per-transaction log (-l, prefix LOG) gives each latency in µs (3rd field).
pgbench_ms() {
  local port=$1 db=$2 file=$3 n=$4 log=$5
  rm -f "$log".*
  pgbench -n -h 127.0.0.1 -p "$port" -U postgres -t $((n + 1)) -f "$file" -l --log-prefix="$log" "$db" \
    >"$log.out" 2>&1 || { cat "$log.out" >&2; die "pgbench failed on $file"; }
  tail -q -n "$n" "$log".[0-9]* | awk '{print $3}' | sort -n \
    | awk '{v[NR] = $1} END {printf "%.1f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1000}'
}

# ratio A B: A / B as "1.23×".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a / b}'; }
