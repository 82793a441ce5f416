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
