#!/usr/bin/env bash
# The upgrade path, against a real cluster and the installed build (scripts/test.sh installs it):
#   1. The current version's SQL is the frozen release file extension/releases/drift_watch--V.sql:
#      an extension created from the build and one created from the frozen file have the same
#      objects (a change to the extension's SQL without a new version and upgrade script fails
#      here). The frozen files match extension/releases/SHA256SUMS: a released file is never
#      edited.
#   2. From every earlier release R: each upgrade script R -> ... -> V exists; an audit database
#      created at R (its frozen SQL, with this build's library) and filled (contract, mappings,
#      runs, baselines, open deltas, a pending outbox, a failed run) is updated with
#      ALTER EXTENSION drift_watch UPDATE; it then has exactly the objects of a fresh V, keeps
#      every row, and works: checks see the same drift, resolve it, the outbox still delivers.
#   3. DROP EXTENSION / CREATE EXTENSION: the roles stay (with their members), a new
#      CREATE EXTENSION reuses them and grants again; the data is gone (as documented).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ext="$($PG_CONFIG --sharedir)/extension"
releases=extension/releases
[ -f "$ext/drift_watch--$version.sql" ] || die "drift_watch $version is not installed (run scripts/test.sh)"

log "upgrade: released files are unchanged (SHA256SUMS)"
(cd "$releases" && sha256sum --quiet -c SHA256SUMS) || die "a released SQL file was edited: add an upgrade script instead"
for f in "$releases"/drift_watch--*.sql; do
  grep -q " ${f##*/}\$" "$releases/SHA256SUMS" || die "${f##*/} is not in $releases/SHA256SUMS"
done
[ -f "$releases/drift_watch--$version.sql" ] \
  || die "version $version has no frozen release file: copy the generated $ext/drift_watch--$version.sql to $releases/ when releasing"

dir=$(mktemp -d /tmp/drift_watch_upgrade.XXXXXX)
chmod 755 "$dir"
port=$(free_port)
added=()      # files this test put in the extension directory
replaced=()   # files it moved aside there (restored afterwards)
cleanup() {
  cluster_stop "$dir"
  for f in "${added[@]}"; do rm -f "$f"; done
  for f in "${replaced[@]}"; do mv -f "$dir/aside/${f##*/}" "$f"; done
  rm -rf "$dir"
}
trap cleanup EXIT
# Versions that are not installed as such (older releases, the frozen copy of this one) are put in
# the extension directory for the test only; a file of that name already there (an earlier build
# of this machine) is moved aside and put back.
install_sql() {  # install_sql SRC NAME
  if [ -e "$ext/$2" ]; then
    mkdir -p "$dir/aside"
    mv "$ext/$2" "$dir/aside/$2"
    replaced+=("$ext/$2")
  else
    added+=("$ext/$2")
  fi
  install -m 644 "$1" "$ext/$2"
}

cluster_init "$dir" "$port"
pg "$port" -d postgres -c "CREATE DATABASE app" -c "CREATE DATABASE fresh" -c "CREATE DATABASE frozen"
pg "$port" -d app -c "
  CREATE SCHEMA shop;
  CREATE TABLE shop.customers (id bigint PRIMARY KEY, email text NOT NULL, name text, note text);
  CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id bigint, total numeric(12,2));"

# Every object the extension owns, with what defines it (bodies, settings, grants, columns by
# name, constraints, indexes, triggers, configuration tables), one line each, sorted.
fingerprint() {
  pg "$port" -d "$1" -At -c "
WITH e AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'drift_watch'),
m AS (SELECT d.classid, d.objid FROM pg_depend d, e
       WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid AND d.deptype = 'e'),
rel AS (SELECT c.oid FROM pg_class c JOIN m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) FROM m
UNION ALL
SELECT format('function %s returns %s kind=%s volatile=%s definer=%s strict=%s parallel=%s config=%s acl=%s body=%s %s',
              p.oid::regprocedure, pg_get_function_result(p.oid), p.prokind, p.provolatile,
              p.prosecdef, p.proisstrict, p.proparallel, p.proconfig, p.proacl, md5(p.prosrc),
              p.probin)
  FROM pg_proc p JOIN m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT format('relation %s kind=%s acl=%s options=%s view=%s', c.oid::regclass, c.relkind,
              c.relacl, c.reloptions, md5(pg_get_viewdef(c.oid)))
  FROM pg_class c JOIN rel USING (oid)
UNION ALL
SELECT format('column %s.%I %s notnull=%s default=%s acl=%s collation=%s', c.oid::regclass,
              a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(ad.adbin, ad.adrelid), a.attacl, a.attcollation)
  FROM pg_class c JOIN rel USING (oid)
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
UNION ALL
SELECT format('constraint %s %s %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k JOIN rel ON rel.oid = k.conrelid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN rel ON rel.oid = i.indrelid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid
 WHERE NOT t.tgisinternal
UNION ALL
SELECT format('policy %s %s %s', pol.polrelid::regclass, pol.polname, pg_get_expr(pol.polqual, pol.polrelid))
  FROM pg_policy pol JOIN rel ON rel.oid = pol.polrelid
UNION ALL
SELECT format('type %s %s %s', t.oid::regtype, t.typtype,
              (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid))
  FROM pg_type t JOIN m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
UNION ALL
SELECT 'config ' || c::regclass::text || ' ' || coalesce(w, '')
  FROM e, unnest(e.extconfig, e.extcondition) AS u(c, w)
UNION ALL
SELECT 'schema drift_watch acl=' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'drift_watch'
ORDER BY 1" >"$dir/fp_$1"
  echo "$dir/fp_$1"
}
same_objects() {  # same_objects DB_A DB_B WHAT
  local a b
  a=$(fingerprint "$1") b=$(fingerprint "$2")
  if ! diff -u "$a" "$b" >"$dir/fp.diff"; then
    head -40 "$dir/fp.diff" >&2
    die "$3: $1 and $2 differ (above: - $1, + $2)"
  fi
  log "$3: same $(wc -l <"$a") object lines"
}

# 1. The build's SQL is the frozen release.
pg "$port" -d fresh -c "CREATE EXTENSION drift_watch CASCADE" >/dev/null
install_sql "$releases/drift_watch--$version.sql" "drift_watch--$version-frozen.sql"
pg "$port" -d frozen -c "CREATE EXTENSION drift_watch VERSION '$version-frozen' CASCADE" >/dev/null
same_objects fresh frozen "the build's SQL is release $version's"

# What a database holds, table by table: every row of every table the extension owns.
state() {
  pg "$port" -d "$1" -At -c "SELECT format('SELECT %L || '' '' || count(*) || '' '' || coalesce(md5(string_agg(t::text, ''|'' ORDER BY t::text)), '''') FROM %s t;', c.oid::regclass, c.oid::regclass)
      FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
      JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'drift_watch'
     WHERE c.relkind = 'r' ORDER BY 1" \
    | pg "$port" -d "$1" -At >"$dir/state_$1_$2"
  echo "$dir/state_$1_$2"
}
q() { pg "$port" -d "$1" -At -c "$2"; }
expect() {  # expect WHAT GOT WANT
  [ "$2" = "$3" ] || die "$1: got '$2', want '$3'"
  log "$1: $2"
}

# 2. From every earlier release.
for f in "$releases"/drift_watch--*.sql; do
  from=${f##*/drift_watch--}
  from=${from%.sql}
  [ "$from" = "$version" ] && continue
  # Only releases older than this one (sort -V), each with a chain of scripts to this one.
  [ "$(printf '%s\n%s\n' "$from" "$version" | sort -V | head -1)" = "$from" ] || continue
  db="from_${from//./_}"
  log "upgrade from $from to $version in database $db"
  install_sql "$f" "drift_watch--$from.sql"
  pg "$port" -d postgres -c "CREATE DATABASE $db"
  pg "$port" -d "$db" -c "CREATE EXTENSION drift_watch VERSION '$from' CASCADE" >/dev/null
  expect "created at" "$(q "$db" "SELECT extversion FROM pg_extension WHERE extname = 'drift_watch'")" "$from"
  # Filled as production would be: a contract with owners, a mapping, a baseline run, drift found
  # and announced (pending outbox), a failed run, one outbox item claimed by a notifier.
  pg "$port" -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE SERVER app FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$port', dbname 'app');
CREATE USER MAPPING FOR postgres SERVER app OPTIONS (user 'postgres');
CREATE SERVER down FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '1', dbname 'app');
CREATE USER MAPPING FOR postgres SERVER down OPTIONS (user 'postgres');
SELECT load_contract('models/staging/shop/_shop__sources.yml', \$y\$
version: 2
sources:
  - name: shop
    schema: shop
    meta: {owner: ana@example.com}
    tables:
      - name: customers
        columns:
          - {name: id, data_type: bigint}
          - {name: email, data_type: text}
          - {name: name, data_type: text}
      - name: orders
        columns:
          - {name: id, data_type: bigint}
          - {name: customer_id, data_type: bigint}
          - {name: total, data_type: "numeric(12,2)"}
\$y\$);
SELECT drift_watch.map_sources('app', 'shop');
SELECT run_check('app');
SELECT run_check('down');
SQL
  pg "$port" -d app -c "ALTER TABLE shop.customers RENAME COLUMN name TO full_name" \
    -c "ALTER TABLE shop.orders ALTER COLUMN total TYPE bigint" >/dev/null
  q "$db" "SELECT run_check('app')" >/dev/null
  q "$db" "SELECT 1 FROM drift_watch.outbox_claim(300) LIMIT 1" >/dev/null
  open_before=$(q "$db" "SELECT string_agg(table_name || '.' || coalesce(column_name, '') || ':' || change, ' ' ORDER BY 1)
                           FROM drift_watch.open_deltas")
  [ -n "$open_before" ] || die "the filled $from database has no open deltas"
  before=$(state "$db" before)

  q "$db" "ALTER EXTENSION drift_watch UPDATE" >/dev/null
  expect "updated to" "$(q "$db" "SELECT extversion FROM pg_extension WHERE extname = 'drift_watch'")" "$version"
  same_objects fresh "$db" "$from updated to $version"
  after=$(state "$db" after)
  diff -u "$before" "$after" >&2 || die "the update from $from changed rows (above)"
  log "every row kept: $(wc -l <"$after") tables"

  # Working: the same drift is seen again (nothing new), then resolves when it goes away; the
  # outbox still delivers (a pending item is claimed, the resolution is queued).
  expect "open deltas after the update" "$(q "$db" "SELECT string_agg(table_name || '.' || coalesce(column_name, '') || ':' || change, ' ' ORDER BY 1)
                                              FROM drift_watch.open_deltas")" "$open_before"
  run=$(q "$db" "SELECT run_check('app')")
  expect "a check after the update finds nothing new" "$(q "$db" "SELECT status || ' ' || deltas_new FROM drift_watch.runs WHERE run_id = $run")" "succeeded 0"
  expect "a pending item is still claimable" "$(q "$db" "SELECT count(*) > 0 FROM drift_watch.outbox_claim(300)")" "t"
  pg "$port" -d app -c "ALTER TABLE shop.customers RENAME COLUMN full_name TO name" \
    -c "ALTER TABLE shop.orders ALTER COLUMN total TYPE numeric(12,2)" >/dev/null
  run=$(q "$db" "SELECT run_check('app')")
  expect "the drift resolves" "$(q "$db" "SELECT status || ' ' || deltas_open || ' ' || (deltas_resolved > 0) FROM drift_watch.runs WHERE run_id = $run")" "succeeded 0 true"
  expect "no open deltas" "$(q "$db" "SELECT count(*) FROM drift_watch.open_deltas")" "0"
  expect "the resolution is queued" "$(q "$db" "SELECT count(*) FROM drift_watch.outbox WHERE kind = 'resolved'")" "1"
done

# 3. DROP EXTENSION / CREATE EXTENSION.
log "DROP EXTENSION, CREATE EXTENSION"
pg "$port" -d fresh -c "CREATE ROLE dw_check LOGIN IN ROLE drift_watch_checker" \
  -c "SELECT load_contract('x.yml', E'sources:\n  - name: x\n    tables: [{name: t}]\n')" \
  -c "DROP EXTENSION drift_watch" >/dev/null
expect "roles after DROP EXTENSION" "$(q fresh "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'drift\_watch\_%'")" \
  "drift_watch_checker,drift_watch_loader,drift_watch_notifier"
expect "membership kept" "$(q fresh "SELECT pg_has_role('dw_check', 'drift_watch_checker', 'MEMBER')")" "t"
pg "$port" -d fresh -c "CREATE EXTENSION drift_watch" >/dev/null
expect "the contract is gone with the extension" "$(q fresh "SELECT count(*) FROM drift_watch.contract_table")" "0"
expect "grants are back" "$(q fresh "SET ROLE dw_check; SELECT count(*) FROM drift_diff()")" "0"
same_objects frozen fresh "re-created"
log "upgrade: ok"
