#!/usr/bin/env bash
# Builds drift_watch's Debian packages, from release builds, stripped, every file root:root:
#   postgresql-15-drift-watch_<ver>_<arch>.deb  the extension, as `cargo pgrx package` lays it out
#   drift-notifier_<ver>_<arch>.deb             /usr/bin/drift-notifier, its systemd unit (not
#                                               enabled) and /etc/drift-watch/notifier.env
# into target/packages/ (<cargo's target directory>/packages), replacing any older build there,
# and prints the two paths on stdout. <ver> is the crates' version from Cargo.toml, which pgrx
# also writes as the extension's default_version. Maintainer scripts, the man page generator
# and lintian overrides are in deploy/debian/. Needs cargo-pgrx and dpkg-dev (scripts/setup.sh).
#   PG_CONFIG=...                the PostgreSQL to build for (default: 15, scripts/lib.sh)
#   DW_MAINTAINER="Name <mail>"  the Maintainer field (default: the author of the last commit)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
cd "$ROOT"
umask 022

for tool in cargo dpkg-deb dpkg-shlibdeps strip python3; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs what is missing)"
done
cargo pgrx --version >/dev/null 2>&1 || die "cargo-pgrx not found (scripts/setup.sh installs it)"

# The versions and cargo's target directory, from Cargo.toml (cargo metadata).
read -r TARGET EXT_VERSION NOTIFIER_VERSION LICENSE < <(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
v = {p["name"]: p for p in m["packages"]}
print(m["target_directory"], v["drift_watch"]["version"], v["drift-notifier"]["version"],
      v["drift-notifier"]["license"])')
[ "$LICENSE" = Apache-2.0 ] || die "the crates' license is $LICENSE: update the copyright files in scripts/package.sh"
# A Cargo pre-release (0.2.0-rc.1) sorts before its release in Debian as 0.2.0~rc.1.
deb_version() { echo "${1//-/\~}"; }

PG_MAJOR=$("$PG_CONFIG" --version | sed -nE 's/^PostgreSQL ([0-9]+).*/\1/p')
[ -n "$PG_MAJOR" ] || die "cannot read the PostgreSQL major version from $PG_CONFIG"
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
ARCH=$(dpkg --print-architecture)
EXT_PKG=postgresql-$PG_MAJOR-drift-watch
NOTIFIER_PKG=drift-notifier

MAINTAINER=${DW_MAINTAINER:-$(git -C "$ROOT" log -1 --format='%an <%ae>' 2>/dev/null || true)}
[[ "$MAINTAINER" =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || die "set DW_MAINTAINER=\"Name <email>\" (no git history to take it from)"
# Timestamps (file mtimes, changelog, man page) from the last commit, for reproducible packages.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
BUILT_FROM="a source tree"
if commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null); then
  BUILT_FROM="commit $commit"
  [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || BUILT_FROM+=" with local changes"
fi

first_year=$(git -C "$ROOT" log --reverse --format=%cd --date=format:%Y 2>/dev/null | head -1 || true)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
COPYRIGHT_YEARS=${first_year:-$last_year}
[ "$COPYRIGHT_YEARS" = "$last_year" ] || COPYRIGHT_YEARS+="-$last_year"

OUT=$TARGET/packages
BUILD=$OUT/build
rm -rf "$BUILD"
mkdir -p "$BUILD/debian"
# dpkg-shlibdeps reads debian/control and expects the files under debian/<package>/.
printf 'Source: drift-watch\n\nPackage: %s\nArchitecture: any\n\nPackage: %s\nArchitecture: any\n' \
  "$EXT_PKG" "$NOTIFIER_PKG" >"$BUILD/debian/control"

# --- Build ------------------------------------------------------------------------------------
log "building the extension for PostgreSQL $PG_MAJOR (cargo pgrx package, release)"
start=$SECONDS
(cd extension && cargo pgrx package --pg-config "$PG_CONFIG" --no-default-features --features "pg$PG_MAJOR" \
  --out-dir "$BUILD/pgrx") >"$BUILD/pgrx-package.log" 2>&1 \
  || { tail -40 "$BUILD/pgrx-package.log" >&2; die "cargo pgrx package failed (log: $BUILD/pgrx-package.log)"; }
log "building drift-notifier (release)"
cargo build --release --locked -p drift-notifier >"$BUILD/cargo-build.log" 2>&1 \
  || { tail -40 "$BUILD/cargo-build.log" >&2; die "cargo build failed (log: $BUILD/cargo-build.log)"; }
log "built in $((SECONDS - start)) s"

# --- Shared pieces ----------------------------------------------------------------------------
# The Rust crates linked into a package's binary (normal dependencies, not proc-macros), as
# "name version: license" lines, for its copyright file.
linked_crates() {
  cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" \
    | python3 -c '
import json, sys
m = json.load(sys.stdin)
pkgs = {p["id"]: p for p in m["packages"]}
nodes = {n["id"]: n for n in m["resolve"]["nodes"]}
root = next(p["id"] for p in m["packages"] if p["name"] == sys.argv[1])
seen, todo = set(), [root]
while todo:
    i = todo.pop()
    if i in seen:
        continue
    seen.add(i)
    for d in nodes[i]["deps"]:
        p = pkgs[d["pkg"]]
        if any(k["kind"] is None for k in d["dep_kinds"]) and not any(
                "proc-macro" in t["kind"] for t in p["targets"]):
            todo.append(d["pkg"])
for p in sorted((pkgs[i] for i in seen if i != root and pkgs[i]["source"]),
                key=lambda p: (p["name"], p["version"])):
    print("%s %s: %s" % (p["name"], p["version"], p["license"] or "see the crate"))' "$1"
}

# write_docs DIR PACKAGE CRATE VERSION: usr/share/doc/PACKAGE/{copyright,changelog.gz}.
write_docs() {
  local dir=$1 pkg=$2 crate=$3 version=$4 doc=$1/usr/share/doc/$2
  mkdir -p "$doc"
  {
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: drift_watch"
    echo "Comment: Built from $BUILT_FROM by scripts/package.sh."
    echo " Besides drift_watch's own code, the binary contains these Rust crates from"
    echo " crates.io, each under the license it declares (name version: SPDX expression):"
    echo " ."
    linked_crates "$crate" | sed 's/^/ /'
    echo
    echo "Files: *"
    echo "Copyright: $COPYRIGHT_YEARS The drift_watch authors"
    echo "License: Apache-2.0"
    echo
    echo "License: Apache-2.0"
    echo " Licensed under the Apache License, Version 2.0 (the \"License\"); you may not"
    echo " use this file except in compliance with the License. You may obtain a copy of"
    echo " the License at"
    echo " ."
    echo "     http://www.apache.org/licenses/LICENSE-2.0"
    echo " ."
    echo " Unless required by applicable law or agreed to in writing, software"
    echo " distributed under the License is distributed on an \"AS IS\" BASIS, WITHOUT"
    echo " WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the"
    echo " License for the specific language governing permissions and limitations under"
    echo " the License."
    echo " ."
    echo " On Debian systems, the complete text of the Apache License, Version 2.0 can be"
    echo " found in \"/usr/share/common-licenses/Apache-2.0\"."
  } >"$doc/copyright"
  # A version without a Debian revision is a native one: its changelog is changelog.gz.
  {
    echo "$pkg ($version) unstable; urgency=medium"
    echo
    echo "  * drift_watch $version, built from $BUILT_FROM."
    echo
    echo " -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n >"$doc/changelog.gz"
}

# build_deb DIR PACKAGE VERSION DEPENDS FIELDS DESCRIPTION: DEBIAN/control (Installed-Size, and
# Depends = the shared libraries its ELF files need + DEPENDS) and DEBIAN/md5sums, then dpkg-deb.
build_deb() {
  local dir=$1 pkg=$2 version=$3 depends=$4 fields=$5 description=$6 elf shlibs size deb
  find "$dir" -type d -exec chmod 0755 {} +
  mapfile -t elf < <(cd "$BUILD" && find "debian/$pkg" -path "*/DEBIAN" -prune -o -type f -print \
    | while read -r f; do [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && echo "$f"; done)
  [ ${#elf[@]} -gt 0 ] || die "$pkg: no ELF file to compute dependencies from"
  shlibs=$(cd "$BUILD" && dpkg-shlibdeps -O "${elf[@]}" 2>"$BUILD/$pkg.shlibdeps.log" | sed -n 's/^shlibs:Depends=//p') \
    || { cat "$BUILD/$pkg.shlibdeps.log" >&2; die "dpkg-shlibdeps failed for $pkg"; }
  [ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependency for $pkg"
  size=$(find "$dir" -mindepth 1 -path "$dir/DEBIAN" -prune -o \( -type f -printf '%s\n' -o -printf '1024\n' \) \
    | awk '{ s += int(($1 + 1023) / 1024) } END { print s }')
  mkdir -p "$dir/DEBIAN"
  {
    echo "Package: $pkg"
    echo "Version: $version"
    echo "Architecture: $ARCH"
    echo "Maintainer: $MAINTAINER"
    echo "Installed-Size: $size"
    echo "Depends: $shlibs${depends:+, $depends}"
    [ -z "$fields" ] || printf '%s\n' "$fields"
    echo "Section: database"
    echo "Priority: optional"
    printf '%s\n' "$description"
  } >"$dir/DEBIAN/control"
  (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort \
    | grep -vxF -f <(sed 's#^/##' DEBIAN/conffiles 2>/dev/null || true) \
    | xargs -r -d '\n' md5sum) >"$dir/DEBIAN/md5sums"
  chmod 0644 "$dir/DEBIAN/control" "$dir/DEBIAN/md5sums"
  deb=$OUT/${pkg}_${version}_$ARCH.deb
  dpkg-deb --root-owner-group -Zxz --build "$dir" "$deb" >/dev/null
  echo "$deb"
}

rm -f "$OUT/${EXT_PKG}"_*.deb "$OUT/${NOTIFIER_PKG}"_*.deb

# --- The extension ----------------------------------------------------------------------------
E=$BUILD/debian/$EXT_PKG
cp -a "$BUILD/pgrx" "$E"
so=$E$PKGLIBDIR/drift_watch.so
control=$E$SHAREDIR/extension/drift_watch.control
for f in "$so" "$control"; do [ -f "$f" ] || die "cargo pgrx package did not produce ${f#"$E"}"; done
default_version=$(sed -nE "s/^default_version *= *'([^']*)'.*/\1/p" "$control")
[ "$default_version" = "$EXT_VERSION" ] \
  || die "drift_watch.control says default_version '$default_version', Cargo.toml $EXT_VERSION"
[ -f "$E$SHAREDIR/extension/drift_watch--$default_version.sql" ] || die "no drift_watch--$default_version.sql"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$so"
chmod 0644 "$so"
EXT_DEB_VERSION=$(deb_version "$default_version")
write_docs "$E" "$EXT_PKG" drift_watch "$EXT_DEB_VERSION"
[ ! -f deploy/debian/extension.lintian-overrides ] \
  || install -D -m 0644 deploy/debian/extension.lintian-overrides "$E/usr/share/lintian/overrides/$EXT_PKG"
ext_deb=$(build_deb "$E" "$EXT_PKG" "$EXT_DEB_VERSION" \
  "postgresql-$PG_MAJOR, postgresql-contrib-$PG_MAJOR" \
  "Recommends: postgresql-$PG_MAJOR-cron
Suggests: $NOTIFIER_PKG" \
  "Description: dbt source contract drift detection for PostgreSQL $PG_MAJOR
 drift_watch keeps a dbt project's source contract honest against the
 application database it reads. It stores the contract (the project's YAML
 properties files, or its manifest.json) in an audit database and compares it
 with the live catalog of a read-replica, read through a postgres_fdw foreign
 server: drift_diff() returns one row per added, removed, retyped or renamed
 column and per missing table, and run_check() records each change once, for a
 daily pg_cron job.
 .
 This package holds the extension for PostgreSQL $PG_MAJOR: CREATE EXTENSION
 drift_watch CASCADE. The drift-notifier package files its findings as Asana
 tasks.")

# --- The notifier -----------------------------------------------------------------------------
N=$BUILD/debian/$NOTIFIER_PKG
install -D -m 0755 "$TARGET/release/drift-notifier" "$N/usr/bin/drift-notifier"
strip --remove-section=.comment --remove-section=.note "$N/usr/bin/drift-notifier"
# The unit of deploy/, with the packaged binary's path and a pointer to the man page.
unit=$N/usr/lib/systemd/system/drift-notifier.service
mkdir -p "$(dirname "$unit")"
{
  echo "# drift-notifier as a systemd service, from the drift-notifier package. It is not enabled"
  echo "# on installation: fill in /etc/drift-watch/notifier.env (root-owned, 0600), then"
  echo "#   systemctl enable --now drift-notifier"
  echo "#   journalctl -u drift-notifier -f"
  echo "# This file is replaced on upgrade; local changes go in a drop-in: systemctl edit drift-notifier"
  echo
  sed -n '/^\[Unit\]/,$p' deploy/drift-notifier.service \
    | sed -E 's#^ExecStart=(-?)[^ ]*/drift-notifier( |$)#ExecStart=\1/usr/bin/drift-notifier\2#' \
    | sed -E '/^Description=/a Documentation=man:drift-notifier(1)'
} >"$unit"
chmod 0644 "$unit"
grep -q '^ExecStart=/usr/bin/drift-notifier ' "$unit" || die "no ExecStart=.../drift-notifier in deploy/drift-notifier.service"
env_file=$(sed -nE 's/^EnvironmentFile=-?//p' "$unit")
[[ "$env_file" == /etc/* ]] || die "the unit's EnvironmentFile ($env_file) is not under /etc"
# Secrets (DATABASE_URL, ASANA_TOKEN): root's alone. systemd reads it before dropping privileges.
install -D -m 0600 deploy/notifier.env.example "$N$env_file"
mkdir -p "$N/DEBIAN"
echo "$env_file" >"$N/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "deploy/debian/drift-notifier.$script" "$N/DEBIAN/$script"
done
mkdir -p "$N/usr/share/man/man1"
python3 deploy/debian/manpage.py "$N/usr/bin/drift-notifier" "$NOTIFIER_VERSION" \
  "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" | gzip -9n >"$N/usr/share/man/man1/drift-notifier.1.gz"
NOTIFIER_DEB_VERSION=$(deb_version "$NOTIFIER_VERSION")
write_docs "$N" "$NOTIFIER_PKG" drift-notifier "$NOTIFIER_DEB_VERSION"
[ ! -f deploy/debian/drift-notifier.lintian-overrides ] \
  || install -D -m 0644 deploy/debian/drift-notifier.lintian-overrides "$N/usr/share/lintian/overrides/$NOTIFIER_PKG"
notifier_deb=$(build_deb "$N" "$NOTIFIER_PKG" "$NOTIFIER_DEB_VERSION" "" \
  "Recommends: ca-certificates
Suggests: $EXT_PKG" \
  "Description: sidecar filing drift_watch's dbt source drift as Asana tasks
 drift-notifier runs beside the audit database where the drift_watch
 PostgreSQL extension records dbt source drift. It turns each check run's new
 changes into one Asana task (table, column, change, contract and live type,
 and the YAML to paste into the sources file), then comments on the task and
 completes it when the drift is resolved. Delivery is exactly once, paced to
 Asana's quota, and survives restarts of either side.
 .
 It also loads a dbt project's contract into the audit database (contract
 push), gates pull requests on drift (contract check) and runs a check on
 demand. The package ships a hardened systemd unit (DynamicUser), not enabled
 on installation, and its configuration in /etc/drift-watch/notifier.env.")

log "packages in $OUT:"
for deb in "$ext_deb" "$notifier_deb"; do
  printf '    %s (%s KiB)\n' "$(basename "$deb")" "$(( ($(stat -c %s "$deb") + 1023) / 1024 ))" >&2
  echo "$deb"
done
