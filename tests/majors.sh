#!/usr/bin/env bash
# Every supported PostgreSQL major as a target: the real schemas (tests/realdata/load.sh) are
# loaded into a cluster of each of 13, 14, 16, 17 and 18 (servers from scripts/pg_majors.sh) and
# into a PostgreSQL 15 cluster. For each real-data pair of tests/sql/realdata.sql (a contract
# generated from the older schema on 15, or a real dbt sources file, against the newer schema),
# drift_diff through a foreign server on major N must return exactly the rows it returns through
# the one on 15. Pairs with drift must have some, pairs without must have none.
#   tests/majors.sh AUDIT_PORT WORKDIR       (run by scripts/test.sh)
# AUDIT_PORT: a PostgreSQL 15 cluster with drift_watch installed; the test uses its own database
# there (majors), dropped at the end. Clusters live under WORKDIR/majors and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ $# -eq 2 ] || die "usage: $0 AUDIT_PORT WORKDIR"
audit_port=$1; W=$2/majors
REALDATA=${REALDATA:-$PWD/../shared/realdata}
[ -f "$REALDATA/PROVENANCE.tsv" ] || die "majors: realdata not found at $REALDATA"
REALDATA=$(cd "$REALDATA" && pwd)
export REALDATA
MAJORS=(13 14 16 17 18)
DBS=(gisia_2025_10 gisia_2025_11 gisia_2026_05 pagila_2018 pagila_2022 mb_2022 mb_head chinook_pascal chinook_snake types_probe)
# name|contract|target|expect: the contract is gen:DB (generated from DB's columns and types on
# 15, as tests/sql/realdata.sql does) or a dbt file under REALDATA; expect is drift or none.
PAIRS=(
  "gisia_2025_10->gisia_2025_11|gen:gisia_2025_10|gisia_2025_11|drift"
  "gisia_2025_11->gisia_2026_05|gen:gisia_2025_11|gisia_2026_05|drift"
  "pagila_2018->pagila_2022|gen:pagila_2018|pagila_2022|drift"
  "mb_2022->mb_head|gen:mb_2022|mb_head|drift"
  "pagila_2022->pagila_2022|gen:pagila_2022|pagila_2022|none"
  "mb_head->mb_head|gen:mb_head|mb_head|none"
  "chinook_sources->chinook_pascal|chinook/dbt_sources_chinook-pipeline.yml|chinook_pascal|drift"
  "chinook_sources->chinook_snake|chinook/dbt_sources_chinook-pipeline.yml|chinook_snake|drift"
  "geomusic_sources->mb_head|musicbrainz/dbt_sources_geomusic_musicbrainz.yml|mb_head|none"
  "jeanneta_sources->pagila_2022|pagila/dbt_sources_dvdrental_jeanneta.yml|pagila_2022|none"
  # Types whose oids initdb assigns, different on each major (information_schema's domains).
  "types_probe->types_probe|gen:types_probe|types_probe|none"
)

started=() loads=()
cleanup() {
  local c p
  for p in "${loads[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "${started[@]}"; do PG_BIN=${c#* } cluster_stop "${c%% *}"; done
  pg "$audit_port" -c "DROP DATABASE IF EXISTS majors WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"

# Server binaries per major. The cache may sit where the postgres user cannot reach (/root):
# then the cluster runs from a hard-linked copy under WORKDIR.
declare -A BIN PORT VERSION
bins=$(bash scripts/pg_majors.sh "${MAJORS[@]}") || die "majors: scripts/pg_majors.sh failed"
BIN[15]=$PG_BIN
while read -r major bin; do
  if as_pg test -x "$bin/postgres"; then
    BIN[$major]=$bin
  else
    cp -al "$(dirname "$bin")" "$W/native-$major" 2>/dev/null \
      || { rm -rf "$W/native-$major"; cp -a "$(dirname "$bin")" "$W/native-$major"; }
    BIN[$major]=$W/native-$major/bin
  fi
done <<<"$bins"

# Each cluster is loaded while the next one is made; at most two loads run at once (the loads
# are mostly server work, and the machine may have two cores).
log "majors: starting PostgreSQL 15 ${MAJORS[*]} and loading the real schemas into each"
for major in 15 "${MAJORS[@]}"; do
  VERSION[$major]=$("${BIN[$major]}/postgres" --version | awk '{print $3}')
  [ "${VERSION[$major]%%.*}" = "$major" ] || die "majors: ${BIN[$major]}/postgres is ${VERSION[$major]}, not $major"
  PORT[$major]=$(free_port)
  started+=("$W/pg$major ${BIN[$major]}")
  PG_BIN=${BIN[$major]} cluster_init "$W/pg$major" "${PORT[$major]}"
  if [ ${#loads[@]} -ge 2 ]; then wait "${loads[0]}" || true; loads=("${loads[@]:1}"); fi
  (bash tests/realdata/load.sh "${PORT[$major]}" >"$W/load-$major.log" 2>&1; echo $? >"$W/load-$major.rc") &
  loads+=($!)
done
wait
loads=()
for major in 15 "${MAJORS[@]}"; do
  [ "$(cat "$W/load-$major.rc")" = 0 ] \
    || { cat "$W/load-$major.log" >&2; die "majors: loading the real schemas into PostgreSQL $major failed"; }
done

# Columns of built-in types whose oids differ between majors (assigned by initdb, >= 10000), and
# of fixed ones, in a database of their own.
for major in 15 "${MAJORS[@]}"; do
  pg "${PORT[$major]}" -c "CREATE DATABASE types_probe" >/dev/null
  pg "${PORT[$major]}" -d types_probe -c "CREATE TABLE public.t (id int, c information_schema.sql_identifier,
      n information_schema.cardinal_number, y information_schema.yes_or_no, ts timestamptz, v varchar(40))" >/dev/null
done

log "majors: loaded (${SECONDS}s)"
pg "$audit_port" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS majors WITH (FORCE)" \
  -c "CREATE DATABASE majors"
{
  echo "SET client_min_messages = warning;"
  echo "CREATE EXTENSION drift_watch CASCADE;"
  for major in 15 "${MAJORS[@]}"; do
    for db in "${DBS[@]}"; do
      echo "CREATE SERVER pg${major}_$db FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '${PORT[$major]}', dbname '$db');"
      echo "CREATE USER MAPPING FOR postgres SERVER pg${major}_$db OPTIONS (user 'postgres');"
    done
  done
  echo "CREATE TABLE pairs (ord int, name text, gen text, file text, target text, expect text);"
  i=0
  for p in "${PAIRS[@]}"; do
    IFS='|' read -r name contract target expect <<<"$p"
    gen=NULL file=NULL
    case $contract in gen:*) gen="'${contract#gen:}'" ;; *) file="'$REALDATA/$contract'" ;; esac
    echo "INSERT INTO pairs VALUES ($((i += 1)), '$name', $gen, $file, '$target', '$expect');"
  done
  echo "CREATE TABLE majors (major int, version text);"
  for major in 15 "${MAJORS[@]}"; do echo "INSERT INTO majors VALUES ($major, '${VERSION[$major]}');"; done
} | pg "$audit_port" -d majors

pg "$audit_port" -d majors <<'SQL'
SET client_min_messages = warning;
-- Columns of ordinary and partitioned tables on a server, as in tests/sql/realdata.sql, with the
-- oid of built-in types with fixed oids (below 10000: drift_diff compares those by oid, formats them
-- locally, and resolves every other type by name on the target).
CREATE FUNCTION catalog_of(server text, canonical boolean)
RETURNS TABLE (nsp text, rel text, col text, attnum int, typ text, builtin_oid int8, typmod int)
LANGUAGE sql AS $fn$
  SELECT * FROM dblink(server,
    CASE WHEN canonical THEN 'SET search_path = pg_catalog; ' ELSE '' END || $q$
    SELECT n.nspname::text, c.relname::text, a.attname::text, a.attnum::int,
           format_type(a.atttypid, a.atttypmod),
           CASE WHEN a.atttypid < 10000 THEN a.atttypid::int8 END, a.atttypmod
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  $q$) AS t(nsp text, rel text, col text, attnum int, typ text, builtin_oid int8, typmod int)
$fn$;

-- The dbt sources file tests/sql/realdata.sql generates: every column with its data_type.
CREATE FUNCTION contract_yaml(server text) RETURNS text LANGUAGE sql AS $fn$
  SELECT E'version: 2\nsources:\n' || string_agg(src, '' ORDER BY nsp)
    FROM (SELECT nsp, format(E'  - name: %s\n    quoting: {schema: true, identifier: true}\n    tables:\n%s',
                             to_json(nsp), string_agg(tbl, '' ORDER BY rel)) AS src
            FROM (SELECT nsp, rel,
                         format(E'      - name: %s\n        columns:\n%s', to_json(rel),
                                string_agg(format(E'          - {name: %s, quote: true, data_type: %s}\n',
                                                  to_json(col), to_json(typ)), '' ORDER BY attnum)) AS tbl
                    FROM catalog_of(server, false) GROUP BY nsp, rel) t
           GROUP BY nsp) s
$fn$;
SQL

log "majors: each major's catalog against 15's (${SECONDS}s)"
pg "$audit_port" -d majors <<'SQL'
SET client_min_messages = warning;
-- What each major's catalog says differently from 15's (both spellings, oids of built-ins).
CREATE TABLE catalog_delta (major int, db text, canonical boolean, side text, nsp text, rel text,
                            col text, attnum int, typ text, builtin_oid int8, typmod int);
DO $do$
DECLARE m record; db text; c boolean;
BEGIN
  FOR m IN SELECT major FROM majors WHERE major <> 15 LOOP
    FOR db IN SELECT DISTINCT unnest(ARRAY[coalesce(gen, target), target]) FROM pairs LOOP
      FOREACH c IN ARRAY ARRAY[true, false] LOOP
        BEGIN
          INSERT INTO catalog_delta
          SELECT m.major, db, c, 'only on ' || m.major, * FROM (
            SELECT * FROM catalog_of(format('pg%s_%s', m.major, db), c)
            EXCEPT ALL SELECT * FROM catalog_of('pg15_' || db, c)) x;
          INSERT INTO catalog_delta
          SELECT m.major, db, c, 'only on 15', * FROM (
            SELECT * FROM catalog_of('pg15_' || db, c)
            EXCEPT ALL SELECT * FROM catalog_of(format('pg%s_%s', m.major, db), c)) x;
        EXCEPTION WHEN OTHERS THEN
          INSERT INTO catalog_delta (major, db, canonical, side) VALUES (m.major, db, c, 'ERROR ' || SQLERRM);
        END;
      END LOOP;
    END LOOP;
  END LOOP;
END
$do$;
SQL

log "majors: drift_diff through each major's servers (${SECONDS}s)"
pg "$audit_port" -d majors <<'SQL'
SET client_min_messages = warning;
-- Each pair's contract, loaded once, diffed through every major's server for the target.
-- An error is kept as a row, so it shows in the comparison instead of stopping the others.
CREATE TABLE drift AS SELECT 0 AS major, ''::text AS pair, * FROM drift_diff() LIMIT 0;
DO $do$
DECLARE p record; m record; origin text;
BEGIN
  FOR p IN SELECT * FROM pairs ORDER BY ord LOOP
    origin := 'majors/' || p.name || '.yml';
    PERFORM load_contract(origin, CASE WHEN p.gen IS NOT NULL THEN contract_yaml('pg15_' || p.gen)
                                       ELSE pg_read_file(p.file) END);
    FOR m IN SELECT major FROM majors ORDER BY major LOOP
      BEGIN
        INSERT INTO drift SELECT m.major, p.name, d.* FROM drift_diff(format('pg%s_%s', m.major, p.target)) d;
      EXCEPTION WHEN OTHERS THEN
        INSERT INTO drift (major, pair, change, detail) VALUES (m.major, p.name, 'ERROR', SQLERRM);
      END;
    END LOOP;
    PERFORM forget_contract(origin);
  END LOOP;
END
$do$;
SQL
log "majors: compared (${SECONDS}s)"

q() { pg "$audit_port" -d majors -At -c "$1"; }
rows() {
  q "COPY (SELECT pair, source_name, schema_name, table_name, column_name, change, contract_type,
                  live_type, detail
             FROM drift WHERE major = $1
            ORDER BY 1, 2, 3, 4, 5 NULLS FIRST, 6, 7 NULLS FIRST, 8 NULLS FIRST, 9 NULLS FIRST) TO STDOUT"
}

# The baseline must be able to fail: drift where the pair has drift, none where it has none.
rows 15 >"$W/drift-15.tsv"
bad=$(q "SELECT string_agg(format('%s: %s rows (expected %s)', p.name, n, p.expect), '; ' ORDER BY p.ord)
           FROM pairs p, LATERAL (SELECT count(*) AS n FROM drift d WHERE d.major = 15 AND d.pair = p.name) c
          WHERE (p.expect = 'drift') <> (n > 0)
             OR EXISTS (SELECT 1 FROM drift d WHERE d.major = 15 AND d.pair = p.name AND d.change = 'ERROR')")
[ -z "$bad" ] || { grep -P '\tERROR\t' "$W/drift-15.tsv" >&2 || true; die "majors: PostgreSQL 15 baseline: $bad"; }
npairs=${#PAIRS[@]}
echo "pg15 (${VERSION[15]}): $npairs pairs, $(wc -l <"$W/drift-15.tsv") rows (baseline:" \
  "$(q "SELECT string_agg(p.name || ' ' || (SELECT count(*) FROM drift d WHERE d.major = 15 AND d.pair = p.name), ', ' ORDER BY p.ord) FROM pairs p"))"

failed=()
for major in "${MAJORS[@]}"; do
  rows "$major" >"$W/drift-$major.tsv"
  spell=$(q "SELECT count(*) FROM catalog_delta WHERE major = $major")
  if [ "$spell" != 0 ]; then
    echo "pg$major: the catalog differs from 15 in $spell column rows (first 20; informational):"
    q "SELECT concat_ws(' | ', db, CASE WHEN canonical THEN 'search_path=pg_catalog' ELSE 'default search_path' END,
                        side, nsp, rel, col, typ, builtin_oid, typmod)
         FROM catalog_delta WHERE major = $major ORDER BY db, canonical, nsp, rel, attnum, side LIMIT 20" | sed 's/^/    /'
  fi
  if diff -u --label "drift_diff through PostgreSQL 15" --label "drift_diff through PostgreSQL $major" \
       "$W/drift-15.tsv" "$W/drift-$major.tsv" >"$W/diff-$major.txt"; then
    echo "pg$major (${VERSION[$major]}): $npairs pairs, $(wc -l <"$W/drift-$major.tsv") rows, identical to 15"
  else
    echo "pg$major (${VERSION[$major]}): drift_diff differs from 15 (rows: pair, source, schema, table, column, change, contract type, live type, detail):"
    head -200 "$W/diff-$major.txt"
    failed+=("$major")
  fi
done
[ ${#failed[@]} -eq 0 ] || die "majors: drift_diff through PostgreSQL ${failed[*]} differs from 15"
