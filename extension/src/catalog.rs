//! The live side: the one place that reads a live schema, and where contract type spellings
//! meet the server's type parser.
//!
//! A run reads the live catalog with a single `pg_catalog` query (never `information_schema`,
//! which hides columns from roles without grants): the relations the contract names, their
//! non-dropped user columns with `format_type` spellings, and, in the same round trip, the
//! user-defined types the contract mentions. For a target the query goes through contrib's
//! `dblink` using the foreign server and the caller's user mapping, so credentials stay in
//! Postgres and the read is an ordinary, cancellable backend query on the replica.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use drift_watch_core::ident::literal;
use drift_watch_core::types::{user_type_lookup, TypeLookup};
use drift_watch_core::{ContractTable, LiveCatalog, LiveColumn, ResolvedType, TypeKey};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::error::DriftError;

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
    pub types: HashMap<TypeKey, ResolvedType>,
}

/// Checks that `target` names a foreign server the caller can use, before any connection.
pub fn check_target(client: &SpiClient<'_>, target: &str) -> Result<(), DriftError> {
    let row = client
        .select(
            "SELECT s.oid IS NOT NULL,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m
                             WHERE m.srvid = s.oid
                               AND (m.umuser = 0 OR m.umuser = (SELECT oid FROM pg_catalog.pg_roles
                                                                  WHERE rolname = current_user)))
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
) -> Result<(HashMap<TypeKey, ResolvedType>, Vec<TypeKey>), DriftError> {
    let mut uses: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for table in contract {
        for column in &table.columns {
            if let Some(t) = column.data_type.as_deref() {
                uses.entry(t).or_default().insert(table.schema.as_str());
            }
        }
    }
    let mut resolved = HashMap::new();
    let mut probes = Vec::new();
    if uses.is_empty() {
        return Ok((resolved, probes));
    }
    let spellings: Vec<&str> = uses.keys().copied().collect();
    let rows = client.select(
        "SELECT spelling, base_type, full_type, needs_target, parse_error
           FROM drift_watch._canonical_types($1)",
        None,
        &[spellings.into()],
    )?;
    for row in rows {
        let spelling: String = row.get(1)?.unwrap_or_default();
        let base: Option<String> = row.get(2)?;
        let full: Option<String> = row.get(3)?;
        let needs_target: bool = row.get(4)?.unwrap_or(false);
        let error: Option<String> = row.get(5)?;
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
            } else if let Some(base) = &base {
                resolved.insert(
                    key,
                    ResolvedType::Known {
                        base: base.clone(),
                        full: full.clone(),
                    },
                );
            }
        }
    }
    Ok((resolved, probes))
}

fn array_literal<'a>(values: impl Iterator<Item = &'a str>, cast: &str) -> String {
    let items: Vec<String> = values.map(literal).collect();
    format!("ARRAY[{}]::{cast}[]", items.join(","))
}

/// The single catalog query, as text, so that the same statement runs locally and remotely.
/// It must run with `search_path = pg_catalog`: `format_type` then qualifies every type outside
/// pg_catalog, so spellings compare the same way whatever the caller's path is.
pub fn catalog_query(contract: &[ContractTable], probes: &[TypeKey]) -> String {
    let mut relations: BTreeSet<(&str, &str)> = BTreeSet::new();
    for t in contract {
        relations.insert((t.schema.as_str(), t.identifier.as_str()));
    }
    let schemas = array_literal(relations.iter().map(|r| r.0), "name");
    let names = array_literal(relations.iter().map(|r| r.1), "name");
    let mut sql = format!(
        "SELECT 'c'::text AS kind, n.nspname::text AS a, c.relname::text AS b, a.attname::text AS c, \
                a.attnum::int4 AS d, format_type(a.atttypid, NULL) AS e, \
                format_type(a.atttypid, a.atttypmod) AS f \
           FROM unnest({schemas}, {names}) AS w(nsp, rel) \
           JOIN pg_namespace n ON n.nspname = w.nsp \
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel \
                          AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
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
             SELECT 't', p.nsp, p.spelling, NULL, NULL, \
                    (SELECT format_type(CASE WHEN p.arr = 'true' THEN t.typarray ELSE t.oid END, NULL) \
                       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                      WHERE t.typname = p.typname AND n.nspname IN (p.s1, p.s2, p.s3) \
                      ORDER BY array_position(ARRAY[p.s1, p.s2, p.s3], n.nspname::text) \
                      LIMIT 1), \
                    NULL \
               FROM unnest({}, {}, {}, {}, {}, {}, {}) AS p(nsp, spelling, typname, arr, s1, s2, s3)",
            array_literal(probes.iter().map(|p| p.0.as_str()), "text"),
            array_literal(probes.iter().map(|p| p.1.as_str()), "text"),
            column(&|l| Some(l.typname.clone())),
            column(&|l| Some(l.array.to_string())),
            column(&|l| l.schemas.first().cloned()),
            column(&|l| l.schemas.get(1).cloned()),
            column(&|l| l.schemas.get(2).cloned()),
        ));
    }
    sql
}

/// Reads the live side for `contract`: one catalog query, locally or through `dblink`.
pub fn read_live(
    client: &SpiClient<'_>,
    target: &Target<'_>,
    contract: &[ContractTable],
) -> Result<LiveRead, DriftError> {
    let (mut types, probes) = canonical_types(client, contract)?;
    let query = catalog_query(contract, &probes);
    let columns = "kind text, a text, b text, c text, d int4, e text, f text";
    let rows: Vec<Row> = match target {
        Target::Local => {
            let saved = client
                .select(
                    "SELECT pg_catalog.current_setting('search_path')",
                    Some(1),
                    &[],
                )?
                .first()
                .get_one::<String>()?
                .unwrap_or_default();
            client.select(
                "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)",
                None,
                &[],
            )?;
            let rows = collect_rows(client.select(query.as_str(), None, &[])?)?;
            client.select(
                "SELECT pg_catalog.set_config('search_path', $1, true)",
                None,
                &[saved.into()],
            )?;
            rows
        }
        Target::Server(server) => {
            check_target(client, server)?;
            let dblink = dblink_schema(client)?;
            let remote = format!("SET search_path = pg_catalog; {query}");
            let sql = format!(
                "SELECT * FROM {}.dblink($1, $2) AS t({columns})",
                drift_watch_core::ident::quote(&dblink)
            );
            let server = server.to_string();
            // A failed connection or remote error is the run's failure, named by target; it is
            // raised at once by the caller, so no further SPI work follows the catch.
            PgTryBuilder::new(|| {
                client
                    .select(
                        sql.as_str(),
                        None,
                        &[server.as_str().into(), remote.as_str().into()],
                    )
                    .map_err(DriftError::from)
                    .and_then(collect_rows)
            })
            .catch_others(|caught| {
                let (message, detail) = match &caught {
                    CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                        (r.message().to_string(), r.detail().map(str::to_string))
                    }
                    CaughtError::RustPanic { ereport, .. } => (ereport.message().to_string(), None),
                };
                Err(DriftError::TargetUnreachable {
                    target: server.clone(),
                    message,
                    detail,
                })
            })
            .execute()?
        }
    };

    let mut catalog = LiveCatalog::new();
    for row in rows {
        match row.kind.as_str() {
            "c" => {
                let table = catalog.entry((row.a, row.b)).or_default();
                if let (Some(name), Some(attnum), Some(base), Some(full)) =
                    (row.c, row.d, row.e, row.f)
                {
                    table.columns.push(LiveColumn {
                        attnum,
                        name,
                        base_type: base,
                        full_type: full,
                    });
                }
            }
            _ => {
                let resolved = match row.e {
                    Some(base) => ResolvedType::Known { base, full: None },
                    None => ResolvedType::Unknown {
                        reason: format!("type \"{}\" does not exist", row.b),
                    },
                };
                types.insert((row.a, row.b), resolved);
            }
        }
    }
    for table in catalog.values_mut() {
        table.columns.sort_by_key(|c| c.attnum);
    }
    Ok(LiveRead { catalog, types })
}

struct Row {
    kind: String,
    a: String,
    b: String,
    c: Option<String>,
    d: Option<i32>,
    e: Option<String>,
    f: Option<String>,
}

fn collect_rows(table: pgrx::spi::SpiTupleTable<'_>) -> Result<Vec<Row>, DriftError> {
    let mut out = Vec::with_capacity(table.len());
    for r in table {
        out.push(Row {
            kind: r.get(1)?.unwrap_or_default(),
            a: r.get(2)?.unwrap_or_default(),
            b: r.get(3)?.unwrap_or_default(),
            c: r.get(4)?,
            d: r.get(5)?,
            e: r.get(6)?,
            f: r.get(7)?,
        });
    }
    Ok(out)
}
