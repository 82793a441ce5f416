#!/usr/bin/env bash
# Installs everything drift_watch needs on a fresh Debian 12 machine, idempotently:
# PostgreSQL 15 server + headers + pg_cron, clang (bindgen), systemd-analyze (the unit check),
# cargo-pgrx 0.18.0, `cargo pgrx init`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PGRX_VERSION=0.18.0
packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib postgresql-15-cron
          libclang-dev clang sudo pkg-config python3 systemd)

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
