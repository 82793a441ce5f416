//! The diff: contract against one read of a live catalog.
//!
//! Rules (the words): a table with no columns listed is only checked for existence; a
//! table with columns is checked column by column; a documented type matches when it is the live
//! column's type (same type oid) and, if it names a modifier, the same modifier (typmod) — the
//! exact meaning of comparing `format_type` spellings, without formatting; where exactly one
//! documented column is missing and exactly one undocumented column of the same type arrived in
//! the same table, that is one `renamed` delta rather than a removed + added pair.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::contract::{ContractColumn, ContractTable};

/// One delta kind; the text form is part of the SQL interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    TableMissing,
    Removed,
    Renamed,
    Retyped,
    Added,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Retyped => "retyped",
            Change::Renamed => "renamed",
            Change::TableMissing => "table_missing",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `drift_diff()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub source_name: String,
    pub schema_name: String,
    pub table_name: String,
    pub column_name: Option<String>,
    pub change: Change,
    pub contract_type: Option<String>,
    pub live_type: Option<String>,
    pub detail: Option<String>,
}

/// A live column: its type as `pg_attribute` has it, and as `format_type` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub attnum: i32,
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    /// `format_type(atttypid, atttypmod)`, shared by every column of the same type.
    pub type_name: Arc<str>,
}

/// A live relation (table, partitioned table, view, materialized view or foreign table).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveTable {
    pub columns: Vec<LiveColumn>,
}

/// The live relations that the contract names, keyed by (schema, relation) as stored.
pub type LiveCatalog = HashMap<(String, String), LiveTable>;

/// A contract spelling as the server's type parser understood it, for a table in a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedType {
    /// The type's oid on the target (built-in oids are the same on every server), the modifier
    /// when the spelling carried one (`varchar(255)`), and the canonical spelling to show.
    Known {
        oid: u32,
        typmod: Option<i32>,
        spelling: String,
    },
    /// Postgres could not parse the spelling or has no such type; the reason is its own words.
    Unknown { reason: String },
}

/// Types resolve per (schema of the table, spelling): an unqualified user type is looked up in
/// the table's schema first.
pub type TypeKey = (String, String);

/// Resolved contract types by schema, then spelling: looked up once per documented column, so
/// lookups borrow instead of building a `TypeKey`.
#[derive(Debug, Clone, Default)]
pub struct TypeMap(HashMap<String, HashMap<String, ResolvedType>>);

impl TypeMap {
    pub fn insert(&mut self, (schema, spelling): TypeKey, resolved: ResolvedType) {
        self.0.entry(schema).or_default().insert(spelling, resolved);
    }

    pub fn get(&self, schema: &str, spelling: &str) -> Option<&ResolvedType> {
        self.0.get(schema)?.get(spelling)
    }
}

impl FromIterator<(TypeKey, ResolvedType)> for TypeMap {
    fn from_iter<I: IntoIterator<Item = (TypeKey, ResolvedType)>>(iter: I) -> Self {
        let mut map = TypeMap::default();
        for (key, resolved) in iter {
            map.insert(key, resolved);
        }
        map
    }
}

impl Extend<(TypeKey, ResolvedType)> for TypeMap {
    fn extend<I: IntoIterator<Item = (TypeKey, ResolvedType)>>(&mut self, iter: I) {
        for (key, resolved) in iter {
            self.insert(key, resolved);
        }
    }
}

/// Compares every contract table with the catalog read. Deterministic order: by source, schema,
/// table, then column (table-level rows first).
pub fn diff(contract: &[ContractTable], live: &LiveCatalog, types: &TypeMap) -> Vec<Delta> {
    let mut out = Vec::new();
    for table in contract {
        let key = (table.schema.clone(), table.identifier.clone());
        match live.get(&key) {
            None => out.push(Delta {
                source_name: table.source_name.clone(),
                schema_name: table.schema.clone(),
                table_name: table.identifier.clone(),
                column_name: None,
                change: Change::TableMissing,
                contract_type: None,
                live_type: None,
                detail: Some(format!(
                    "no table, view or foreign table {}.{} (dbt source('{}', '{}'))",
                    table.schema, table.identifier, table.source_name, table.table_name
                )),
            }),
            Some(live_table) if !table.columns.is_empty() => {
                diff_columns(table, live_table, types, &mut out)
            }
            Some(_) => {}
        }
    }
    out.sort_by(|a, b| {
        (
            &a.source_name,
            &a.schema_name,
            &a.table_name,
            &a.column_name,
            a.change,
        )
            .cmp(&(
                &b.source_name,
                &b.schema_name,
                &b.table_name,
                &b.column_name,
                b.change,
            ))
    });
    out
}

fn resolve<'a>(types: &'a TypeMap, schema: &str, spelling: &str) -> Option<&'a ResolvedType> {
    types.get(schema, spelling)
}

/// How a documented column's type compares with a live column's.
enum TypeCheck {
    NotDocumented,
    Matches,
    Differs { contract: String },
    Invalid { spelling: String, reason: String },
}

fn check_type(
    types: &TypeMap,
    schema: &str,
    column: &ContractColumn,
    live: &LiveColumn,
) -> TypeCheck {
    let Some(spelling) = column.data_type.as_deref() else {
        return TypeCheck::NotDocumented;
    };
    match resolve(types, schema, spelling) {
        Some(ResolvedType::Known {
            oid,
            typmod,
            spelling,
        }) => {
            if *oid == live.type_oid && typmod.is_none_or(|m| m == live.typmod) {
                TypeCheck::Matches
            } else {
                TypeCheck::Differs {
                    contract: spelling.clone(),
                }
            }
        }
        Some(ResolvedType::Unknown { reason }) => TypeCheck::Invalid {
            spelling: spelling.to_string(),
            reason: reason.clone(),
        },
        None => TypeCheck::Invalid {
            spelling: spelling.to_string(),
            reason: "the type was not resolved".into(),
        },
    }
}

fn canonical_contract_type(
    types: &TypeMap,
    schema: &str,
    column: &ContractColumn,
) -> Option<String> {
    let spelling = column.data_type.as_deref()?;
    Some(match resolve(types, schema, spelling) {
        Some(ResolvedType::Known { spelling, .. }) => spelling.clone(),
        _ => spelling.to_string(),
    })
}

fn diff_columns(table: &ContractTable, live: &LiveTable, types: &TypeMap, out: &mut Vec<Delta>) {
    let row = |column: &str, change, contract_type, live_type, detail| Delta {
        source_name: table.source_name.clone(),
        schema_name: table.schema.clone(),
        table_name: table.identifier.clone(),
        column_name: Some(column.to_string()),
        change,
        contract_type,
        live_type,
        detail,
    };
    let live_by_name: HashMap<&str, &LiveColumn> =
        live.columns.iter().map(|c| (c.name.as_str(), c)).collect();
    let documented: HashSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();

    let mut missing: Vec<&ContractColumn> = Vec::new();
    for column in &table.columns {
        let Some(live_column) = live_by_name.get(column.name.as_str()) else {
            missing.push(column);
            continue;
        };
        match check_type(types, &table.schema, column, live_column) {
            TypeCheck::NotDocumented | TypeCheck::Matches => {}
            TypeCheck::Differs { contract } => out.push(row(
                &column.name,
                Change::Retyped,
                Some(contract),
                Some(live_column.type_name.to_string()),
                None,
            )),
            TypeCheck::Invalid { spelling, reason } => out.push(row(
                &column.name,
                Change::Retyped,
                Some(spelling.clone()),
                Some(live_column.type_name.to_string()),
                Some(format!(
                    "contract data_type '{spelling}' is not a type the target knows: {reason}"
                )),
            )),
        }
    }
    let arrived: Vec<&LiveColumn> = live
        .columns
        .iter()
        .filter(|c| !documented.contains(c.name.as_str()))
        .collect();

    if let ([old], [new]) = (missing.as_slice(), arrived.as_slice()) {
        if matches!(
            check_type(types, &table.schema, old, new),
            TypeCheck::Matches
        ) {
            out.push(row(
                &new.name,
                Change::Renamed,
                canonical_contract_type(types, &table.schema, old),
                Some(new.type_name.to_string()),
                Some(format!("renamed from {}", old.name)),
            ));
            return;
        }
    }
    for old in missing {
        let case_twin = arrived
            .iter()
            .find(|c| c.name.to_lowercase() == old.name.to_lowercase());
        let detail = case_twin.map(|c| {
            format!(
                "the live column \"{}\" differs only in case: name it exactly and set quote: true",
                c.name
            )
        });
        out.push(row(
            &old.name,
            Change::Removed,
            canonical_contract_type(types, &table.schema, old),
            None,
            detail,
        ));
    }
    for new in arrived {
        out.push(row(
            &new.name,
            Change::Added,
            None,
            Some(new.type_name.to_string()),
            None,
        ));
    }
}

#[cfg(test)]
mod tests;
