#!/usr/bin/env bash
# The Debian packages of scripts/package.sh, installed on this machine as an administrator would:
#   1. lintian on both .debs: an error fails, other tags are shown;
#   2. `apt-get install ./...deb` of both; their files (dpkg -L), modes and checksums; the unit
#      installed but not enabled;
#   3. a fresh PostgreSQL cluster: CREATE EXTENSION drift_watch CASCADE, a contract, drift_diff(),
#      two run_check() calls that leave one task in the outbox;
#   4. `systemd-analyze verify` of the installed unit (and two broken copies of it fail);
#   5. the installed binary started as the installed unit says (ExecStart, Environment=, the
#      EnvironmentFile, DynamicUser/User, nothing inherited) against that cluster over verified
#      TLS, in dry-run mode: it logs JSON, serves /healthz and /metrics, prints the task, and
#      exits 0 on SIGTERM within TimeoutStopSec;
#   6. the unit enabled, then `apt-get remove --purge` of both: every file they installed is
#      gone, no directory only they owned is left, nor the enabled unit's symlinks, no user was
#      added, and CREATE EXTENSION fails;
#   7. the extension files that were installed before (scripts/test.sh's source build) put back,
#      byte for byte, and CREATE EXTENSION works again: the machine is left as it was.
#
#   tests/package.sh WORKDIR     (run last by scripts/test.sh: the packages replace, then remove,
#                                 the source-built extension files in the same system paths)
#   DW_PACKAGES=DIR              test the .debs in DIR instead of building them with scripts/package.sh
# Writes a one-line summary to WORKDIR/package/summary. Needs root, or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ $# -eq 1 ] || die "usage: $0 WORKDIR"
W=$1/package
started=$SECONDS

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
as_root() { "${SUDO[@]}" "$@"; }
apt_get() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@"; }
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
# Installed, or removed with its conffiles kept.
known() { local s; s=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) && [ "$s" != not-installed ]; }
# A live process (not a zombie), whoever runs it.
alive() { local s; s=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }
MARKER="# drift_watch tests/package.sh: test settings; apt-get purge removes this file"

SHAREDIR=$("$PG_CONFIG" --sharedir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
for tool in lintian systemd-analyze setpriv dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done

rm -rf "$W"
mkdir -p "$W"
chmod 755 "$W"

# --- The packages -----------------------------------------------------------------------------
if [ -n "${DW_PACKAGES:-}" ]; then
  debs=("$DW_PACKAGES"/postgresql-*-drift-watch_*.deb "$DW_PACKAGES"/drift-notifier_*.deb)
  for deb in "${debs[@]}"; do [ -f "$deb" ] || die "no package matching $deb"; done
  [ ${#debs[@]} -eq 2 ] || die "expected one extension and one notifier package in $DW_PACKAGES, found: ${debs[*]}"
  build_s=
else
  log "packages: scripts/package.sh"
  t=$SECONDS
  built=$(bash scripts/package.sh) || die "scripts/package.sh failed"
  mapfile -t debs <<<"$built"
  build_s=$((SECONDS - t))
  [ ${#debs[@]} -eq 2 ] || die "scripts/package.sh did not print two packages"
fi
EXT_DEB=${debs[0]}; NOTIFIER_DEB=${debs[1]}
EXT_PKG=$(dpkg-deb -f "$EXT_DEB" Package); NOTIFIER_PKG=$(dpkg-deb -f "$NOTIFIER_DEB" Package)
VERSION=$(dpkg-deb -f "$EXT_DEB" Version)
# The crates' version: the package's, except that a pre-release's '-' is '~' in Debian.
CRATE_VERSION=${VERSION//\~/-}
size_kib() { echo $(( ($(stat -c %s "$1") + 1023) / 1024 )); }

# --- Before: what this test will change ---------------------------------------------------------
# A notifier installed here with a configuration of its own is someone's service: refuse.
if known "$NOTIFIER_PKG"; then
  env_file=/etc/drift-watch/notifier.env
  shipped=$(dpkg-query -W -f='${Conffiles}\n' "$NOTIFIER_PKG" | awk -v f="$env_file" '$1 == f { print $2 }')
  if [ -f "$env_file" ] && [ "$(as_root md5sum "$env_file" | cut -d' ' -f1)" != "$shipped" ] \
     && [ "$(as_root head -1 "$env_file")" != "$MARKER" ]; then
    die "$NOTIFIER_PKG is installed and configured on this machine; this test installs and purges it (apt-get purge $NOTIFIER_PKG first)"
  fi
fi
# The source-built extension (scripts/test.sh installed it) is overwritten by the package and
# removed with it: its files are kept aside and put back at the end, byte for byte.
backup=$W/extension-before
mkdir -p "$backup"
saved=()
for f in "$PKGLIBDIR/drift_watch.so" "$SHAREDIR/extension/drift_watch.control" "$SHAREDIR"/extension/drift_watch--*.sql; do
  if [ -f "$f" ] && ! dpkg-query -S "$f" >/dev/null 2>&1; then
    mkdir -p "$backup$(dirname "$f")"
    cp -p "$f" "$backup$f"
    saved+=("$f")
  fi
done
passwd_before=$(cut -d: -f1 /etc/passwd | sort)

notifier_pid=
cluster=$W/cluster
cleanup() {
  set +e
  if [ -n "$notifier_pid" ] && alive "$notifier_pid"; then
    as_root kill -KILL "$notifier_pid"
  fi
  cluster_stop "$cluster"
  for pkg in "$EXT_PKG" "$NOTIFIER_PKG"; do
    if known "$pkg"; then
      log "cleanup: apt-get purge $pkg"
      apt_get remove --purge "$pkg" >/dev/null 2>&1
    fi
  done
  if [ ${#saved[@]} -gt 0 ] && [ ! -f "$SHAREDIR/extension/drift_watch.control" ]; then
    log "cleanup: the extension files as they were"
    restore_extension
  fi
}
# Puts the saved files back, unless something installed the extension meanwhile.
restore_extension() {
  local f
  [ ! -f "$SHAREDIR/extension/drift_watch.control" ] || return 0
  for f in "${saved[@]}"; do as_root cp -p "$backup$f" "$f" || return 1; done
}
trap cleanup EXIT

# --- 1. lintian ---------------------------------------------------------------------------------
log "lintian $(lintian --version | awk '{print $2}'): $(basename "$EXT_DEB") ($(size_kib "$EXT_DEB") KiB), $(basename "$NOTIFIER_DEB") ($(size_kib "$NOTIFIER_DEB") KiB)"
set +e
lintian --pedantic --display-experimental --show-overrides --tag-display-limit 0 "$EXT_DEB" "$NOTIFIER_DEB" \
  2>&1 | grep -v '^running with root privileges' >"$W/lintian.txt"
set -e
if [ -s "$W/lintian.txt" ]; then sed 's/^/    /' "$W/lintian.txt" >&2; fi
grep -q '^E: ' "$W/lintian.txt" && die "lintian reports errors"
tags() { grep -c "^[$1]: " "$W/lintian.txt" || true; }
lintian_summary="lintian: $(tags E) errors, $(tags W) warnings, $(tags IPX) info, $(tags O) overridden"

# --- 2. Install ---------------------------------------------------------------------------------
log "apt-get install ./$(basename "$EXT_DEB") ./$(basename "$NOTIFIER_DEB")"
for pkg in "$EXT_PKG" "$NOTIFIER_PKG"; do
  # A leftover of an interrupted run: apt-get would keep it ("already the newest version").
  if known "$pkg"; then apt_get remove --purge "$pkg" >/dev/null; fi
done
# apt reads the files as its sandbox user when it can; these may sit where it cannot (a notice).
apt_get install "$(realpath "$EXT_DEB")" "$(realpath "$NOTIFIER_DEB")" >"$W/apt-install.log" 2>&1 \
  || { cat "$W/apt-install.log" >&2; die "apt-get install failed"; }
for pkg in "$EXT_PKG" "$NOTIFIER_PKG"; do
  installed "$pkg" || die "$pkg is not installed"
  [ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$VERSION" ] || die "$pkg: installed version is not $VERSION"
  dpkg-query -L "$pkg" >"$W/$pkg.files"
  # Every file as shipped (dpkg's md5sums; the conffile separately).
  out=$(dpkg --verify "$pkg" 2>&1) || true
  [ -z "$out" ] || die "dpkg --verify $pkg: $out"
done
# Which listed paths were files (they must go) and which were directories (they may stay while
# another package owns them).
for pkg in "$EXT_PKG" "$NOTIFIER_PKG"; do
  while read -r path; do
    if [ -d "$path" ] && [ ! -L "$path" ]; then echo "$path" >>"$W/dirs"; else echo "$path" >>"$W/files"; fi
  done < <(grep -vx '/\.' "$W/$pkg.files")
done
expect_file() { # PATH MODE: in a package's file list, root:root, with that mode
  grep -qxF "$1" "$W/files" || die "$1 is not in the packages' file lists"
  [ "$(stat -c '%a %U:%G' "$1")" = "$2 root:root" ] || die "$1 is $(stat -c '%a %U:%G' "$1"), expected $2 root:root"
}
expect_file "$PKGLIBDIR/drift_watch.so" 644
expect_file "$SHAREDIR/extension/drift_watch.control" 644
expect_file "$SHAREDIR/extension/drift_watch--$CRATE_VERSION.sql" 644
expect_file /usr/bin/drift-notifier 755
expect_file /usr/lib/systemd/system/drift-notifier.service 644
expect_file /etc/drift-watch/notifier.env 600
expect_file /usr/share/man/man1/drift-notifier.1.gz 644
expect_file "/usr/share/doc/$EXT_PKG/copyright" 644
expect_file "/usr/share/doc/$NOTIFIER_PKG/copyright" 644
[ "$(dpkg-query -W -f='${Conffiles}' "$NOTIFIER_PKG" | awk 'NF { print $1 }')" = /etc/drift-watch/notifier.env ] \
  || die "$NOTIFIER_PKG: /etc/drift-watch/notifier.env is not its (only) conffile"
[ "$(dpkg-query -S "$PKGLIBDIR/drift_watch.so" | cut -d: -f1)" = "$EXT_PKG" ] || die "drift_watch.so is not $EXT_PKG's"
sed -nE "s/^default_version *= *'([^']*)'.*/\1/p" "$SHAREDIR/extension/drift_watch.control" | grep -qxF "$CRATE_VERSION" \
  || die "the installed control file's default_version is not the package's version $CRATE_VERSION"
/usr/bin/drift-notifier --version | grep -qxF "drift-notifier $CRATE_VERSION" || die "drift-notifier --version is not $CRATE_VERSION"
# It needs its configuration first: installed, not enabled (and, so, not started).
enabled=$(systemctl is-enabled drift-notifier.service 2>/dev/null || true)
[ "$enabled" = disabled ] || die "drift-notifier.service is '$enabled' after installation, expected disabled"
file_count=$(wc -l <"$W/files")

# --- 3. The extension in a fresh cluster ----------------------------------------------------------
port=$(free_port)
log "a fresh PostgreSQL cluster on 127.0.0.1:$port: CREATE EXTENSION drift_watch CASCADE"
cluster_init "$cluster" "$port"
tls_make_ca "$W/tls"
tls_install_server "$W/tls" "$cluster/data"
pg "$port" -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
pg "$port" -c "CREATE DATABASE pkgtest"
pg_tls_check "$port" pkgtest "$W/tls/ca.crt"
pg "$port" -d pkgtest >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION drift_watch CASCADE;
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id bigint PRIMARY KEY, total numeric(12,2), placed_at timestamptz);
-- The sidecar's login: the outbox functions and nothing else.
CREATE ROLE drift_notifier LOGIN;
GRANT drift_watch_notifier TO drift_notifier;
SQL
[ "$(pg "$port" -d pkgtest -At -c "SELECT extversion FROM pg_extension WHERE extname = 'drift_watch'")" = "$CRATE_VERSION" ] \
  || die "CREATE EXTENSION did not install version $CRATE_VERSION"
contract='sources:
  - name: shop
    tables:
      - name: orders
        columns:
          - name: id
            data_type: bigint
          - name: total
            data_type: numeric(12,2)
          - name: placed_at
            data_type: timestamptz
          - name: coupon
      - name: refunds'
loaded=$(pg "$port" -d pkgtest -At -v contract="$contract" <<<"SELECT drift_watch.load_contract('models/shop.yml', :'contract')")
[ "$loaded" = 2 ] || die "load_contract returned '$loaded', expected 2 tables"
diff=$(pg "$port" -d pkgtest -At -F' ' -c "SELECT table_name, coalesce(column_name, '-'), change FROM drift_watch.drift_diff() ORDER BY 1, 2, 3")
expected="orders coupon removed
refunds - table_missing"
[ "$diff" = "$expected" ] || die "drift_diff() returned:
$diff
expected:
$expected"
# The first check takes the tables' baseline (and announces the removed column and the missing
# table); a column added after it is new drift, announced by the next check: the notifier's
# dry run must print a task naming it.
pg "$port" -d pkgtest -At -c "SELECT drift_watch.run_check()" >/dev/null
pg "$port" -d pkgtest -c "ALTER TABLE shop.orders ADD COLUMN sales_channel text"
pg "$port" -d pkgtest -At -c "SELECT drift_watch.run_check()" >/dev/null

# --- 4. systemd-analyze verify ------------------------------------------------------------------
UNIT=/usr/lib/systemd/system/drift-notifier.service
verify_flags=()
command -v man >/dev/null || verify_flags+=(--man=no)   # checks Documentation=man:... when it can
# verify UNIT-FILE: systemd-analyze accepts it without a single message (a warning fails too).
verify() {
  local err rc=0
  err=$(systemd-analyze verify "${verify_flags[@]}" "$1" 2>&1 >/dev/null) || rc=$?
  [ $rc = 0 ] && [ -z "$err" ] && return 0
  printf '%s\n' "$err" >"$W/verify.last"
  return 1
}
log "systemd-analyze verify $UNIT"
verify "$UNIT" || { cat "$W/verify.last" >&2; die "systemd-analyze verify rejects the installed unit"; }
mkdir -p "$W/broken-exec" "$W/broken-key"
sed 's#^ExecStart=/usr/bin/drift-notifier#ExecStart=/usr/bin/drift-notifier-missing#' "$UNIT" >"$W/broken-exec/drift-notifier.service"
sed 's#^Restart=on-failure#Restart=sometimes#' "$UNIT" >"$W/broken-key/drift-notifier.service"
for broken in broken-exec broken-key; do
  if cmp -s "$UNIT" "$W/$broken/drift-notifier.service"; then
    die "could not break the unit for $broken (ExecStart= or Restart= changed shape)"
  fi
  if verify "$W/$broken/drift-notifier.service"; then
    die "systemd-analyze verify accepted $W/$broken/drift-notifier.service"
  fi
  log "  $broken rejected: $(head -1 "$W/verify.last")"
done

# --- 5. The binary, started as the unit says ----------------------------------------------------
# [Service] KEY VALUE lines of the installed unit.
service_keys=$(awk '
  /^[[:space:]]*([#;]|$)/ { next }
  /^\[/ { section = $0; next }
  section == "[Service]" { i = index($0, "="); print substr($0, 1, i - 1) "\t" substr($0, i + 1) }' "$UNIT")
key() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' <<<"$service_keys"; }
exec_start=$(key ExecStart)
[ "$(grep -c . <<<"$exec_start")" = 1 ] || die "the unit has not exactly one ExecStart="
[[ "$exec_start" =~ ^/ && "$exec_start" != *[\"\'\$%]* ]] \
  || die "ExecStart=$exec_start: prefixes, quotes and specifiers are not emulated here"
read -r -a exec_argv <<<"$exec_start"
env_file=$(key EnvironmentFile); env_file=${env_file#-}
[ -f "$env_file" ] || die "the unit's EnvironmentFile $env_file is not installed"
timeout_stop=$(key TimeoutStopSec); timeout_stop=${timeout_stop%s}
[[ "$timeout_stop" =~ ^[0-9]+$ ]] || die "TimeoutStopSec=$(key TimeoutStopSec): not a number of seconds"
[ "$(key KillSignal)" = SIGTERM ] || die "KillSignal= is not SIGTERM"
user=$(key User); dynamic=$(key DynamicUser)
if [ -n "$user" ]; then
  uid=$(id -u "$user") || die "the unit's User=$user does not exist"; gid=$(id -g "$user")
elif [ "$dynamic" = yes ]; then
  # A uid from systemd's DynamicUser range that no account has.
  uid=61184; while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done
  gid=$uid
else
  die "the unit runs as root (no User=, no DynamicUser=yes)"
fi
metrics_port=$(free_port)
# The administrator's step: the EnvironmentFile filled in (keeping the package's mode and owner).
# No ASANA_TOKEN: dry run, tasks printed instead of filed.
url="postgres://drift_notifier@127.0.0.1:$port/pkgtest?sslmode=verify-full&sslrootcert=$(url_encode "$W/tls/ca.crt" /)"
printf '%s\n' "$MARKER" "DATABASE_URL=$url" "DRIFT_METRICS_ADDR=127.0.0.1:$metrics_port" "DRIFT_POLL_SECONDS=2" \
  | as_root tee "$env_file" >/dev/null
# The environment systemd gives the service: its PATH, Environment=, then the EnvironmentFile
# (which wins), nothing else.
envs=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
while read -r -a words; do envs+=("${words[@]}"); done < <(key Environment)
while IFS= read -r line; do
  line=${line#"${line%%[![:space:]]*}"}
  case "$line" in ''|'#'*|';'*) continue ;; esac
  k=${line%%=*}; v=${line#*=}
  if [[ "$v" =~ ^\"(.*)\"$ || "$v" =~ ^\'(.*)\'$ ]]; then v=${BASH_REMATCH[1]}; fi
  envs+=("$k=$v")
done < <(as_root cat "$env_file")
for e in "${envs[@]}"; do [[ "$e" == *=* ]] || die "Environment=: cannot read '$e'"; done
# The dynamic user must be able to read the CA file (as the unit's comments require).
as_root setpriv --reuid="$uid" --regid="$gid" --clear-groups test -r "$W/tls/ca.crt" \
  || die "$W/tls/ca.crt is not readable by uid $uid (make WORKDIR and its parents world-traversable)"
log "starting ${exec_argv[*]} as the unit says: uid $uid, ${#envs[@]} variables, nothing inherited"
(cd / && exec "${SUDO[@]}" setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs \
   env -i "${envs[@]}" "${exec_argv[@]}") </dev/null >"$W/notifier.out" 2>"$W/notifier.err" &
launcher=$!
# With sudo, the notifier is a child of it; without, it is this very process (exec all the way).
notifier_pid=$launcher
if [ ${#SUDO[@]} -gt 0 ]; then sleep 1; notifier_pid=$(pgrep -P "$launcher" || echo "$launcher"); fi
http_get() { python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}
notifier_failed() { tail -20 "$W/notifier.err" >&2; die "$1"; }
health=0
for _ in $(seq 1 60); do
  alive "$notifier_pid" || notifier_failed "drift-notifier exited early"
  health=$(http_get "http://127.0.0.1:$metrics_port/healthz"); health=${health%%$'\n'*}
  [ "$health" = 200 ] && grep -q 'listening on drift_watch' "$W/notifier.err" && break
  sleep 0.5
done
[ "$health" = 200 ] || notifier_failed "/healthz answered $health, not 200"
grep -q 'listening on drift_watch' "$W/notifier.err" || notifier_failed "no 'listening on drift_watch' in the log"
[ "$(stat -c %u "/proc/$notifier_pid")" = "$uid" ] || die "drift-notifier does not run as uid $uid"
# Environment=DRIFT_LOG_FORMAT=json: every log line is a JSON object.
python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no log"
for l in lines:
    json.loads(l)
' "$W/notifier.err" || notifier_failed "the log is not JSON lines"
grep -q 'dry-run mode' "$W/notifier.err" || notifier_failed "no dry-run warning without ASANA_TOKEN"
for _ in $(seq 1 40); do grep -q sales_channel "$W/notifier.out" && break; sleep 0.5; done
grep -q sales_channel "$W/notifier.out" || notifier_failed "the dry run printed no task naming sales_channel"
metrics=$(http_get "http://127.0.0.1:$metrics_port/metrics")
grep -q '^drift_notifier_pending ' <<<"$metrics" || notifier_failed "/metrics has no drift_notifier_pending"
log "SIGTERM (TimeoutStopSec=${timeout_stop}s)"
t=$SECONDS
as_root kill -TERM "$notifier_pid"
rc=0
for _ in $(seq 1 $((timeout_stop * 10))); do alive "$notifier_pid" || break; sleep 0.1; done
alive "$notifier_pid" && notifier_failed "drift-notifier still runs ${timeout_stop}s after SIGTERM"
wait "$launcher" || rc=$?
notifier_pid=
[ "$rc" = 0 ] || notifier_failed "drift-notifier exited $rc after SIGTERM"
stop_s=$((SECONDS - t))

# --- 6. Purge -----------------------------------------------------------------------------------
# As an administrator would have: the unit enabled (its [Install] symlinks; systemctl makes them
# without a running systemd). Purging must take them away too.
as_root systemctl enable drift-notifier.service >/dev/null 2>&1 || die "systemctl enable drift-notifier failed"
unit_links() { find /etc/systemd/system -lname '*/drift-notifier.service' 2>/dev/null; }
[ -n "$(unit_links)" ] || die "systemctl enable made no symlink to drift-notifier.service"
log "apt-get remove --purge $EXT_PKG $NOTIFIER_PKG"
apt_get remove --purge "$EXT_PKG" "$NOTIFIER_PKG" >"$W/apt-remove.log" 2>&1 \
  || { cat "$W/apt-remove.log" >&2; die "apt-get remove --purge failed"; }
for pkg in "$EXT_PKG" "$NOTIFIER_PKG"; do
  if known "$pkg"; then die "$pkg is still known to dpkg after purge"; fi
done
left=()
while read -r path; do
  if [ -e "$path" ] || [ -L "$path" ]; then left+=("$path"); fi
done <"$W/files"
[ ${#left[@]} = 0 ] || die "left after purge: ${left[*]}"
while read -r dir; do
  if [ -d "$dir" ] && ! dpkg-query -S "$dir" >/dev/null 2>&1; then left+=("$dir/"); fi
done <"$W/dirs"
[ ${#left[@]} = 0 ] || die "directories no package owns, left after purge: ${left[*]}"
[ ! -e /var/lib/systemd/deb-systemd-helper-enabled/drift-notifier.service.dsh-also ] \
  || die "deb-systemd-helper's state for drift-notifier.service is left after purge"
[ -z "$(unit_links)" ] || die "the enabled unit's symlinks are left after purge: $(unit_links | tr '\n' ' ')"
[ "$(cut -d: -f1 /etc/passwd | sort)" = "$passwd_before" ] || die "the packages added or removed a user"
pg "$port" -c "CREATE DATABASE gone"
if err=$(pg "$port" -d gone -c "CREATE EXTENSION drift_watch CASCADE" 2>&1); then
  die "CREATE EXTENSION drift_watch still works after the purge"
fi
grep -qE 'could not open extension control file|is not available' <<<"$err" \
  || die "CREATE EXTENSION failed after the purge, but not for want of the extension: $err"

# --- 7. The extension as it was ---------------------------------------------------------------
if [ ${#saved[@]} -gt 0 ]; then
  log "the extension files as they were before: ${saved[*]##*/}"
  restore_extension || die "could not put the extension files back"
  for f in "${saved[@]}"; do cmp -s "$backup$f" "$f" || die "$f differs from the one saved"; done
  pg "$port" -d gone -c "SET client_min_messages = warning" -c "CREATE EXTENSION drift_watch CASCADE" >/dev/null
fi
cluster_stop "$cluster"

log "packages: installed ($file_count files), extension created and diffed, unit verified (broken copies rejected), notifier ran as the unit says and stopped on SIGTERM in ${stop_s} s, purged clean"
echo "$EXT_PKG + $NOTIFIER_PKG $VERSION ($(size_kib "$EXT_DEB") + $(size_kib "$NOTIFIER_DEB") KiB): installed, extension works, unit verified and run as it says, purged clean; $lintian_summary; $((SECONDS - started)) s${build_s:+ (build $build_s s)}" \
  | tee "$W/summary" >&2
