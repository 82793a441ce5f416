//! The diff: contract against one read of a live catalog.
//!
//! Rules (the words): a table with no columns listed is only checked for existence; a
//! table with columns is checked column by column; a documented type matches when it is the live
//! column's type (same type oid) and, if it names a modifier, the same modifier (typmod) — the
//! exact meaning of comparing `format_type` spellings, without formatting; where exactly one
//! documented column is missing and exactly one undocumented column of the same type arrived in
//! the same table, that is one `renamed` delta rather than a removed + added pair.
//!
//! Undocumented columns (live, not in the contract) are quiet where they were already there: a
//! table's first check reports them as `undocumented`, and only a column that appears after the
//! baseline is `added`. The table's `undocumented` policy turns the quiet ones into `added`
//! (`alert`) or into nothing (`ignore`); then every delta whose kind the source, table or column
//! `ignore`s is dropped. A relation named by several sources is checked once (see
//! [`merge_relations`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::contract::{ChangeSet, ContractColumn, ContractTable, TablePolicy, Undocumented};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::ident;

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
    /// Shared with the contract column of the same name where the reader could.
    pub name: Arc<str>,
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
///
/// It also says which undocumented columns were already there (`undocumented`, not `added`). So a
/// retaken baseline leaves out the columns that appeared after the one it replaces and are still
/// undocumented: they stay `added` until the contract lists them or a policy ignores them.
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
///
/// The drift_watch policy (`undocumented`, `ignore`, table or column) is deliberately left out:
/// the fingerprint decides when a baseline is retaken, and a baseline records what the relation
/// looked like, which a policy edit does not change. Retaking it on a policy edit would turn every
/// column that appeared since the first check (`added`) into one "already there"
/// (`undocumented`), silently, just because someone set `ignore: [retyped]`. (For the same reason
/// a relation named by several sources is fingerprinted on its merged columns only.)
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
    pub tables: FxHashMap<(String, String), LiveTable>,
    /// A contract relation (schema, identifier) that does not exist, mapped to the live relation
    /// whose schema and name differ from it only in case (the `table_missing` detail names it).
    pub case_variants: FxHashMap<(String, String), (String, String)>,
}

impl LiveCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tables: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            case_variants: FxHashMap::default(),
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
            case_variants: FxHashMap::default(),
        }
    }
}

/// What a catalog read returns besides its column rows, as one JSON object (see
/// extension/src/catalog_read.sql, which documents each field).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct CatalogSummary {
    /// Per relation asked for, in order: its `pg_class.oid`, or `None` when it does not exist.
    #[serde(default)]
    pub relation_oids: Option<Vec<Option<u32>>>,
    /// `(relation index from 1, schema, name)` of a live relation differing only in case from a
    /// missing one.
    #[serde(default)]
    pub case_variants: Option<Vec<(i64, String, String)>>,
    /// Per probe, in order: the type's oid and spelling on the target, or `None`s.
    #[serde(default)]
    pub probes: Option<Vec<(Option<u32>, Option<String>)>>,
    pub in_recovery: Option<bool>,
    pub replay_lag_ms: Option<i64>,
    pub replay_paused: Option<bool>,
}

impl CatalogSummary {
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
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
pub struct TypeMap(FxHashMap<String, FxHashMap<String, ResolvedType>>);

impl TypeMap {
    pub fn insert(&mut self, (schema, spelling): TypeKey, resolved: ResolvedType) {
        self.0.entry(schema).or_default().insert(spelling, resolved);
    }

    pub fn get(&self, schema: &str, spelling: &str) -> Option<&ResolvedType> {
        self.0.get(schema)?.get(spelling)
    }

    /// Every resolved spelling of one schema, to look up many columns of a table.
    pub fn schema(&self, schema: &str) -> Option<&FxHashMap<String, ResolvedType>> {
        self.0.get(schema)
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

/// Compares every contract relation with the catalog read. Deterministic order: by source,
/// schema, table, then column (table-level rows first).
///
/// Without history, every live column the contract does not list is `undocumented` (or `added`
/// under `undocumented: alert`, nothing under `undocumented: ignore`).
pub fn diff(contract: &[ContractTable], live: &LiveCatalog, types: &TypeMap) -> Vec<Delta> {
    compare(contract, live, types, None).deltas
}

/// [`diff`], made exact by baselines: a documented column whose attnum now carries another name
/// is `renamed` (whatever the counts and types), and a documented column without `data_type`
/// whose type changed since the baseline is `retyped`; a live column the contract does not list
/// is `undocumented` if the baseline has it (or there is no baseline yet: the first check) and
/// `added` if it appeared after the baseline. Returns the baselines to store, one per relation.
pub fn check(
    contract: &[ContractTable],
    live: &LiveCatalog,
    types: &TypeMap,
    baselines: &Baselines,
) -> CheckOutcome {
    compare(contract, live, types, Some(baselines))
}

/// What `drift_diff()` shows: the classification a check would record now for the relations
/// that have a baseline (a live column the contract does not list is `added` only if it arrived
/// after that baseline, else `undocumented`; renames exact), and a plain diff for relations never
/// checked, where there is no history to tell the two apart and every such column is `added`.
/// Records nothing and takes no baselines.
pub fn preview(
    contract: &[ContractTable],
    live: &LiveCatalog,
    types: &TypeMap,
    baselines: &Baselines,
) -> Vec<Delta> {
    let mut deltas = if baselines.is_empty() {
        diff(contract, live, types)
    } else {
        check(contract, live, types, baselines).deltas
    };
    for d in &mut deltas {
        if d.change == Change::Undocumented
            && !baselines.contains_key(&(d.schema_name.clone(), d.table_name.clone()))
        {
            d.change = Change::Added;
        }
    }
    deltas
}

/// The contract with one entry per relation (schema, identifier), in the order relations first
/// appear. A relation named by several sources (`source('a', 't')` and `source('b', 't')` on the
/// same table) becomes one entry, its entries taken in (source, table) name order:
///
/// * `source_name`: the distinct source names, sorted, joined with ", "; `table_name`, the
///   database and the quoting flags are the first entry's;
/// * columns: the union by name, in order of first appearance; `data_type` is the first one
///   given; `quoted` the first entry's;
/// * policy: the most alerting `undocumented` (alert, then baseline, then ignore), and only what
///   every entry ignores: the table-level `ignore` is the intersection of the entries' sets, and a
///   column's is the intersection, over the entries that list the column, of that entry's table
///   and column sets. A delta is dropped only if every source that would report it drops it.
///
/// Entries naming a relation once are returned unchanged.
pub fn merge_relations(contract: &[ContractTable]) -> Vec<ContractTable> {
    relations(contract)
        .into_iter()
        .map(|r| r.table.into_owned())
        .collect()
}

/// One relation the contract names.
struct Relation<'a> {
    /// The (merged) entry; `source_name` lists every source naming the relation.
    table: Cow<'a, ContractTable>,
    /// Every `source('s', 't')` naming it, as (source, table).
    names: Vec<(&'a str, &'a str)>,
}

fn relations(contract: &[ContractTable]) -> Vec<Relation<'_>> {
    let mut index: FxHashMap<(&str, &str), usize> =
        FxHashMap::with_capacity_and_hasher(contract.len(), Default::default());
    let mut groups: Vec<Vec<&ContractTable>> = Vec::with_capacity(contract.len());
    for table in contract {
        let key = (table.schema.as_str(), table.identifier.as_str());
        match index.get(&key) {
            Some(&at) => groups[at].push(table),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![table]);
            }
        }
    }
    groups
        .into_iter()
        .map(|mut group| {
            if let [table] = group.as_slice() {
                return Relation {
                    table: Cow::Borrowed(*table),
                    names: vec![(table.source_name.as_str(), table.table_name.as_str())],
                };
            }
            group.sort_by(|a, b| {
                (&a.source_name, &a.table_name).cmp(&(&b.source_name, &b.table_name))
            });
            Relation {
                table: Cow::Owned(merge(&group)),
                names: group
                    .iter()
                    .map(|t| (t.source_name.as_str(), t.table_name.as_str()))
                    .collect(),
            }
        })
        .collect()
}

/// How loudly an `undocumented` policy reports: the louder wins a merge.
fn loudness(u: Undocumented) -> u8 {
    match u {
        Undocumented::Ignore => 0,
        Undocumented::Baseline => 1,
        Undocumented::Alert => 2,
    }
}

/// See [`merge_relations`]; `entries` are sorted and name one relation.
fn merge(entries: &[&ContractTable]) -> ContractTable {
    let first = entries[0];
    let mut sources: Vec<&str> = entries.iter().map(|t| t.source_name.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let mut columns: Vec<ContractColumn> = Vec::new();
    let mut at: FxHashMap<&str, usize> = FxHashMap::default();
    for entry in entries {
        for column in &entry.columns {
            let ignore = entry.policy.ignore.union(column.ignore);
            match at.get(&*column.name) {
                Some(&i) => {
                    let merged = &mut columns[i];
                    if merged.data_type.is_none() {
                        merged.data_type.clone_from(&column.data_type);
                    }
                    merged.ignore = merged.ignore.intersection(ignore);
                }
                None => {
                    at.insert(&*column.name, columns.len());
                    columns.push(ContractColumn {
                        ignore,
                        ..column.clone()
                    });
                }
            }
        }
    }
    let policy = TablePolicy {
        undocumented: entries
            .iter()
            .map(|t| t.policy.undocumented)
            .max_by_key(|u| loudness(*u))
            .unwrap_or_default(),
        ignore: entries
            .iter()
            .fold(ChangeSet::ALL, |set, t| set.intersection(t.policy.ignore)),
        // The most urgent fixed severity, and the first owner (by source name).
        severity: entries.iter().filter_map(|t| t.policy.severity).min(),
        owner: entries.iter().find_map(|t| t.policy.owner.clone()),
        target: entries.iter().find_map(|t| t.policy.target.clone()),
        live_schema: entries.iter().find_map(|t| t.policy.live_schema.clone()),
    };
    ContractTable {
        source_name: sources.join(", "),
        columns,
        policy,
        ..first.clone()
    }
}

/// What the check knows about a relation's past: which live columns were already there.
enum History<'a> {
    /// No baseline (an ad-hoc diff, or the relation's first check): every column was there.
    FirstSight,
    /// The applicable baseline: renames and retypes are exact, columns compare by attnum.
    Exact(&'a Baseline),
    /// A baseline about to be retaken because the contract entry changed (same relation):
    /// attnums still identify columns.
    SameRelation(&'a Baseline),
    /// A baseline of a relation dropped and re-created under the same name: only names carry
    /// over.
    Recreated(&'a Baseline),
}

impl<'a> History<'a> {
    fn exact(&self) -> Option<&'a Baseline> {
        match self {
            History::Exact(b) => Some(b),
            _ => None,
        }
    }
}

/// Both of the above; `None`: no history, and no baselines to take (an ad-hoc diff).
fn compare(
    contract: &[ContractTable],
    live: &LiveCatalog,
    types: &TypeMap,
    baselines: Option<&Baselines>,
) -> CheckOutcome {
    let mut out = CheckOutcome::default();
    for relation in relations(contract) {
        let table = relation.table.as_ref();
        let key = (table.schema.clone(), table.identifier.clone());
        let Some(live_table) = live.get(&key) else {
            if !table.policy.ignore.contains(Change::TableMissing) {
                out.deltas.push(Delta {
                    source_name: table.source_name.clone(),
                    schema_name: table.schema.clone(),
                    table_name: table.identifier.clone(),
                    column_name: None,
                    change: Change::TableMissing,
                    contract_type: None,
                    live_type: None,
                    detail: Some(missing_detail(
                        table,
                        &relation.names,
                        live.case_variants.get(&key),
                    )),
                    renamed_from: None,
                });
            }
            continue;
        };
        let mut history = History::FirstSight;
        let mut retake = None;
        if let Some(baselines) = baselines {
            let fingerprint = contract_fingerprint(table);
            history = match baselines.get(&key) {
                None => History::FirstSight,
                Some(b) if b.rel_oid != live_table.oid => History::Recreated(b),
                Some(b) if b.contract_fingerprint != fingerprint => History::SameRelation(b),
                Some(b) => History::Exact(b),
            };
            if !matches!(history, History::Exact(_)) {
                retake = Some(fingerprint);
            }
        }
        // Attnums of the columns that appeared after the baseline: a retaken baseline leaves them
        // out, so that they stay `added` (a contract edit is no reason to forget they are new).
        let mut appeared = FxHashSet::default();
        if !table.columns.is_empty() {
            diff_columns(
                table,
                live_table,
                types,
                &history,
                &mut out.deltas,
                &mut appeared,
            );
        }
        if let Some(fingerprint) = retake {
            out.baselines.push((
                key,
                Baseline {
                    rel_oid: live_table.oid,
                    contract_fingerprint: fingerprint,
                    columns: live_table
                        .columns
                        .iter()
                        .filter(|c| !appeared.contains(&c.attnum))
                        .cloned()
                        .collect(),
                },
            ));
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

/// `source('a', 't'), source('b', 't')`
fn source_calls(names: &[(&str, &str)]) -> String {
    names
        .iter()
        .map(|(s, t)| format!("source('{s}', '{t}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `table_missing` detail; with a live relation differing only in case, what dbt will query,
/// what the database has, why they differ and what to change.
fn missing_detail(
    table: &ContractTable,
    names: &[(&str, &str)],
    case_variant: Option<&(String, String)>,
) -> String {
    let calls = source_calls(names);
    let plain = || {
        format!(
            "no table, view or foreign table {}.{} (dbt {calls})",
            table.schema, table.identifier
        )
    };
    let Some((live_schema, live_name)) = case_variant else {
        return plain();
    };
    // A name with an upper-case ASCII letter cannot have been folded, whatever the flag says.
    let folds = |name: &str, quoted: bool| !quoted && !name.bytes().any(|b| b.is_ascii_uppercase());
    let mut folded = Vec::new();
    let mut exact = Vec::new();
    for (part, name, quoted, live) in [
        ("schema", &table.schema, table.schema_quoted, live_schema),
        (
            "identifier",
            &table.identifier,
            table.identifier_quoted,
            live_name,
        ),
    ] {
        if name != live {
            if folds(name, quoted) {
                folded.push(part);
            } else {
                exact.push(part);
            }
        }
    }
    if folded.is_empty() && exact.is_empty() {
        return plain();
    }
    let quoting = |value: &str| {
        let parts: Vec<_> = folded.iter().map(|p| format!("{p}: {value}")).collect();
        format!("quoting: {{{}}}", parts.join(", "))
    };
    let mut why = Vec::new();
    if !folded.is_empty() {
        why.push(format!(
            "{} folds {} to lower case",
            quoting("false"),
            if folded.len() == 1 { "it" } else { "them" }
        ));
    }
    if !exact.is_empty() {
        why.push(format!(
            "the {} {} quoted, so case matters",
            exact.join(" and "),
            if exact.len() == 1 { "is" } else { "are" }
        ));
    }
    let fix = match (folded.is_empty(), exact.is_empty()) {
        (false, true) => format!(
            "set {} or fix the {}",
            quoting("true"),
            folded.join(" and ")
        ),
        (true, false) => format!("spell the {} as the database does", exact.join(" and ")),
        _ => format!(
            "set {} and spell the {} as the database does",
            quoting("true"),
            exact.join(" and ")
        ),
    };
    format!(
        "dbt queries {}.{} ({}); the database has {}.{}: {fix} (dbt {calls})",
        ident::quote(&table.schema),
        ident::quote(&table.identifier),
        why.join("; "),
        ident::quote(live_schema),
        ident::quote(live_name),
    )
}

/// The resolved types of one schema (see [`TypeMap::schema`]).
type SchemaTypes<'a> = Option<&'a FxHashMap<String, ResolvedType>>;

fn resolve<'a>(types: SchemaTypes<'a>, spelling: &str) -> Option<&'a ResolvedType> {
    types?.get(spelling)
}

/// How a documented column's type compares with a live column's.
enum TypeCheck {
    NotDocumented,
    Matches,
    Differs { contract: String },
    Invalid { spelling: String, reason: String },
}

fn check_type(types: SchemaTypes<'_>, column: &ContractColumn, live: &LiveColumn) -> TypeCheck {
    let Some(spelling) = column.data_type.as_deref() else {
        return TypeCheck::NotDocumented;
    };
    match resolve(types, spelling) {
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

fn canonical_contract_type(types: SchemaTypes<'_>, column: &ContractColumn) -> Option<String> {
    let spelling = column.data_type.as_deref()?;
    Some(match resolve(types, spelling) {
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

/// Whether two names differ, but only in case.
fn case_only(a: &str, b: &str) -> bool {
    a != b && a.to_lowercase() == b.to_lowercase()
}

/// The `removed` detail for a documented column when the database has one differing only in
/// case.
fn case_twin_detail(column: &ContractColumn, live: &str) -> String {
    let has = format!(
        "the database has {}, which differs only in case",
        ident::quote(live)
    );
    if !column.quoted {
        format!(
            "{has}: dbt folds a column name to lower case ({}) unless the column has quote: true; \
             set quote: true and spell it {live}",
            column.name
        )
    } else if live.bytes().any(|b| b.is_ascii_uppercase()) {
        format!("{has}: with quote: true the name is kept as written; spell it {live}")
    } else {
        format!(
            "{has}: with quote: true the name is kept as written; spell it {live}, or drop \
             quote: true to let it fold"
        )
    }
}

/// Which live columns the history already knew (so an undocumented one is `undocumented`, not
/// `added`).
enum Known<'a> {
    All,
    Attnums(FxHashSet<i32>),
    Names(FxHashSet<&'a str>),
}

impl<'a> Known<'a> {
    fn of(history: &History<'a>) -> Self {
        match history {
            History::FirstSight => Known::All,
            History::Exact(b) | History::SameRelation(b) => {
                Known::Attnums(b.columns.iter().map(|c| c.attnum).collect())
            }
            History::Recreated(b) => Known::Names(b.columns.iter().map(|c| &*c.name).collect()),
        }
    }

    fn knows(&self, column: &LiveColumn) -> bool {
        match self {
            Known::All => true,
            // Same attnum: a rename of an undocumented column keeps it undocumented.
            Known::Attnums(attnums) => attnums.contains(&column.attnum),
            Known::Names(names) => names.contains(&*column.name),
        }
    }
}

/// Whether the live columns are exactly the documented ones, in the same order.
fn aligned(table: &ContractTable, live: &LiveTable) -> bool {
    live.columns.len() == table.columns.len()
        && live
            .columns
            .iter()
            .zip(&table.columns)
            .all(|(l, c)| l.name == c.name)
}

/// The relations whose baseline columns [`check`] and [`preview`] of `contract` against `live`
/// do not read, with the relation oid and [`contract_fingerprint`] a stored baseline must have
/// for that to hold: with both equal the baseline is exact (nothing to retake), and when the
/// live columns are the documented ones in order, all of them typed (or none listed), the diff
/// only compares types. A caller may then leave such a baseline's `columns` empty (the
/// extension does not read them), which changes no outcome.
pub fn baselines_without_columns(
    contract: &[ContractTable],
    live: &LiveCatalog,
) -> FxHashMap<(String, String), (u32, String)> {
    let mut out = FxHashMap::default();
    for relation in relations(contract) {
        let table = relation.table.as_ref();
        let key = (table.schema.clone(), table.identifier.clone());
        let Some(live_table) = live.get(&key) else {
            continue;
        };
        let typed = table.columns.iter().all(|c| c.data_type.is_some());
        if table.columns.is_empty() || (typed && aligned(table, live_table)) {
            out.insert(key, (live_table.oid, contract_fingerprint(table)));
        }
    }
    out
}

fn diff_columns(
    table: &ContractTable,
    live: &LiveTable,
    types: &TypeMap,
    history: &History<'_>,
    out: &mut Vec<Delta>,
    appeared: &mut FxHashSet<i32>,
) {
    let baseline = history.exact();
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
    // Records a delta unless the table, or the documented column it is about, ignores its kind.
    let mut emit = |delta: Delta, column: Option<&ContractColumn>| {
        let ignore = column.map_or(table.policy.ignore, |c| table.policy.ignore.union(c.ignore));
        if !ignore.contains(delta.change) {
            out.push(delta);
        }
    };
    // The resolved types of the table's schema, looked up once per table.
    let types = types.schema(&table.schema);

    // The baseline's view of a column: by name (where a documented name used to be) and by
    // attnum (what that attnum is now).
    // (Only read for renames, which need a missing column, and for columns without data_type.)
    let aligned = aligned(table, live);
    let base_by_name: FxHashMap<&str, &LiveColumn> = match baseline {
        Some(b) if !aligned || table.columns.iter().any(|c| c.data_type.is_none()) => {
            b.columns.iter().map(|c| (&*c.name, c)).collect()
        }
        _ => FxHashMap::default(),
    };
    let live_by_attnum: FxHashMap<i32, &LiveColumn> = match baseline {
        Some(_) if !aligned => live.columns.iter().map(|c| (c.attnum, c)).collect(),
        _ => FxHashMap::default(),
    };

    // A documented column against the live column of the same name: retyped or not.
    let retyped = |column: &ContractColumn, live_column: &LiveColumn| -> Option<Delta> {
        match check_type(types, column, live_column) {
            TypeCheck::Matches => None,
            // No data_type in the contract: the snapshot is the reference.
            TypeCheck::NotDocumented => base_by_name
                .get(&*column.name)
                .filter(|b| b.attnum == live_column.attnum)
                .filter(|b| (b.type_oid, b.typmod) != (live_column.type_oid, live_column.typmod))
                .map(|before| {
                    row(
                        &column.name,
                        Change::Retyped,
                        Some(before.type_name.to_string()),
                        Some(live_column.type_name.to_string()),
                        Some(
                            "type changed since the snapshot (the contract has no data_type)"
                                .into(),
                        ),
                    )
                }),
            TypeCheck::Differs { contract } => Some(row(
                &column.name,
                Change::Retyped,
                Some(contract),
                Some(live_column.type_name.to_string()),
                None,
            )),
            TypeCheck::Invalid { spelling, reason } => Some(row(
                &column.name,
                Change::Retyped,
                Some(spelling.clone()),
                Some(live_column.type_name.to_string()),
                Some(format!(
                    "contract data_type '{spelling}' is not a type the target knows: {reason}"
                )),
            )),
        }
    };

    // The common case: the live columns are the documented ones, in the same order. Nothing is
    // missing, renamed or undocumented; only types can differ.
    if aligned {
        for (column, live_column) in table.columns.iter().zip(&live.columns) {
            if let Some(delta) = retyped(column, live_column) {
                emit(delta, Some(column));
            }
        }
        return;
    }

    let mut live_by_name: FxHashMap<&str, &LiveColumn> =
        FxHashMap::with_capacity_and_hasher(live.columns.len(), Default::default());
    live_by_name.extend(live.columns.iter().map(|c| (&*c.name, c)));
    let mut documented: FxHashSet<&str> =
        FxHashSet::with_capacity_and_hasher(table.columns.len(), Default::default());
    documented.extend(table.columns.iter().map(|c| &*c.name));

    let mut missing: Vec<&ContractColumn> = Vec::new();
    let mut renamed_to: FxHashSet<&str> = FxHashSet::default();
    for column in &table.columns {
        let Some(live_column) = live_by_name.get(&*column.name) else {
            // Exact rename: the attnum that carried this name in the baseline carries another,
            // undocumented name now.
            let now = base_by_name
                .get(&*column.name)
                .and_then(|b| live_by_attnum.get(&b.attnum))
                .filter(|l| !documented.contains(&*l.name));
            match now {
                Some(new) => {
                    renamed_to.insert(&*new.name);
                    emit(
                        renamed(
                            row(
                                &new.name,
                                Change::Renamed,
                                canonical_contract_type(types, column),
                                Some(new.type_name.to_string()),
                                Some(format!(
                                    "renamed from {} (same column, attnum {}, as in the snapshot)",
                                    column.name, new.attnum
                                )),
                            ),
                            &column.name,
                        ),
                        Some(column),
                    );
                }
                None => missing.push(column),
            }
            continue;
        };
        if let Some(delta) = retyped(column, live_column) {
            emit(delta, Some(column));
        }
    }
    let arrived: Vec<&LiveColumn> = live
        .columns
        .iter()
        .filter(|c| !documented.contains(&*c.name) && !renamed_to.contains(&*c.name))
        .collect();

    // Without history to go by: one documented column gone and one undocumented column of the
    // same type is a rename (but a difference in case only is a quoting mistake, said below).
    if let ([old], [new]) = (missing.as_slice(), arrived.as_slice()) {
        if !case_only(&old.name, &new.name)
            && matches!(check_type(types, old, new), TypeCheck::Matches)
        {
            emit(
                renamed(
                    row(
                        &new.name,
                        Change::Renamed,
                        canonical_contract_type(types, old),
                        Some(new.type_name.to_string()),
                        Some(format!("renamed from {}", old.name)),
                    ),
                    &old.name,
                ),
                Some(old),
            );
            return;
        }
    }
    if !missing.is_empty() {
        let mut by_lower: FxHashMap<String, &LiveColumn> = FxHashMap::default();
        for column in &arrived {
            by_lower.entry(column.name.to_lowercase()).or_insert(column);
        }
        for old in missing {
            let detail = by_lower
                .get(&old.name.to_lowercase())
                .filter(|twin| case_only(&old.name, &twin.name))
                .map(|twin| case_twin_detail(old, &twin.name));
            emit(
                row(
                    &old.name,
                    Change::Removed,
                    canonical_contract_type(types, old),
                    None,
                    detail,
                ),
                Some(old),
            );
        }
    }
    if arrived.is_empty() {
        return;
    }
    let known = Known::of(history);
    for new in arrived {
        let change = if !known.knows(new) {
            // It appeared after the baseline, whatever the policy says about the others.
            appeared.insert(new.attnum);
            Change::Added
        } else {
            match table.policy.undocumented {
                Undocumented::Baseline => Change::Undocumented,
                Undocumented::Alert => Change::Added,
                Undocumented::Ignore => continue,
            }
        };
        emit(
            row(
                &new.name,
                change,
                None,
                Some(new.type_name.to_string()),
                None,
            ),
            None,
        );
    }
}

#[cfg(test)]
mod tests;
