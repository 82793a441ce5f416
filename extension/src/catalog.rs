//! The live side: the one place that reads a live schema, and where contract type spellings
//! meet the server's type parser.
//!
//! A run reads the live catalog with a single `pg_catalog` query (never `information_schema`,
//! which hides columns from roles without grants): the relations the contract names, their
//! non-dropped user columns with `format_type` spellings, and, in the same round trip, the
//! user-defined types the contract mentions. For a target the query goes through contrib's
//! `dblink` using the foreign server and the caller's user mapping, so credentials stay in
//! Postgres and the read is an ordinary, cancellable backend query on the replica.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use drift_watch_core::ident::literal;
use drift_watch_core::types::{user_type_lookup, TypeLookup};
use drift_watch_core::{
    ContractTable, LiveCatalog, LiveColumn, LiveTable, ResolvedType, TypeKey, TypeMap,
};
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

/// The target's settings (drift_watch.target_setting, or the defaults).
pub fn read_limits(client: &SpiClient<'_>, target: &str) -> Result<ReadLimits, DriftError> {
    let row = client
        .select(
            "SELECT (extract(epoch FROM s.statement_timeout) * 1000)::int8,
                    (extract(epoch FROM s.lock_timeout) * 1000)::int8
               FROM drift_watch._target_setting($1) s",
            Some(1),
            &[target.into()],
        )?
        .first()
        .get_two::<i64, i64>()?;
    Ok(ReadLimits {
        statement_timeout_ms: row.0.unwrap_or(60_000).max(1),
        lock_timeout_ms: row.1.unwrap_or(10_000).max(1),
    })
}

/// Checks that `target` names a foreign server the caller can use, before any connection.
pub fn check_target(client: &SpiClient<'_>, target: &str) -> Result<(), DriftError> {
    let row = client
        .select(
            "SELECT s.oid IS NOT NULL,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m
                             WHERE m.srvid = s.oid
                               AND (m.umuser OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                                    OR m.umuser OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                   WHERE r.rolname OPERATOR(pg_catalog.=) current_user)))
               FROM (SELECT $1::text AS name) n
               LEFT JOIN pg_catalog.pg_foreign_server s ON s.srvname = n.name",
            Some(1),
            &[target.into()],
        )?
        .first()
        .get_two::<bool, bool>()?;
    match row {
        (Some(true), Some(true)) => Ok(()),
        (Some(true), _) => Err(DriftError::NoUserMapping {
            target: target.to_string(),
            role: current_role(client)?,
        }),
        _ => Err(DriftError::UnknownTarget(target.to_string())),
    }
}

fn current_role(client: &SpiClient<'_>) -> Result<String, DriftError> {
    Ok(client
        .select("SELECT current_user::text", Some(1), &[])?
        .first()
        .get_one::<String>()?
        .unwrap_or_default())
}

fn dblink_schema(client: &SpiClient<'_>) -> Result<String, DriftError> {
    client
        .select(
            "SELECT n.nspname::text FROM pg_catalog.pg_extension e
               JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'dblink'",
            Some(1),
            &[],
        )?
        .first()
        .get_one::<String>()?
        .ok_or(DriftError::DblinkMissing)
}

/// Canonicalises every distinct contract spelling. Built-ins are answered here; the rest are
/// returned as probes `(schema, spelling)` to resolve on the live side.
fn canonical_types(
    client: &SpiClient<'_>,
    contract: &[ContractTable],
) -> Result<(TypeMap, Vec<TypeKey>), DriftError> {
    let mut uses: HashMap<&str, HashSet<&str>> = HashMap::new();
    for table in contract {
        for column in &table.columns {
            if let Some(t) = column.data_type.as_deref() {
                uses.entry(t).or_default().insert(table.schema.as_str());
            }
        }
    }
    let mut resolved = TypeMap::default();
    let mut probes = Vec::new();
    if uses.is_empty() {
        return Ok((resolved, probes));
    }
    let spellings: Vec<&str> = uses.keys().copied().collect();
    let rows = client.select(
        "SELECT spelling, type_oid, typmod, canonical, needs_target, parse_error
           FROM drift_watch._canonical_types($1)",
        None,
        &[spellings.into()],
    )?;
    for row in rows {
        let spelling: String = row.get(1)?.unwrap_or_default();
        let oid: Option<pg_sys::Oid> = row.get(2)?;
        let typmod: Option<i32> = row.get(3)?;
        let canonical: Option<String> = row.get(4)?;
        let needs_target: bool = row.get(5)?.unwrap_or(false);
        let error: Option<String> = row.get(6)?;
        for schema in &uses[spelling.as_str()] {
            let key = (schema.to_string(), spelling.clone());
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
                        oid: oid.to_u32(),
                        typmod,
                        spelling: canonical.clone(),
                    },
                );
            }
        }
    }
    probes.sort(); // a deterministic statement, whatever the hash order
    Ok((resolved, probes))
}

fn array_literal<'a>(values: impl Iterator<Item = &'a str>, cast: &str) -> String {
    let items: Vec<String> = values.map(literal).collect();
    format!("ARRAY[{}]::{cast}[]", items.join(","))
}

/// The catalog query for one run, as text so the same statement runs locally and remotely, and
/// the lists its result rows point into.
pub struct CatalogQuery {
    pub sql: String,
    /// Row kind 0 carries an index (1-based) into this list.
    relations: Vec<(String, String)>,
    /// Row kind 2 carries an index (1-based) into the probes list.
    probes: Vec<TypeKey>,
}

/// Result rows, all `(kind int4, ord int4, attnum int4, typid int8, typmod int4, name text,
/// spelling text, reloid int8)`:
/// * kind 0 — a column: relation `ord`, `attnum`, `typid`, `typmod`, `name` = attname, and
///   `spelling` = `format_type(atttypid, atttypmod)` for user types only. Built-in types have the
///   same oids and spellings on every server, so they are formatted once per distinct
///   (oid, typmod) in the audit database instead of once per column on the target;
/// * kind 1 — a relation that exists: `ord`, and `reloid` = its `pg_class.oid`;
/// * kind 4 — one row: the target's replication state: `attnum` = `pg_is_in_recovery()`, `typid`
///   = how far replay is behind what was received, in ms (0 when caught up; NULL on a primary),
///   `typmod` = `pg_is_wal_replay_paused()`;
/// * kind 3 — a relation that does not exist as named, but does under a name differing only in
///   case (what quoting rules get wrong): `ord`, `name` = its relname, `spelling` = its schema;
/// * kind 2 — a user type the contract names: probe `ord`, `typid` = its oid on the target and
///   `spelling` = its `format_type`, or NULLs when the target has no such type.
///
/// Types are compared by oid and typmod; `format_type` is only for display. It must run with `search_path = pg_catalog`: `format_type` then qualifies every type outside
/// pg_catalog, so the spellings shown do not depend on the caller's path.
/// `FirstGenbkiObjectId`: oids below it are hand-assigned in PostgreSQL's catalog data and mean
/// the same type on every server of every major. Oids from here up to 16383 are assigned when a
/// server is built or initialised (`information_schema.sql_identifier` is 13117 on 13, 13226 on
/// 15, 13163 on 18: found by tests/majors.sh), so they are resolved by name, like user types.
const FIRST_UNFIXED_OID: u32 = 10000;

pub const RESULT_COLUMNS: &str =
    "kind int4, ord int4, attnum int4, typid int8, typmod int4, name text, spelling text, reloid int8";
/// The types of `RESULT_COLUMNS`, as `spi_rows` checks them.
const RESULT_TYPES: &[pgrx::pg_sys::Oid] = &[
    ty::INT4,
    ty::INT4,
    ty::INT4,
    ty::INT8,
    ty::INT4,
    ty::TEXT,
    ty::TEXT,
    ty::INT8,
];

pub fn catalog_query(contract: &[ContractTable], probes: Vec<TypeKey>) -> CatalogQuery {
    let relations: Vec<(String, String)> = contract
        .iter()
        .map(|t| (t.schema.clone(), t.identifier.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let schemas = array_literal(relations.iter().map(|r| r.0.as_str()), "name");
    let names = array_literal(relations.iter().map(|r| r.1.as_str()), "name");
    let mut sql = format!(
        "WITH want AS MATERIALIZED ( \
           SELECT * FROM unnest({schemas}, {names}) WITH ORDINALITY AS w(nsp, rel, ord)), \
         rel AS MATERIALIZED ( \
           SELECT w.ord, c.oid \
             FROM want w \
             JOIN pg_namespace n ON n.nspname = w.nsp \
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel \
                            AND c.relkind IN ('r', 'p', 'v', 'm', 'f')), \
         missing AS MATERIALIZED ( \
           SELECT * FROM want w WHERE NOT EXISTS (SELECT 1 FROM rel r WHERE r.ord = w.ord)) \
         SELECT 1, r.ord::int4, NULL, NULL, NULL, NULL, NULL, r.oid::int8 FROM rel r \
         UNION ALL \
         SELECT 4, NULL::int4, pg_is_in_recovery()::int4, \
                CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                     WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
                     ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::int8 END, \
                CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused()::int4 END, \
                NULL::text, NULL::text, NULL::int8 \
         UNION ALL \
         SELECT 3, w.ord::int4, NULL::int4, NULL::int8, NULL::int4, c.relname::text, n.nspname::text, NULL::int8 \
           FROM missing w \
           JOIN pg_namespace n ON lower(n.nspname) = lower(w.nsp) \
           JOIN pg_class c ON c.relnamespace = n.oid AND lower(c.relname) = lower(w.rel) \
                          AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
          WHERE EXISTS (SELECT 1 FROM missing) \
         UNION ALL \
         SELECT 0, r.ord::int4, a.attnum::int4, a.atttypid::int8, a.atttypmod, a.attname::text, \
                CASE WHEN a.atttypid >= {FIRST_UNFIXED_OID} THEN format_type(a.atttypid, a.atttypmod) END, \
                NULL \
           FROM rel r \
           JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped"
    );
    if !probes.is_empty() {
        // A user type is looked up by name in pg_type, in the schemas user_type_lookup lists:
        // unlike to_regtype this needs no USAGE on the application's schemas.
        let lookups: Vec<Option<TypeLookup>> =
            probes.iter().map(|(s, t)| user_type_lookup(s, t)).collect();
        let column = |f: &dyn Fn(&TypeLookup) -> Option<String>| {
            let items: Vec<String> = lookups
                .iter()
                .map(|l| {
                    l.as_ref()
                        .and_then(f)
                        .map_or("NULL".to_string(), |v| literal(&v))
                })
                .collect();
            format!("ARRAY[{}]::text[]", items.join(","))
        };
        sql.push_str(&format!(
            " UNION ALL \
             SELECT 2, p.ord::int4, NULL, f.oid::int8, NULL, NULL, format_type(f.oid, NULL), NULL \
               FROM unnest({}, {}, {}, {}, {}) WITH ORDINALITY AS p(typname, arr, s1, s2, s3, ord) \
               LEFT JOIN LATERAL ( \
                 SELECT CASE WHEN p.arr = 'true' THEN t.typarray ELSE t.oid END AS oid \
                   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                  WHERE t.typname = p.typname AND n.nspname IN (p.s1, p.s2, p.s3) \
                  ORDER BY array_position(ARRAY[p.s1, p.s2, p.s3], n.nspname::text) \
                  LIMIT 1) f ON true",
            column(&|l| Some(l.typname.clone())),
            column(&|l| Some(l.array.to_string())),
            column(&|l| l.schemas.first().cloned()),
            column(&|l| l.schemas.get(1).cloned()),
            column(&|l| l.schemas.get(2).cloned()),
        ));
    }
    CatalogQuery {
        sql,
        relations,
        probes,
    }
}

/// The catalog statement for `contract` (type spellings canonicalised first).
pub fn catalog_query_for(
    client: &SpiClient<'_>,
    contract: &[ContractTable],
) -> Result<CatalogQuery, DriftError> {
    let (_, probes) = canonical_types(client, contract)?;
    Ok(catalog_query(contract, probes))
}

/// Reads the live side for `contract`: one catalog query, locally or through `dblink`.
pub fn read_live(
    client: &SpiClient<'_>,
    target: &Target<'_>,
    contract: &[ContractTable],
) -> Result<LiveRead, DriftError> {
    let (mut types, probes) = canonical_types(client, contract)?;
    let query = catalog_query(contract, probes);
    let rows = match target {
        Target::Local => {
            // Every entry point runs with search_path = pg_catalog, pg_temp (pinned on the
            // function), so format_type qualifies every type outside pg_catalog.
            let mut rows = LiveRows::new(&query);
            spi_rows::for_each(client, &query.sql, &[], RESULT_TYPES, |row| rows.push(row))?;
            rows
        }
        Target::Server(server) => {
            check_target(client, server)?;
            let limits = read_limits(client, server)?;
            let dblink = dblink_schema(client)?;
            // dblink(name, ...) would use a connection of that name this session opened with
            // dblink_connect instead of the foreign server: refuse to read through one.
            let preempted = client
                .select(
                    "SELECT drift_watch._dblink_connection_open($1)",
                    Some(1),
                    &[(*server).into()],
                )?
                .first()
                .get_one::<bool>()?
                .unwrap_or(false);
            if preempted {
                return Err(DriftError::ConnectionNameTaken(server.to_string()));
            }
            // Timeouts on the target's session: a locked catalog or a stuck replica ends the read
            // there (dblink waits for the target without heeding this session's own timeouts).
            let remote = format!(
                "SET search_path = pg_catalog, pg_temp; SET statement_timeout = {}; \
                 SET lock_timeout = {}; {}",
                limits.statement_timeout_ms, limits.lock_timeout_ms, query.sql
            );
            let sql = format!(
                "SELECT * FROM {}.dblink($1, $2) AS t({RESULT_COLUMNS})",
                drift_watch_core::ident::quote(&dblink)
            );
            let server = server.to_string();
            // A failed connection or remote error is the run's failure, named by target; it is
            // raised at once by the caller, so no further SPI work follows the catch.
            PgTryBuilder::new(|| {
                let mut rows = LiveRows::new(&query);
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
            .execute()?
        }
    };
    let (catalog, probed, freshness) = rows.finish(client)?;
    types.extend(probed);
    Ok(LiveRead {
        catalog,
        types,
        freshness,
    })
}

/// Accumulates result rows into the live catalog.
struct LiveRows<'q> {
    query: &'q CatalogQuery,
    /// By relation index: `None` until the catalog shows the relation exists.
    tables: Vec<Option<LiveTable>>,
    /// Built-in (oid, typmod) pairs seen; spelled by `spell_builtin_types` after the read.
    builtin: HashMap<(u32, i32), Arc<str>>,
    probed: HashMap<TypeKey, ResolvedType>,
    /// Missing relations that exist under a name differing only in case: (schema, name).
    case_variants: Vec<(usize, (String, String))>,
    freshness: Freshness,
}

impl<'q> LiveRows<'q> {
    fn new(query: &'q CatalogQuery) -> Self {
        Self {
            query,
            tables: vec![None; query.relations.len()],
            builtin: HashMap::new(),
            probed: HashMap::new(),
            case_variants: Vec::new(),
            freshness: Freshness::default(),
        }
    }

    fn push(&mut self, row: &spi_rows::Row<'_>) -> Result<(), DriftError> {
        let index = |ord: Option<i32>, len: usize| {
            ord.and_then(|o| usize::try_from(o - 1).ok())
                .filter(|i| *i < len)
                .ok_or(DriftError::Internal("catalog row out of range"))
        };
        match row.int4(0) {
            Some(1) => {
                let rel = index(row.int4(1), self.tables.len())?;
                let table = self.tables[rel].get_or_insert_with(LiveTable::default);
                table.oid = row.int8(7).unwrap_or_default() as u32;
            }
            Some(0) => {
                let rel = index(row.int4(1), self.tables.len())?;
                let table = self.tables[rel].get_or_insert_with(LiveTable::default);
                if let (Some(attnum), Some(typid), Some(typmod), Some(name)) =
                    (row.int4(2), row.int8(3), row.int4(4), row.text(5))
                {
                    let type_oid = typid as u32;
                    let type_name = match row.text(6) {
                        // A user type: the target's own spelling.
                        Some(spelling) => Arc::from(spelling),
                        // A built-in: spelled after the read, once per (oid, typmod).
                        None => self.builtin.entry((type_oid, typmod)).or_default().clone(),
                    };
                    table.columns.push(LiveColumn {
                        attnum,
                        name,
                        type_oid,
                        typmod,
                        type_name,
                    });
                }
            }
            Some(2) => {
                let key = self.query.probes[index(row.int4(1), self.query.probes.len())?].clone();
                let resolved = match (row.int8(3), row.text(6)) {
                    (Some(oid), Some(spelling)) => ResolvedType::Known {
                        oid: oid as u32,
                        typmod: None,
                        spelling,
                    },
                    _ => ResolvedType::Unknown {
                        reason: format!("type \"{}\" does not exist", key.1),
                    },
                };
                self.probed.insert(key, resolved);
            }
            Some(4) => {
                self.freshness = Freshness {
                    in_recovery: row.int4(2).map(|v| v != 0),
                    replay_lag_ms: row.int8(3),
                    replay_paused: row.int4(4).map(|v| v != 0),
                };
            }
            Some(3) => {
                let rel = index(row.int4(1), self.tables.len())?;
                if let (Some(name), Some(schema)) = (row.text(5), row.text(6)) {
                    self.case_variants.push((rel, (schema, name)));
                }
            }
            _ => return Err(DriftError::Internal("unexpected catalog row kind")),
        }
        Ok(())
    }

    fn finish(
        self,
        client: &SpiClient<'_>,
    ) -> Result<(LiveCatalog, HashMap<TypeKey, ResolvedType>, Freshness), DriftError> {
        let spelled = spell_builtin_types(client, self.builtin.keys())?;
        let mut catalog = LiveCatalog::with_capacity(self.tables.len());
        for (rel, variant) in self.case_variants {
            catalog
                .case_variants
                .insert(self.query.relations[rel].clone(), variant);
        }
        for (key, table) in self.query.relations.iter().zip(self.tables) {
            if let Some(mut table) = table {
                for column in &mut table.columns {
                    if column.type_name.is_empty() {
                        if let Some(name) = spelled.get(&(column.type_oid, column.typmod)) {
                            column.type_name = name.clone();
                        }
                    }
                }
                table.columns.sort_by_key(|c| c.attnum);
                catalog.insert(key.clone(), table);
            }
        }
        Ok((catalog, self.probed, self.freshness))
    }
}

/// `format_type` of built-in (oid, typmod) pairs, in this database: one query for all of them.
fn spell_builtin_types<'a>(
    client: &SpiClient<'_>,
    pairs: impl Iterator<Item = &'a (u32, i32)>,
) -> Result<HashMap<(u32, i32), Arc<str>>, DriftError> {
    let (oids, typmods): (Vec<i64>, Vec<i32>) = pairs.map(|(o, m)| (i64::from(*o), *m)).unzip();
    let mut out = HashMap::with_capacity(oids.len());
    if oids.is_empty() {
        return Ok(out);
    }
    spi_rows::for_each(
        client,
        "SELECT t::int8, m, pg_catalog.format_type(t::oid, m)::text
           FROM unnest($1::int8[], $2::int4[]) AS u(t, m)",
        &[oids.into(), typmods.into()],
        &[ty::INT8, ty::INT4, ty::TEXT],
        |row| {
            if let (Some(t), Some(m), Some(name)) = (row.int8(0), row.int4(1), row.text(2)) {
                out.insert((t as u32, m), Arc::from(name));
            }
            Ok(())
        },
    )?;
    Ok(out)
}
