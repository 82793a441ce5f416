#!/usr/bin/env bash
# Real dbt's own manifest: `dbt parse` (dbt-core from PyPI, installed by scripts/setup.sh) on
# examples/shop, pushed with `drift-notifier contract push target/manifest.json`, loads exactly
# the contract the project's YAML files load (relations, columns, types, quoting) and the same
# lineage its model files and exposures give (nodes, files, edges, SQL), and replaces the
# project's YAML origins instead of clashing with them.
#   tests/real_dbt.sh AUDIT_PORT WORKDIR NOTIFIER_BINARY       (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
port=$1; W=$2; notifier=$3
DBT=${DW_DBT_VENV:-$HOME/.cache/drift_watch/dbt-venv}/bin/dbt
[ -x "$DBT" ] || die "real_dbt: dbt not installed (scripts/setup.sh installs it)"
q() { pg "$port" -d dbt_real -At -c "$1"; }

project=$W/dbt_shop
rm -rf "$project"; cp -r examples/shop "$project"; mkdir -p "$project/profiles"
cat >"$project/profiles/profiles.yml" <<YAML
shop:
  target: ci
  outputs:
    ci: {type: postgres, host: 127.0.0.1, port: $port, user: postgres, password: unused,
         dbname: dbt_real, schema: analytics, threads: 1}
YAML
(cd "$project" && DBT_SEND_ANONYMOUS_USAGE_STATS=false "$DBT" parse --profiles-dir profiles --quiet) \
  || die "real_dbt: dbt parse failed"
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["dbt_version"])' "$project/target/manifest.json")

pg "$port" -c "DROP DATABASE IF EXISTS dbt_real WITH (FORCE)" -c "CREATE DATABASE dbt_real"
q "SET client_min_messages = warning; CREATE EXTENSION drift_watch CASCADE" >/dev/null
url="postgres://postgres@127.0.0.1:$port/dbt_real"
contract="SELECT string_agg(concat_ws('|', source_name, table_name, schema_name, identifier,
                                      column_name, data_type, quoted), E'\n'
                            ORDER BY source_name, table_name, column_name)
            FROM drift_watch.contract"
lineage="SELECT string_agg(x, E'\n' ORDER BY x) FROM (
           -- SQL is needed (and kept from a manifest) for a source's direct children only; dbt
           -- strips the file's trailing whitespace.
           SELECT concat_ws('|', 'node', unique_id, resource_type, name, file_path,
                            CASE WHEN EXISTS (SELECT 1 FROM drift_watch.lineage_edge e
                                               WHERE e.child_id = n.unique_id AND e.parent_id IS NULL)
                                 THEN md5(rtrim(code, E' \n\r\t')) END,
                            exposure_type, url, owner_name, owner_email) AS x
             FROM drift_watch.lineage_node n
           UNION ALL
           SELECT concat_ws('|', 'edge', coalesce(parent_id, source_name || '.' || table_name), child_id)
             FROM drift_watch.lineage_edge) s"

DATABASE_URL=$url "$notifier" contract push "$project" >/dev/null
from_yaml=$(q "$contract")
lineage_yaml=$(q "$lineage")
kinds=$(q "SELECT string_agg(document_kind || '=' || n, ' ' ORDER BY document_kind) FROM (SELECT document_kind, count(*) AS n FROM drift_watch.contract_origin WHERE origin LIKE 'shop_analytics/models/%' GROUP BY 1) k")
[ "$kinds" = "model=7 yaml=5" ] || die "real_dbt: expected 7 model and 5 YAML origins, got $kinds"

out=$(DATABASE_URL=$url "$notifier" contract push "$project/target/manifest.json")
from_manifest=$(q "$contract")
lineage_manifest=$(q "$lineage")
origins=$(q "SELECT string_agg(origin, ',') FROM drift_watch.contract_origin")
[ "$origins" = "shop_analytics/manifest.json" ] \
  || die "real_dbt: the manifest should replace the project's YAML origins; origins are $origins"
if [ "$from_yaml" != "$from_manifest" ]; then
  diff <(echo "$from_yaml") <(echo "$from_manifest") >&2 || true
  die "real_dbt: the manifest of dbt $version loads a different contract than the YAML files"
fi
if [ "$lineage_yaml" != "$lineage_manifest" ]; then
  diff <(echo "$lineage_yaml") <(echo "$lineage_manifest") >&2 || true
  die "real_dbt: the manifest of dbt $version gives different lineage than the project's files"
fi
[ "$(echo "$lineage_yaml" | grep -c '^edge|')" -ge 9 ] || die "real_dbt: too few lineage edges: $lineage_yaml"
echo "real_dbt: dbt $version's manifest for examples/shop ($out) = the YAML files' contract ($(echo "$from_yaml" | wc -l) rows) and the model files' lineage ($(echo "$lineage_yaml" | wc -l) nodes and edges)"
pg "$port" -c "DROP DATABASE dbt_real WITH (FORCE)"
