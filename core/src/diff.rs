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
    /// A live column the contract does not list that was already there when the table was first
    /// checked (or, without history, any such column).
    Undocumented,
}

impl Change {
    /// Every kind, in the order people write them (`ignore: [added, removed, ...]`).
    pub const ALL: [Change; 6] = [
        Change::Added,
        Change::Removed,
        Change::Retyped,
        Change::Renamed,
        Change::TableMissing,
        Change::Undocumented,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Retyped => "retyped",
            Change::Renamed => "renamed",
            Change::TableMissing => "table_missing",
            Change::Undocumented => "undocumented",
        }
    }

    /// The kind whose [`Change::as_str`] is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
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
    /// For `renamed`: the documented name the column had (identifies the drift, unlike `detail`).
    pub renamed_from: Option<String>,
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
    /// `pg_class.oid`: a table dropped and re-created gets a new one.
    pub oid: u32,
    pub columns: Vec<LiveColumn>,
}

/// The live columns of one relation as a check recorded them: the reference that makes renames
/// and retypes exact. A baseline is taken when a table is first checked, and taken again when the
/// table is re-created (new oid) or its contract entry changes (the contract caught up); in
/// between, each check compares the live columns with it by attnum, which `RENAME COLUMN` and
/// `ALTER COLUMN TYPE` keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub rel_oid: u32,
    /// [`contract_fingerprint`] of the contract entry the baseline was taken under.
    pub contract_fingerprint: String,
    pub columns: Vec<LiveColumn>,
}

/// Baselines by (schema, relation), as stored.
pub type Baselines = HashMap<(String, String), Baseline>;

/// What one check found: the deltas, and the baselines to store (new or retaken).
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    pub deltas: Vec<Delta>,
    pub baselines: Vec<((String, String), Baseline)>,
}

/// A stable fingerprint of a contract entry's columns (names, types, quoting): when it changes,
/// the contract has been edited for that table. FNV-1a, so it is the same in every build.
pub fn contract_fingerprint(table: &ContractTable) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for column in &table.columns {
        feed(column.name.as_bytes());
        feed(&[0x1f]);
        feed(column.data_type.as_deref().unwrap_or("\u{0}").as_bytes());
        feed(&[0x1f, u8::from(column.quoted), 0x1e]);
    }
    format!("{hash:016x}")
}

/// The live relations that the contract names, keyed by (schema, relation) as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveCatalog {
    pub tables: HashMap<(String, String), LiveTable>,
    /// A contract relation (schema, identifier) that does not exist, mapped to the live relation
    /// whose schema and name differ from it only in case (the `table_missing` detail names it).
    pub case_variants: HashMap<(String, String), (String, String)>,
}

impl LiveCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tables: HashMap::with_capacity(capacity),
            case_variants: HashMap::new(),
        }
    }

    pub fn insert(&mut self, key: (String, String), table: LiveTable) -> Option<LiveTable> {
        self.tables.insert(key, table)
    }

    pub fn get(&self, key: &(String, String)) -> Option<&LiveTable> {
        self.tables.get(key)
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

impl FromIterator<((String, String), LiveTable)> for LiveCatalog {
    fn from_iter<I: IntoIterator<Item = ((String, String), LiveTable)>>(iter: I) -> Self {
        Self {
            tables: iter.into_iter().collect(),
            case_variants: HashMap::new(),
        }
    }
}

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
    compare(contract, live, types, None).deltas
}

/// [`diff`], made exact by baselines: a documented column whose attnum now carries another name
/// is `renamed` (whatever the counts and types), and a documented column without `data_type`
/// whose type changed since the baseline is `retyped`. Returns the baselines to store.
pub fn check(
    contract: &[ContractTable],
    live: &LiveCatalog,
    types: &TypeMap,
    baselines: &Baselines,
) -> CheckOutcome {
    compare(contract, live, types, Some(baselines))
}

/// Both of the above; `None`: no history, and no baselines to take (an ad-hoc diff).
fn compare(
    contract: &[ContractTable],
    live: &LiveCatalog,
    types: &TypeMap,
    baselines: Option<&Baselines>,
) -> CheckOutcome {
    let mut out = CheckOutcome::default();
    for table in contract {
        let key = (table.schema.clone(), table.identifier.clone());
        let Some(live_table) = live.get(&key) else {
            out.deltas.push(Delta {
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
                renamed_from: None,
            });
            continue;
        };
        let mut baseline = None;
        if let Some(baselines) = baselines {
            let fingerprint = contract_fingerprint(table);
            baseline = baselines
                .get(&key)
                .filter(|b| b.rel_oid == live_table.oid && b.contract_fingerprint == fingerprint);
            if baseline.is_none() {
                out.baselines.push((
                    key,
                    Baseline {
                        rel_oid: live_table.oid,
                        contract_fingerprint: fingerprint,
                        columns: live_table.columns.clone(),
                    },
                ));
            }
        }
        if !table.columns.is_empty() {
            diff_columns(table, live_table, types, baseline, &mut out.deltas);
        }
    }
    out.deltas.sort_by(|a, b| {
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

fn renamed(delta: Delta, from: &str) -> Delta {
    Delta {
        renamed_from: Some(from.to_string()),
        ..delta
    }
}

fn diff_columns(
    table: &ContractTable,
    live: &LiveTable,
    types: &TypeMap,
    baseline: Option<&Baseline>,
    out: &mut Vec<Delta>,
) {
    let row = |column: &str, change, contract_type, live_type, detail| Delta {
        source_name: table.source_name.clone(),
        schema_name: table.schema.clone(),
        table_name: table.identifier.clone(),
        column_name: Some(column.to_string()),
        change,
        contract_type,
        live_type,
        detail,
        renamed_from: None,
    };
    let live_by_name: HashMap<&str, &LiveColumn> =
        live.columns.iter().map(|c| (c.name.as_str(), c)).collect();
    let documented: HashSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();

    // The baseline's view of a column: by name (where a documented name used to be) and by
    // attnum (what that attnum is now).
    let base_by_name: HashMap<&str, &LiveColumn> = baseline
        .map(|b| b.columns.iter().map(|c| (c.name.as_str(), c)).collect())
        .unwrap_or_default();
    let live_by_attnum: HashMap<i32, &LiveColumn> = match baseline {
        Some(_) => live.columns.iter().map(|c| (c.attnum, c)).collect(),
        None => HashMap::new(),
    };

    let mut missing: Vec<&ContractColumn> = Vec::new();
    let mut renamed_to: HashSet<&str> = HashSet::new();
    for column in &table.columns {
        let Some(live_column) = live_by_name.get(column.name.as_str()) else {
            // Exact rename: the attnum that carried this name in the baseline carries another,
            // undocumented name now.
            let now = base_by_name
                .get(column.name.as_str())
                .and_then(|b| live_by_attnum.get(&b.attnum))
                .filter(|l| !documented.contains(l.name.as_str()));
            match now {
                Some(new) => {
                    renamed_to.insert(new.name.as_str());
                    out.push(renamed(
                        row(
                            &new.name,
                            Change::Renamed,
                            canonical_contract_type(types, &table.schema, column),
                            Some(new.type_name.to_string()),
                            Some(format!(
                                "renamed from {} (same column, attnum {}, as in the snapshot)",
                                column.name, new.attnum
                            )),
                        ),
                        &column.name,
                    ));
                }
                None => missing.push(column),
            }
            continue;
        };
        match check_type(types, &table.schema, column, live_column) {
            TypeCheck::Matches => {}
            TypeCheck::NotDocumented => {
                // No data_type in the contract: the snapshot is the reference.
                if let Some(before) = base_by_name
                    .get(column.name.as_str())
                    .filter(|b| b.attnum == live_column.attnum)
                    .filter(|b| {
                        (b.type_oid, b.typmod) != (live_column.type_oid, live_column.typmod)
                    })
                {
                    out.push(row(
                        &column.name,
                        Change::Retyped,
                        Some(before.type_name.to_string()),
                        Some(live_column.type_name.to_string()),
                        Some(
                            "type changed since the snapshot (the contract has no data_type)"
                                .into(),
                        ),
                    ));
                }
            }
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
        .filter(|c| !documented.contains(c.name.as_str()) && !renamed_to.contains(c.name.as_str()))
        .collect();

    if let ([old], [new]) = (missing.as_slice(), arrived.as_slice()) {
        if matches!(
            check_type(types, &table.schema, old, new),
            TypeCheck::Matches
        ) {
            out.push(renamed(
                row(
                    &new.name,
                    Change::Renamed,
                    canonical_contract_type(types, &table.schema, old),
                    Some(new.type_name.to_string()),
                    Some(format!("renamed from {}", old.name)),
                ),
                &old.name,
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
