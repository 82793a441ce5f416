//! The contract tables: writing a parsed document, reading the whole contract back.

use std::sync::Arc;

use drift_watch_core::{
    ChangeSet, Contract, ContractColumn, ContractTable, FxHashSet, Lineage, LineageNode, Parent,
    TablePolicy, Undocumented,
};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::error::DriftError;
use crate::spi_rows::{self, ty};

/// Replaces everything previously loaded from `origin` with `contract`, in the caller's
/// transaction. Returns the number of source tables now held from `origin`.
pub fn replace_origin(origin: &str, contract: &Contract) -> Result<i32, DriftError> {
    let tables = &contract.tables;
    let sources: Vec<&str> = tables.iter().map(|t| t.source_name.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.table_name.as_str()).collect();
    Spi::connect_mut(|client| {
        // Serialise concurrent loads with a table lock only the owner (this definer function)
        // can take: an advisory key could be held by anyone. Then refuse cross-origin duplicates
        // with a message naming both files (the unique constraint is the last line of defence).
        client.update(
            "LOCK TABLE drift_watch.contract_origin IN SHARE ROW EXCLUSIVE MODE",
            None,
            &[],
        )?;
        let clash = client.select(
            "SELECT t.origin, t.source_name, t.table_name
               FROM drift_watch.contract_table t
               JOIN unnest($2::text[], $3::text[]) AS n(source_name, table_name)
                 ON n.source_name = t.source_name AND n.table_name = t.table_name
              WHERE t.origin <> $1
              ORDER BY 2, 3 LIMIT 1",
            Some(1),
            &[origin.into(), sources.clone().into(), names.clone().into()],
        )?;
        if let Some(row) = clash.into_iter().next() {
            return Err(DriftError::DuplicateTable {
                origin: origin.to_string(),
                other_origin: row.get(1)?.unwrap_or_default(),
                source_name: row.get(2)?.unwrap_or_default(),
                table_name: row.get(3)?.unwrap_or_default(),
            });
        }

        client.update(
            "DELETE FROM drift_watch.contract_origin WHERE origin = $1",
            None,
            &[origin.into()],
        )?;
        client.update(
            "INSERT INTO drift_watch.contract_origin (origin, document_kind) VALUES ($1, $2)",
            None,
            &[origin.into(), contract.kind.as_str().into()],
        )?;
        store_lineage(client, origin, &contract.lineage)?;
        if tables.is_empty() {
            return Ok(0);
        }

        let table_no: Vec<i32> = (1..=tables.len() as i32).collect();
        let databases: Vec<Option<&str>> = tables.iter().map(|t| t.database.as_deref()).collect();
        let schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
        let identifiers: Vec<&str> = tables.iter().map(|t| t.identifier.as_str()).collect();
        let undocumented: Vec<&str> = tables
            .iter()
            .map(|t| t.policy.undocumented.as_str())
            .collect();
        let ignore: Vec<String> = tables
            .iter()
            .map(|t| t.policy.ignore.names().join(","))
            .collect();
        let schema_quoted: Vec<bool> = tables.iter().map(|t| t.schema_quoted).collect();
        let identifier_quoted: Vec<bool> = tables.iter().map(|t| t.identifier_quoted).collect();
        let owners: Vec<Option<&str>> = tables.iter().map(|t| t.policy.owner.as_deref()).collect();
        let severities: Vec<Option<&str>> = tables
            .iter()
            .map(|t| t.policy.severity.map(|s| s.as_str()))
            .collect();
        let meta_targets: Vec<Option<&str>> =
            tables.iter().map(|t| t.policy.target.as_deref()).collect();
        let meta_live_schemas: Vec<Option<&str>> = tables
            .iter()
            .map(|t| t.policy.live_schema.as_deref())
            .collect();

        let mut col_table = Vec::new();
        let mut col_pos = Vec::new();
        let mut col_name = Vec::new();
        let mut col_type = Vec::new();
        let mut col_quoted = Vec::new();
        let mut col_ignore = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            for (j, c) in t.columns.iter().enumerate() {
                col_table.push(i as i32 + 1);
                col_pos.push(j as i32 + 1);
                col_name.push(&*c.name);
                col_type.push(c.data_type.as_deref());
                col_quoted.push(c.quoted);
                col_ignore.push(c.ignore.names().join(","));
            }
        }

        // One statement for all tables and their column arrays, whatever the document's size.
        client.update(
            "INSERT INTO drift_watch.contract_table
                    (origin, table_no, source_name, table_name, database_name, schema_name,
                     identifier, column_names, data_types, quoted, undocumented, ignore_changes,
                     schema_quoted, identifier_quoted, column_ignore, owner, severity,
                     meta_target, meta_live_schema)
             SELECT $1, t.table_no, t.source_name, t.table_name, t.database_name, t.schema_name,
                    t.identifier, COALESCE(c.names, '{}'), COALESCE(c.data_types, '{}'),
                    COALESCE(c.quoted, '{}'), t.undocumented,
                    COALESCE(string_to_array(NULLIF(t.ignore, ''), ','), '{}'),
                    t.schema_quoted, t.identifier_quoted, COALESCE(c.ignore, '{}'), t.owner,
                    t.severity, t.meta_target, t.meta_live_schema
               FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                           $13::text[], $14::text[], $15::bool[], $16::bool[], $18::text[],
                           $19::text[], $20::text[], $21::text[])
                    AS t(table_no, source_name, table_name, database_name, schema_name, identifier,
                         undocumented, ignore, schema_quoted, identifier_quoted, owner, severity,
                         meta_target, meta_live_schema)
               LEFT JOIN (SELECT table_no, array_agg(name ORDER BY pos) AS names,
                                 array_agg(data_type ORDER BY pos) AS data_types,
                                 array_agg(quoted ORDER BY pos) AS quoted,
                                 array_agg(ignore ORDER BY pos) AS ignore
                            FROM unnest($8::int4[], $9::int4[], $10::text[], $11::text[], $12::bool[],
                                        $17::text[])
                                 AS c(table_no, pos, name, data_type, quoted, ignore)
                           GROUP BY table_no) c USING (table_no)",
            None,
            &[
                origin.into(),
                table_no.into(),
                sources.into(),
                names.into(),
                databases.into(),
                schemas.into(),
                identifiers.into(),
                col_table.into(),
                col_pos.into(),
                col_name.into(),
                col_type.into(),
                col_quoted.into(),
                undocumented.into(),
                ignore.into(),
                schema_quoted.into(),
                identifier_quoted.into(),
                col_ignore.into(),
                owners.into(),
                severities.into(),
                meta_targets.into(),
                meta_live_schemas.into(),
            ],
        )?;
        Ok(tables.len() as i32)
    })
}

/// The document's lineage: its nodes and edges, two statements whatever the size.
fn store_lineage(
    client: &mut SpiClient<'_>,
    origin: &str,
    lineage: &Lineage,
) -> Result<(), DriftError> {
    if lineage.is_empty() {
        return Ok(());
    }
    let nodes = &lineage.nodes;
    let col = |f: fn(&LineageNode) -> Option<&str>| nodes.iter().map(f).collect::<Vec<_>>();
    client.update(
        "INSERT INTO drift_watch.lineage_node
                (origin, unique_id, resource_type, name, file_path, code, compiled, exposure_type,
                 url, owner_name, owner_email)
         SELECT DISTINCT ON (unique_id) $1, unique_id, resource_type, name, file_path, code,
                compiled, exposure_type, url, owner_name, owner_email
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                       $8::text[], $9::text[], $10::text[], $11::text[])
                AS n(unique_id, resource_type, name, file_path, code, compiled, exposure_type,
                     url, owner_name, owner_email)",
        None,
        &[
            origin.into(),
            col(|n| Some(n.unique_id.as_str())).into(),
            col(|n| Some(n.resource_type.as_str())).into(),
            col(|n| Some(n.name.as_str())).into(),
            col(|n| n.file_path.as_deref()).into(),
            col(|n| n.code.as_deref()).into(),
            nodes
                .iter()
                .map(|n| n.compiled)
                .collect::<Vec<bool>>()
                .into(),
            col(|n| n.exposure_type.as_deref()).into(),
            col(|n| n.url.as_deref()).into(),
            col(|n| n.owner_name.as_deref()).into(),
            col(|n| n.owner_email.as_deref()).into(),
        ],
    )?;
    let mut parent_id = Vec::with_capacity(lineage.edges.len());
    let mut source_name = Vec::with_capacity(lineage.edges.len());
    let mut table_name = Vec::with_capacity(lineage.edges.len());
    for e in &lineage.edges {
        match &e.parent {
            Parent::Node(id) => {
                parent_id.push(Some(id.as_str()));
                source_name.push(None);
                table_name.push(None);
            }
            Parent::Source {
                source_name: s,
                table_name: t,
            } => {
                parent_id.push(None);
                source_name.push(Some(s.as_str()));
                table_name.push(Some(t.as_str()));
            }
        }
    }
    let child: Vec<&str> = lineage.edges.iter().map(|e| e.child.as_str()).collect();
    client.update(
        "INSERT INTO drift_watch.lineage_edge (origin, parent_id, source_name, table_name, child_id)
         SELECT $1, p, s, t, c FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
                AS e(p, s, t, c)",
        None,
        &[
            origin.into(),
            parent_id.into(),
            source_name.into(),
            table_name.into(),
            child.into(),
        ],
    )?;
    Ok(())
}

/// Removes one origin; returns how many source tables it held.
pub fn forget_origin(origin: &str) -> Result<i32, DriftError> {
    Spi::connect_mut(|client| {
        let n = client
            .update(
                "WITH gone AS (DELETE FROM drift_watch.contract_table WHERE origin = $1 RETURNING 1),
                      origin AS (DELETE FROM drift_watch.contract_origin WHERE origin = $1)
                 SELECT count(*)::int4 FROM gone",
                None,
                &[origin.into()],
            )?
            .first()
            .get_one::<i32>()?;
        Ok(n.unwrap_or(0))
    })
}

/// The contract as `target` checks it ("" for this database), in a stable order: one row per
/// table. A target that sources are mapped to (`drift_watch.map_sources`, or dbt meta) gets only
/// those, with the schema they live in there; any other target gets the whole contract.
pub fn read_contract(
    client: &SpiClient<'_>,
    target: &str,
) -> Result<Vec<ContractTable>, DriftError> {
    let mut out = Vec::new();
    // A contract spells the same few types over every column: one allocation per spelling.
    let mut spellings: FxHashSet<Arc<str>> = FxHashSet::default();
    let mut spelling = move |t: &str| intern(&mut spellings, t);
    // And the same column names over many tables (id, created_at, ...): one allocation per name.
    let mut column_names: FxHashSet<Arc<str>> = FxHashSet::default();
    spi_rows::for_each_saved(
        client,
        "SELECT t.source_name, t.table_name, t.database_name, m.live_schema, t.identifier,
                t.column_names, t.data_types, t.quoted, t.undocumented,
                array_to_string(t.ignore_changes, ','), t.column_ignore, t.schema_quoted,
                t.identifier_quoted
           FROM drift_watch._target_contract($1) m
           JOIN drift_watch.contract_table t ON t.id = m.table_id
          ORDER BY t.source_name, t.table_name",
        &[target.into()],
        &[
            ty::TEXT,
            ty::TEXT,
            ty::TEXT,
            ty::TEXT,
            ty::TEXT,
            ty::TEXT_ARRAY,
            ty::TEXT_ARRAY,
            ty::BOOL_ARRAY,
            ty::TEXT,
            ty::TEXT,
            ty::TEXT_ARRAY,
            ty::BOOL,
            ty::BOOL,
        ],
        |row| {
            // Stored by this extension from parsed change names; an unknown one cannot occur.
            let changes = |s: Option<&str>| {
                let s = s.unwrap_or_default();
                if s.is_empty() {
                    return ChangeSet::default();
                }
                ChangeSet::from_names(s.split(',').filter(|n| !n.is_empty())).unwrap_or_default()
            };
            let mut column_ignore = row.str_array(10);
            let names = row.str_array(5);
            let mut columns = Vec::with_capacity(names.len());
            columns.extend(
                names
                    .zip(row.str_array(6))
                    .zip(row.bool_array(7))
                    .filter_map(|((name, data_type), quoted)| {
                        let ignore = changes(column_ignore.next().flatten().as_deref());
                        Some(ContractColumn {
                            name: intern(&mut column_names, &name?),
                            data_type: data_type.map(|t| spelling(&t)),
                            quoted: quoted.unwrap_or(false),
                            ignore,
                        })
                    }),
            );
            out.push(ContractTable {
                source_name: row.text(0).unwrap_or_default(),
                table_name: row.text(1).unwrap_or_default(),
                database: row.text(2),
                schema: row.text(3).unwrap_or_default(),
                identifier: row.text(4).unwrap_or_default(),
                columns,
                policy: TablePolicy {
                    undocumented: row
                        .text(8)
                        .and_then(|u| Undocumented::parse(&u))
                        .unwrap_or_default(),
                    ignore: changes(row.str(9).as_deref()),
                    // Owner and severity are applied in SQL (drift_watch._impact).
                    ..Default::default()
                },
                schema_quoted: row.bool(11).unwrap_or(true),
                identifier_quoted: row.bool(12).unwrap_or(true),
            });
            Ok(())
        },
    )?;
    Ok(out)
}

/// `text` as one shared allocation per distinct value in `set`.
pub(crate) fn intern(set: &mut FxHashSet<Arc<str>>, text: &str) -> Arc<str> {
    match set.get(text) {
        Some(known) => known.clone(),
        None => {
            let new: Arc<str> = Arc::from(text);
            set.insert(new.clone());
            new
        }
    }
}
