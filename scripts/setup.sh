#!/usr/bin/env bash
# Installs everything drift_watch needs on a fresh Debian 12 machine, idempotently:
# PostgreSQL 15 server + headers + pg_cron, clang (bindgen), systemd-analyze (the unit check),
# dpkg-dev + lintian (scripts/package.sh, tests/package.sh), cargo-pgrx 0.18.0, `cargo pgrx init`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PGRX_VERSION=0.18.0
packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib postgresql-15-cron
          libclang-dev clang sudo pkg-config python3 python3-venv systemd openssl
          dpkg-dev lintian)

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -qs "pg15 *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  log "cargo pgrx init --pg15 $PG_CONFIG"
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

# Real dbt, for the tests that need dbt's own output (a manifest from `dbt parse`), in a
# virtualenv of its own. dbt-core 1.12 fetches a parser wheel from GitHub at install time, so
# the 1.11 line is pinned (PyPI only).
DBT_VENV=${DW_DBT_VENV:-$HOME/.cache/drift_watch/dbt-venv}
if ! "$DBT_VENV/bin/dbt" --version 2>/dev/null | grep -q "installed: 1.11"; then
  log "installing dbt-core 1.11 + dbt-postgres 1.9 into $DBT_VENV"
  rm -rf "$DBT_VENV"
  python3 -m venv "$DBT_VENV"
  "$DBT_VENV/bin/pip" install -q --disable-pip-version-check "dbt-core~=1.11.0" "dbt-postgres~=1.9.0"
fi
