//! The live side: the one place that reads a live schema, and where contract type spellings
//! meet the server's type parser.
//!
//! A run reads the live catalog with a single `pg_catalog` query (never `information_schema`,
//! which hides columns from roles without grants): the relations the contract names, their
//! non-dropped user columns with `format_type` spellings, and, in the same round trip, the
//! user-defined types the contract mentions. For a target the query goes through contrib's
//! `dblink` using the foreign server and the caller's user mapping, so credentials stay in
//! Postgres and the read is an ordinary, cancellable backend query on the replica.
//!
//! The statement is one static file, `catalog_read.sql` (its header documents the inputs and the
//! result columns). Locally its inputs are bound as parameters; for a target each input is
//! substituted into the same text as one escaped literal.

use std::collections::BTreeMap;
use std::sync::Arc;

use drift_watch_core::ident::{array_literal, substitute};
use drift_watch_core::types::{user_type_lookup, TypeLookup};
use drift_watch_core::{
    CatalogSummary, ContractTable, FxHashMap, LiveCatalog, LiveColumn, LiveTable, ResolvedType,
    TypeKey, TypeMap,
};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::error::DriftError;
use crate::spi_rows::{self, ty};

/// Where the live schema is read from.
pub enum Target<'a> {
    /// The current database, through SPI.
    Local,
    /// A foreign server (`postgres_fdw` or `dblink_fdw`) with a user mapping for the caller.
    Server(&'a str),
}

/// What one read of the live side returns.
pub struct LiveRead {
    pub catalog: LiveCatalog,
    pub types: TypeMap,
    pub freshness: Freshness,
}

/// The target's replication state, read with its catalog.
#[derive(Clone, Copy, Debug, Default)]
pub struct Freshness {
    pub in_recovery: Option<bool>,
    /// How far replay is behind what the replica received (0 when caught up), milliseconds.
    pub replay_lag_ms: Option<i64>,
    pub replay_paused: Option<bool>,
}

/// Timeouts set on the target's session for the read, milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    pub statement_timeout_ms: i64,
    pub lock_timeout_ms: i64,
}

/// What a read through a foreign server needs to know first, in one statement.
struct Preflight {
    limits: ReadLimits,
    /// The schema dblink is installed in.
    dblink: String,
}

/// Checks that `target` names a foreign server the caller can use, and reads the target's
/// settings (drift_watch.target_setting, or the defaults), the schema of dblink and whether this
/// session holds a dblink connection named like the server: one round trip, before any
/// connection. The settings and the connection check are only evaluated for a usable server,
/// and the errors come in the order of the checks (unknown server, no user mapping, no dblink,
/// connection name taken).
fn preflight(client: &SpiClient<'_>, target: &str) -> Result<Preflight, DriftError> {
    let mut row = None;
    spi_rows::for_each_saved(
        client,
        "SELECT k.known, k.mapped, current_user::text,
                CASE WHEN k.known AND k.mapped THEN
                  (SELECT ARRAY[(extract(epoch FROM s.statement_timeout) * 1000)::int8,
                                (extract(epoch FROM s.lock_timeout) * 1000)::int8]
                     FROM drift_watch._target_setting($1) s) END,
                (SELECT n.nspname::text FROM pg_catalog.pg_extension e
                   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'dblink'),
                CASE WHEN k.known AND k.mapped THEN drift_watch._dblink_connection_open($1) END
           FROM (SELECT s.oid IS NOT NULL AS known,
                        EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m
                                 WHERE m.srvid = s.oid
                                   AND (m.umuser OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                                        OR m.umuser OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                       WHERE r.rolname OPERATOR(pg_catalog.=) current_user))) AS mapped
                   FROM (SELECT $1::text AS name) n
                   LEFT JOIN pg_catalog.pg_foreign_server s ON s.srvname = n.name) k",
        &[target.into()],
        &[
            ty::BOOL,
            ty::BOOL,
            ty::TEXT,
            ty::INT8_ARRAY,
            ty::TEXT,
            ty::BOOL,
        ],
        |r| {
            let mut timeouts = r.int8_array_iter(3);
            row = Some((
                r.bool(0),
                r.bool(1),
                r.text(2),
                timeouts.next().flatten(),
                timeouts.next().flatten(),
                r.text(4),
                r.bool(5),
            ));
            Ok(())
        },
    )?;
    let (known, mapped, role, statement_timeout, lock_timeout, dblink, preempted) =
        row.ok_or(DriftError::Internal("the target check returned no row"))?;
    match (known, mapped) {
        (Some(true), Some(true)) => {}
        (Some(true), _) => {
            return Err(DriftError::NoUserMapping {
                target: target.to_string(),
                role: role.unwrap_or_default(),
            })
        }
        _ => return Err(DriftError::UnknownTarget(target.to_string())),
    }
    let dblink = dblink.ok_or(DriftError::DblinkMissing)?;
    // dblink(name, ...) would use a connection of that name this session opened with
    // dblink_connect instead of the foreign server: refuse to read through one.
    if preempted.unwrap_or(false) {
        return Err(DriftError::ConnectionNameTaken(target.to_string()));
    }
    Ok(Preflight {
        limits: ReadLimits {
            statement_timeout_ms: statement_timeout.unwrap_or(60_000).max(1),
            lock_timeout_ms: lock_timeout.unwrap_or(10_000).max(1),
        },
        dblink,
    })
}

/// Canonicalises every distinct contract spelling. Built-ins are answered here; the rest are
/// returned as probes `(schema, spelling)` to resolve on the live side.
fn canonical_types(
    client: &SpiClient<'_>,
    contract: &[ContractTable],
) -> Result<(TypeMap, Vec<TypeKey>), DriftError> {
    // Distinct (spelling, schema) pairs. read_contract shares one allocation per spelling, so
    // spellings are told apart by address (no hashing of the text per column), and schemas by
    // their index among the few distinct ones; the distinct pairs are then merged by text.
    let mut schemas: Vec<&str> = Vec::new();
    let mut by_address: FxHashMap<(*const u8, usize), &str> = FxHashMap::default();
    for table in contract {
        let schema = match schemas.iter().position(|s| *s == table.schema) {
            Some(at) => at,
            None => {
                schemas.push(table.schema.as_str());
                schemas.len() - 1
            }
        };
        for column in &table.columns {
            if let Some(t) = column.data_type.as_deref() {
                by_address.entry((t.as_ptr(), schema)).or_insert(t);
            }
        }
    }
    let mut uses: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
    for ((_, schema), t) in by_address {
        let schema = schemas[schema];
        let schemas = uses.entry(t).or_default();
        if !schemas.contains(&schema) {
            schemas.push(schema);
        }
    }
    let mut resolved = TypeMap::default();
    let mut probes = Vec::new();
    if uses.is_empty() {
        return Ok((resolved, probes));
    }
    let spellings: Vec<&str> = uses.keys().copied().collect();
    spi_rows::for_each_saved(
        client,
        "SELECT spelling, type_oid, typmod, canonical, needs_target, parse_error
           FROM drift_watch._canonical_types($1)",
        &[spellings.into()],
        &[ty::TEXT, ty::OID, ty::INT4, ty::TEXT, ty::BOOL, ty::TEXT],
        |row| {
            let spelling = row.str(0).unwrap_or_default();
            let Some(schemas) = uses.get(spelling.as_ref()) else {
                return Ok(());
            };
            let oid = row.oid(1);
            let typmod = row.int4(2);
            let canonical = row.text(3);
            let needs_target = row.bool(4).unwrap_or(false);
            let error = row.text(5);
            for schema in schemas {
                let key = (schema.to_string(), spelling.to_string());
                if needs_target {
                    probes.push(key);
                } else if let Some(reason) = &error {
                    resolved.insert(
                        key,
                        ResolvedType::Unknown {
                            reason: reason.clone(),
                        },
                    );
                } else if let (Some(oid), Some(canonical)) = (oid, &canonical) {
                    resolved.insert(
                        key,
                        ResolvedType::Known {
                            oid,
                            typmod,
                            spelling: canonical.clone(),
                        },
                    );
                }
            }
            Ok(())
        },
    )?;
    probes.sort(); // a deterministic statement, whatever the hash order
    Ok((resolved, probes))
}

/// The catalog statement (see the file for its inputs and result rows).
const CATALOG_READ: &str = include_str!("catalog_read.sql");

/// The result columns of catalog_read.sql, in order, as dblink's column definition list.
pub const RESULT_COLUMNS: &str = "relation int4, attnum int4, attname text, atttypid oid, \
     atttypmod int4, user_type text, summary json";
/// The types of `RESULT_COLUMNS`, as `spi_rows` checks them.
const RESULT_TYPES: &[pgrx::pg_sys::Oid] = &[
    ty::INT4,
    ty::INT4,
    ty::TEXT,
    ty::OID,
    ty::INT4,
    ty::TEXT,
    ty::JSON,
];
/// Indexes of `RESULT_COLUMNS`.
mod col {
    pub const RELATION: usize = 0;
    pub const ATTNUM: usize = 1;
    pub const ATTNAME: usize = 2;
    pub const ATTTYPID: usize = 3;
    pub const ATTTYPMOD: usize = 4;
    pub const USER_TYPE: usize = 5;
    pub const SUMMARY: usize = 6;
}

/// The catalog statement's inputs for one run, and the lists its result rows point into.
pub struct CatalogQuery {
    /// $1/$2: the relations, (schema, name); result `relation` i is `relations[i - 1]`.
    relations: Vec<(String, String)>,
    /// Per relation, how many columns the contract lists for it (a capacity hint).
    widths: Vec<usize>,
    /// Per relation, the contract entry listing the most columns for it: live columns of the
    /// same names share its name allocations.
    widest: Vec<usize>,
    /// The probes' keys; result `probe` i is `probes[i - 1]`.
    probes: Vec<TypeKey>,
    /// $3 to $7, one entry per probe (`None`: a spelling that names no type; it finds nothing).
    lookups: Vec<Option<TypeLookup>>,
}

impl CatalogQuery {
    pub fn new(contract: &[ContractTable], probes: Vec<TypeKey>) -> Self {
        // Relations in (schema, name) order, with the most columns any entry lists for them
        // (the live table's likely width).
        let mut wanted: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
        for (i, t) in contract.iter().enumerate() {
            let (width, widest) = wanted
                .entry((t.schema.as_str(), t.identifier.as_str()))
                .or_insert((t.columns.len(), i));
            if t.columns.len() > *width {
                (*width, *widest) = (t.columns.len(), i);
            }
        }
        let mut relations = Vec::with_capacity(wanted.len());
        let mut widths = Vec::with_capacity(wanted.len());
        let mut widest = Vec::with_capacity(wanted.len());
        for ((s, n), (w, i)) in wanted {
            relations.push((s.to_string(), n.to_string()));
            widths.push(w);
            widest.push(i);
        }
        // A user type is looked up by name in pg_type, in the schemas user_type_lookup lists.
        let lookups = probes.iter().map(|(s, t)| user_type_lookup(s, t)).collect();
        CatalogQuery {
            relations,
            widths,
            widest,
            probes,
            lookups,
        }
    }

    fn schema(&self, i: usize) -> impl Iterator<Item = Option<&str>> {
        self.lookups.iter().map(move |l| {
            l.as_ref()
                .and_then(|l| l.schemas.get(i))
                .map(String::as_str)
        })
    }

    /// $1 to $7 as SPI parameters, for a local read.
    fn args(&self) -> Vec<DatumWithOid<'_>> {
        let schemas: Vec<&str> = self.relations.iter().map(|r| r.0.as_str()).collect();
        let names: Vec<&str> = self.relations.iter().map(|r| r.1.as_str()).collect();
        let typnames: Vec<Option<&str>> = self
            .lookups
            .iter()
            .map(|l| l.as_ref().map(|l| l.typname.as_str()))
            .collect();
        let arrays: Vec<Option<bool>> = self
            .lookups
            .iter()
            .map(|l| l.as_ref().map(|l| l.array))
            .collect();
        vec![
            schemas.into(),
            names.into(),
            typnames.into(),
            arrays.into(),
            self.schema(0).collect::<Vec<_>>().into(),
            self.schema(1).collect::<Vec<_>>().into(),
            self.schema(2).collect::<Vec<_>>().into(),
        ]
    }

    /// The statement with $1 to $7 replaced by escaped literals: what a target runs, and what
    /// `_catalog_query()` shows.
    pub fn sql_with_literals(&self) -> Result<String, DriftError> {
        let text = |v: &mut dyn Iterator<Item = Option<&str>>| array_literal(v);
        let literals = [
            text(&mut self.relations.iter().map(|r| Some(r.0.as_str()))),
            text(&mut self.relations.iter().map(|r| Some(r.1.as_str()))),
            text(
                &mut self
                    .lookups
                    .iter()
                    .map(|l| l.as_ref().map(|l| l.typname.as_str())),
            ),
            text(
                &mut self
                    .lookups
                    .iter()
                    .map(|l| l.as_ref().map(|l| if l.array { "t" } else { "f" })),
            ),
            text(&mut self.schema(0)),
            text(&mut self.schema(1)),
            text(&mut self.schema(2)),
        ];
        substitute(CATALOG_READ, &literals)
            .map_err(|_| DriftError::Internal("the catalog statement's parameters do not match"))
    }
}

/// The catalog statement for `contract` (type spellings canonicalised first), with its inputs
/// as literals.
pub fn catalog_query_for(
    client: &SpiClient<'_>,
    contract: &[ContractTable],
) -> Result<String, DriftError> {
    let (_, probes) = canonical_types(client, contract)?;
    CatalogQuery::new(contract, probes).sql_with_literals()
}

/// Reads the live side for `contract`: one catalog query, locally or through `dblink`.
pub fn read_live(
    client: &SpiClient<'_>,
    target: &Target<'_>,
    contract: &[ContractTable],
) -> Result<LiveRead, DriftError> {
    let (mut types, probes) = canonical_types(client, contract)?;
    let query = CatalogQuery::new(contract, probes);
    let mut rows = LiveRows::new(&query, contract);
    match target {
        Target::Local => {
            // Every entry point runs with search_path = pg_catalog, pg_temp (pinned on the
            // function), so format_type qualifies every type outside pg_catalog.
            spi_rows::for_each(client, CATALOG_READ, &query.args(), RESULT_TYPES, |row| {
                rows.push(row)
            })?;
        }
        Target::Server(server) => {
            let Preflight { limits, dblink } = preflight(client, server)?;
            // Timeouts on the target's session: a locked catalog or a stuck replica ends the read
            // there (dblink waits for the target without heeding this session's own timeouts).
            let remote = format!(
                "SET search_path = pg_catalog, pg_temp; SET statement_timeout = {}; \
                 SET lock_timeout = {};\n{}",
                limits.statement_timeout_ms,
                limits.lock_timeout_ms,
                query.sql_with_literals()?
            );
            let sql = format!(
                "SELECT * FROM {}.dblink($1, $2) AS t({RESULT_COLUMNS})",
                drift_watch_core::ident::quote(&dblink)
            );
            let server = server.to_string();
            // A failed connection or remote error is the run's failure, named by target; it is
            // raised at once by the caller, so no further SPI work follows the catch.
            rows = PgTryBuilder::new(|| {
                let mut rows = LiveRows::new(&query, contract);
                spi_rows::for_each(
                    client,
                    &sql,
                    &[server.as_str().into(), remote.as_str().into()],
                    RESULT_TYPES,
                    |row| rows.push(row),
                )?;
                Ok(rows)
            })
            .catch_others(|caught| {
                let (message, detail, sqlstate) = match &caught {
                    CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => (
                        r.message().to_string(),
                        r.detail().map(str::to_string),
                        r.sql_error_code(),
                    ),
                    CaughtError::RustPanic { ereport, .. } => (
                        ereport.message().to_string(),
                        None,
                        PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
                    ),
                };
                Err(DriftError::TargetUnreachable {
                    target: server.clone(),
                    message,
                    detail,
                    sqlstate,
                })
            })
            .execute()?;
        }
    }
    let (catalog, probed, freshness) = rows.finish(client)?;
    types.extend(probed);
    Ok(LiveRead {
        catalog,
        types,
        freshness,
    })
}

/// A live column by (relation index, column index).
type ColumnAt = (u32, u32);

/// What a probe found: the probed (schema, spelling) and its resolution.
type Probed = (TypeKey, ResolvedType);

/// Accumulates result rows into the live catalog.
struct LiveRows<'q> {
    query: &'q CatalogQuery,
    /// The contract the query was made from (`query.widest` indexes it).
    contract: &'q [ContractTable],
    /// Where the next live column's name is likely found among the contract's columns of its
    /// relation: (relation, column index).
    name_hint: (usize, usize),
    /// By relation index: `None` until the catalog shows the relation exists.
    tables: Vec<Option<LiveTable>>,
    /// Built-in (oid, typmod) pairs seen, with the columns typed so, as (relation, column)
    /// indexes: spelled by `spell_builtin_types` after the read.
    builtin: FxHashMap<(u32, i32), usize>,
    /// Per entry of `builtin`: the pair, and its columns as (relation, column) indexes.
    builtin_columns: Vec<((u32, i32), Vec<ColumnAt>)>,
    /// The last pair seen and its index (a table's columns share a few types).
    last_builtin: Option<((u32, i32), usize)>,
    /// The placeholder spelling of a built-in type until `finish` (one allocation, shared).
    unspelled: Arc<str>,
    /// What the probes found on the target.
    probed: Vec<Probed>,
    /// Missing relations that exist under a name differing only in case: (schema, name).
    case_variants: Vec<(usize, (String, String))>,
    freshness: Freshness,
    /// Whether the summary row has been read (there is exactly one).
    summarised: bool,
}

impl<'q> LiveRows<'q> {
    fn new(query: &'q CatalogQuery, contract: &'q [ContractTable]) -> Self {
        Self {
            query,
            contract,
            name_hint: (usize::MAX, 0),
            tables: vec![None; query.relations.len()],
            builtin: FxHashMap::default(),
            builtin_columns: Vec::new(),
            last_builtin: None,
            unspelled: Arc::from(""),
            probed: Vec::new(),
            case_variants: Vec::new(),
            freshness: Freshness::default(),
            summarised: false,
        }
    }

    fn push(&mut self, row: &spi_rows::Row<'_>) -> Result<(), DriftError> {
        let index = |ord: Option<i32>, len: usize| {
            ord.and_then(|o| usize::try_from(o - 1).ok())
                .filter(|i| *i < len)
                .ok_or(DriftError::Internal("catalog row out of range"))
        };
        if let Some(attnum) = row.int4(col::ATTNUM) {
            // A live column.
            let rel = index(row.int4(col::RELATION), self.tables.len())?;
            let width = self.query.widths[rel];
            let at = self.tables[rel]
                .get_or_insert_with(|| LiveTable {
                    oid: 0,
                    columns: Vec::with_capacity(width + 2),
                })
                .columns
                .len();
            if let (Some(type_oid), Some(typmod), Some(name)) = (
                row.oid(col::ATTTYPID),
                row.int4(col::ATTTYPMOD),
                row.str(col::ATTNAME),
            ) {
                let type_name: Arc<str> = match row.str(col::USER_TYPE) {
                    // A user type: the target's own spelling.
                    Some(spelling) => Arc::from(spelling.as_ref()),
                    // A built-in: spelled after the read, once per (oid, typmod).
                    None => {
                        let pair = (type_oid, typmod);
                        let at_pair = match self.last_builtin {
                            Some((last, at)) if last == pair => at,
                            _ => {
                                let next = self.builtin_columns.len();
                                let at = *self.builtin.entry(pair).or_insert(next);
                                if at == next {
                                    self.builtin_columns.push((pair, Vec::new()));
                                }
                                self.last_builtin = Some((pair, at));
                                at
                            }
                        };
                        self.builtin_columns[at_pair]
                            .1
                            .push((rel as u32, at as u32));
                        self.unspelled.clone()
                    }
                };
                let name = self.shared_name(rel, at, &name);
                let table = self.tables[rel]
                    .as_mut()
                    .ok_or(DriftError::Internal("a live column of no relation"))?;
                table.columns.push(LiveColumn {
                    attnum,
                    name,
                    type_oid,
                    typmod,
                    type_name,
                });
            }
        } else if let Some(summary) = row.str(col::SUMMARY) {
            let summary = CatalogSummary::parse(&summary)
                .map_err(|_| DriftError::Internal("the catalog read's summary is malformed"))?;
            self.summarise(summary)?;
        } else {
            return Err(DriftError::Internal("a catalog row of no known shape"));
        }
        Ok(())
    }

    /// `name`, the `at`-th live column of relation `rel`, as the contract's allocation of that
    /// name when the contract lists it where expected (a live table and its documentation
    /// mostly list the same columns in the same order); a new allocation otherwise.
    fn shared_name(&mut self, rel: usize, at: usize, name: &str) -> Arc<str> {
        let columns = &self.contract[self.query.widest[rel]].columns;
        let start = if self.name_hint.0 == rel {
            self.name_hint.1
        } else {
            at
        };
        // Expected place, one further (a column dropped), or the live position.
        for j in [start, start + 1, at] {
            if let Some(c) = columns.get(j) {
                if *c.name == *name {
                    self.name_hint = (rel, j + 1);
                    return c.name.clone();
                }
            }
        }
        self.name_hint = (rel, start);
        Arc::from(name)
    }

    /// The summary row: which relations exist, case variants, probes, freshness.
    fn summarise(&mut self, summary: CatalogSummary) -> Result<(), DriftError> {
        let out_of_range = || DriftError::Internal("catalog summary out of range");
        if std::mem::replace(&mut self.summarised, true) {
            return Err(DriftError::Internal("two catalog summaries"));
        }
        let oids = summary.relation_oids.unwrap_or_default();
        if oids.len() != self.tables.len() {
            return Err(out_of_range());
        }
        for (table, oid) in self.tables.iter_mut().zip(oids) {
            if let Some(oid) = oid {
                table.get_or_insert_with(LiveTable::default).oid = oid;
            }
        }
        for (ord, schema, name) in summary.case_variants.unwrap_or_default() {
            let rel = usize::try_from(ord - 1)
                .ok()
                .filter(|i| *i < self.tables.len())
                .ok_or_else(out_of_range)?;
            self.case_variants.push((rel, (schema, name)));
        }
        let probes = summary.probes.unwrap_or_default();
        if probes.len() != self.query.probes.len() {
            return Err(out_of_range());
        }
        for (key, found) in self.query.probes.iter().zip(probes) {
            let resolved = match found {
                (Some(oid), Some(spelling)) => ResolvedType::Known {
                    oid,
                    typmod: None,
                    spelling,
                },
                _ => ResolvedType::Unknown {
                    reason: format!("type \"{}\" does not exist", key.1),
                },
            };
            self.probed.push((key.clone(), resolved));
        }
        self.freshness = Freshness {
            in_recovery: summary.in_recovery,
            replay_lag_ms: summary.replay_lag_ms,
            replay_paused: summary.replay_paused,
        };
        Ok(())
    }

    fn finish(
        mut self,
        client: &SpiClient<'_>,
    ) -> Result<(LiveCatalog, Vec<Probed>, Freshness), DriftError> {
        if !self.summarised {
            return Err(DriftError::Internal("the catalog read has no summary"));
        }
        let pairs: Vec<(u32, i32)> = self.builtin_columns.iter().map(|(p, _)| *p).collect();
        let spelled = spell_builtin_types(client, &pairs)?;
        for ((_, columns), name) in self.builtin_columns.iter().zip(spelled) {
            let Some(name) = name else {
                continue;
            };
            for &(rel, at) in columns {
                if let Some(table) = &mut self.tables[rel as usize] {
                    table.columns[at as usize].type_name = name.clone();
                }
            }
        }
        let mut catalog = LiveCatalog::with_capacity(self.tables.len());
        for (rel, variant) in self.case_variants {
            catalog
                .case_variants
                .insert(self.query.relations[rel].clone(), variant);
        }
        for (key, table) in self.query.relations.iter().zip(self.tables) {
            if let Some(mut table) = table {
                if !table.columns.is_sorted_by_key(|c| c.attnum) {
                    table.columns.sort_by_key(|c| c.attnum);
                }
                catalog.insert(key.clone(), table);
            }
        }
        Ok((catalog, self.probed, self.freshness))
    }
}

/// `format_type` of built-in (oid, typmod) pairs, in this database: one query for all of them.
/// Returns the spellings in the order of `pairs`.
fn spell_builtin_types(
    client: &SpiClient<'_>,
    pairs: &[(u32, i32)],
) -> Result<Vec<Option<Arc<str>>>, DriftError> {
    let mut out = vec![None; pairs.len()];
    if pairs.is_empty() {
        return Ok(out);
    }
    let (oids, typmods): (Vec<i64>, Vec<i32>) =
        pairs.iter().map(|(o, m)| (i64::from(*o), *m)).unzip();
    spi_rows::for_each_saved(
        client,
        "SELECT i::int4, pg_catalog.format_type(t::oid, m)::text
           FROM unnest($1::int8[], $2::int4[]) WITH ORDINALITY AS u(t, m, i)",
        &[oids.into(), typmods.into()],
        &[ty::INT4, ty::TEXT],
        |row| {
            if let (Some(i), Some(name)) = (row.int4(0), row.str(1)) {
                if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
                    *slot = Some(Arc::from(name.as_ref()));
                }
            }
            Ok(())
        },
    )?;
    Ok(out)
}
