#!/usr/bin/env bash
# Load real public application schemas (../shared/realdata, see its README.md and
# PROVENANCE.tsv) into databases of a running PostgreSQL 15 cluster, one schema
# version per database, so tests can diff an older version against a newer one.
#
#   usage: bash tests/realdata/load.sh PORT     (127.0.0.1:PORT, user postgres, trust)
#   env:   REALDATA=/path/to/shared/realdata    (default: beside the repo checkout)
#
# Every database is dropped and re-created. Prints one line per database loaded;
# exits non-zero with a message on the first failure.
set -euo pipefail

die() { echo "load.sh: $*" >&2; exit 1; }

[[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || die "usage: $0 PORT"
PORT=$1
REALDATA=${REALDATA:-$(dirname "$0")/../../../shared/realdata}
[[ -f $REALDATA/PROVENANCE.tsv ]] || die "realdata not found at '$REALDATA' (set REALDATA)"
command -v psql >/dev/null || die "psql not found in PATH"

# Keep NOTICEs (e.g. "extension already exists, skipping") off the terminal.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

# Scalar query against a database: q DB SQL
q() { psql_ -d "$1" -At -c "$2"; }

q postgres "SELECT 1" >/dev/null || die "cannot connect to 127.0.0.1:$PORT as postgres"

# (Re)create a database. template0 + UTF8 + C locale makes the result independent
# of the cluster's defaults: chinook data is UTF-8 text and the MusicBrainz ICU
# collation needs a UTF8 database.
newdb() {
  psql_ -d postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" \
    -c "CREATE DATABASE \"$1\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'" \
    || die "cannot create database $1"
}

# Load files into a database in order: load DB FILE...
load() {
  local db=$1 f; shift
  for f in "$@"; do
    [[ -f $f ]] || die "missing file $f"
    psql_ -d "$db" -f "$f" >/dev/null || die "loading $f into $db failed"
  done
}

# Print the one success line: tables (relkind r/p) per non-system schema.
report() {
  local s
  s=$(q "$1" "SELECT coalesce(string_agg(nspname || '=' || n, ' ' ORDER BY nspname), 'no tables')
              FROM (SELECT n.nspname, count(*) AS n FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')
                      AND n.nspname NOT LIKE 'pg\_%' GROUP BY 1) t") || die "cannot query $1"
  echo "$1: loaded ($s tables)"
}

# --- gisia: pg_dump structure.sql files (needs contrib pg_trgm) ----------------
G=$REALDATA/gisia
for pair in gisia_2025_10:structure_2025-10-15_fd051b30.sql \
            gisia_2025_11:structure_2025-11-13_93aa1ae1.sql \
            gisia_2026_05:structure_2026-05-09_HEAD.sql; do
  db=${pair%%:*}; newdb "$db"; load "$db" "$G/${pair#*:}"; report "$db"
done

# --- pagila: pg_dump schema files ----------------------------------------------
P=$REALDATA/pagila
newdb pagila_2018; load pagila_2018 "$P/pagila-schema_2018-03_04c6592.sql"; report pagila_2018
newdb pagila_2022; load pagila_2022 "$P/pagila-schema_2022-12_fef9675.sql"; report pagila_2022

# --- musicbrainz: mirrors admin/InitDb.pl (see musicbrainz/load_order_HEAD.txt) --
# Needs contrib cube, earthdistance, unaccent and an ICU collation
# (CreateCollations.sql: provider=icu, locale '@colCaseFirst=lower;colNumeric=yes').
M=$REALDATA/musicbrainz
MB_SCHEMAS="musicbrainz cover_art_archive event_art_archive documentation json_dump report sitemaps statistics wikidocs"
[[ $(q postgres "SELECT count(*) FROM pg_available_extensions
                 WHERE name IN ('cube','earthdistance','unaccent')") == 3 ]] \
  || die "contrib extensions cube/earthdistance/unaccent missing: install postgresql-contrib"
[[ $(q postgres "SELECT count(*) > 0 FROM pg_collation WHERE collprovider = 'i'") == t ]] \
  || die "server built without ICU: MusicBrainz needs an ICU collation"

newdb mb_2022
# Only CreateTables.sql exists for 2022 (no 2022 copies of the other schemas' files).
q mb_2022 "CREATE SCHEMA musicbrainz" >/dev/null || die "cannot create schema in mb_2022"
PGOPTIONS="$PGOPTIONS -c search_path=musicbrainz,public" load mb_2022 \
  "$M/admin_sql_2022/Extensions.sql" "$M/admin_sql_2022/CreateCollations.sql" \
  "$M/admin_sql_2022/CreateTypes.sql" "$M/CreateTables_2022.sql"
report mb_2022

newdb mb_head
for s in $MB_SCHEMAS; do q mb_head "CREATE SCHEMA $s" >/dev/null || die "cannot create schema $s"; done
mapfile -t mb_files < <(grep -v '^#' "$M/load_order_HEAD.txt" | grep . | sed "s|^|$M/|")
[[ ${#mb_files[@]} -gt 0 ]] || die "empty $M/load_order_HEAD.txt"
PGOPTIONS="$PGOPTIONS -c search_path=musicbrainz,public" load mb_head "${mb_files[@]}"
report mb_head

# --- chinook: schema + data scripts -------------------------------------------
# The snake_case script DROPs/CREATEs its own database (the 2022 one does not) and
# switches to it with "\c chinook": strip those lines so the content lands in ours.
# Tables go into schema "chinook", which is where the dbt sources file
# (source "chinook", no schema key) looks. Unqualified names follow search_path,
# set per database so later sessions also resolve them. One transaction (-1)
# keeps the ~15k single-row INSERTs fast.
C=$REALDATA/chinook
for pair in chinook_pascal:Chinook_PostgreSql_2022-04_PascalCase.sql \
            chinook_snake:Chinook_PostgreSql_HEAD_snake_case.sql; do
  db=${pair%%:*} f=$C/${pair#*:}
  [[ -f $f ]] || die "missing file $f"
  newdb "$db"
  psql_ -d "$db" -c "CREATE SCHEMA chinook" -c "ALTER DATABASE \"$db\" SET search_path = chinook" \
    || die "cannot prepare schema chinook in $db"
  sed -E '/^(DROP|CREATE) DATABASE /d; /^\\c /d' "$f" | psql_ -d "$db" -1 -f - \
    || die "loading $f into $db failed"
  n=$(q "$db" "SELECT count(*) FILTER (WHERE n.nspname = 'chinook') || ' ' || count(*)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')") \
    || die "cannot query $db"
  [[ ${n% *} -gt 0 && ${n% *} == "${n#* }" ]] || die "$db: chinook tables not all in schema chinook ($n)"
  report "$db"
done
