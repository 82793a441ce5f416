#!/usr/bin/env bash
# On-demand benchmark of drift-notifier (not part of CI): starts a throwaway PostgreSQL 15
# cluster with the extension, then runs notifier/tests/bench.rs (release build) against it and a
# fake Asana: NOTIFY→POST latency; draining 1,000 pending runs against a fake that enforces
# Asana's quota (1,500 requests a minute, as 250 per any 10 s): no 429, and the time against the
# quota's minimum; peak memory for one run of 150,000 deltas. Takes about 6 minutes.
# With DW_TEST_PG_PORT set, uses that running cluster (with the extension installed) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ -n "${DW_TEST_PG_PORT:-}" ]; then
  cargo test -q --release -p drift-notifier --test bench -- --ignored --nocapture 2>&1 | grep -E '^\|'
  exit
fi
(cd extension && cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null)
dir=$(mktemp -d /tmp/drift_watch_nbench.XXXXXX)
chmod 755 "$dir"
port=$(free_port)
trap 'cluster_stop "$dir"; rm -rf "$dir"' EXIT
cluster_init "$dir" "$port"
DW_TEST_PG_PORT=$port cargo test -q --release -p drift-notifier --test bench -- --ignored --nocapture 2>&1 \
  | grep -E '^\|'
