//! drift_watch: the dbt source contract in the audit database, and `drift_diff()` against a live
//! catalog (this database, or a read-replica through a foreign server).
//!
//! The SQL functions here are thin: parsing and the diff live in `drift_watch_core` (pure Rust),
//! the contract tables in [`store`], every live-schema read in [`catalog`].

use drift_watch_core::{diff, parse_document};
use pgrx::prelude::*;

mod catalog;
mod checks;
mod error;
mod spi_rows;
mod store;

use catalog::Target;
use error::OrReport;

pgrx::pg_module_magic!();

extension_sql_file!(
    "../../sql/contract.sql",
    name = "contract_tables",
    bootstrap
);

/// Parses a type spelling with the server's own type parser (`parseTypeString`), looking only
/// at the current search_path; an unknown name gives oid 0, a syntax error raises.
#[pg_extern(stable, strict, parallel_safe)]
fn _parse_type(
    spelling: &str,
) -> TableIterator<'static, (name!(type_oid, pg_sys::Oid), name!(typmod, i32))> {
    let c = std::ffi::CString::new(spelling).unwrap_or_else(|_| {
        error!("drift_watch: type spelling contains a NUL byte");
    });
    let mut oid = pg_sys::InvalidOid;
    let mut typmod: i32 = -1;
    // SAFETY: a valid C string and out-pointers; errors are raised as Postgres ERRORs, which
    // pgrx turns into a Rust unwind.
    unsafe { pg_sys::parseTypeString(c.as_ptr(), &mut oid, &mut typmod, true) };
    TableIterator::once((oid, typmod))
}

extension_sql_file!(
    "../../sql/types.sql",
    name = "canonical_types",
    requires = [_parse_type]
);

/// Stores one dbt document (a YAML properties file or a `manifest.json`) as the contract from
/// `origin`, replacing what that origin held; returns the number of source tables it now holds.
#[pg_extern(volatile)]
fn load_contract(origin: &str, document: &str) -> i32 {
    if origin.is_empty() {
        error!("drift_watch: origin must not be empty");
    }
    let contract = parse_document(origin, document)
        .map_err(error::DriftError::from)
        .or_report();
    store::replace_origin(origin, &contract).or_report()
}

/// Removes everything loaded from `origin`; returns the number of source tables removed.
#[pg_extern(volatile)]
fn forget_contract(origin: &str) -> i32 {
    store::forget_origin(origin).or_report()
}

/// Every difference between the stored contract and the live schema of `target` (a foreign
/// server name), or of this database when `target` is NULL. Changes nothing.
#[allow(clippy::type_complexity)] // pgrx needs the row type spelled out here
#[pg_extern(volatile)]
fn drift_diff(
    target: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(source_name, String),
        name!(schema_name, String),
        name!(table_name, String),
        name!(column_name, Option<String>),
        name!(change, String),
        name!(contract_type, Option<String>),
        name!(live_type, Option<String>),
        name!(detail, Option<String>),
    ),
> {
    let target = match target {
        Some(name) => Target::Server(name),
        None => Target::Local,
    };
    let deltas = Spi::connect(|client| {
        let contract = store::read_contract(client)?;
        let live = catalog::read_live(client, &target, &contract)?;
        Ok(diff(&contract, &live.catalog, &live.types))
    })
    .or_report();
    TableIterator::new(deltas.into_iter().map(|d| {
        (
            d.source_name,
            d.schema_name,
            d.table_name,
            d.column_name,
            d.change.as_str().to_string(),
            d.contract_type,
            d.live_type,
            d.detail,
        )
    }))
}

/// The exact catalog statement `drift_diff()` runs for the stored contract (to EXPLAIN it, or to
/// run it by hand on the replica with `SET search_path = pg_catalog`).
#[pg_extern(stable)]
fn _catalog_query() -> String {
    Spi::connect(|client| {
        let contract = store::read_contract(client)?;
        Ok(catalog::catalog_query_for(client, &contract)?.sql)
    })
    .or_report()
}

/// One check run's work, inside `drift_watch.run_check`'s savepoint (see sql/checks.sql): read the
/// live schema once, compare with the contract and the baselines, record deltas, fill the outbox,
/// NOTIFY. Any error here fails the run and changes nothing else.
#[pg_extern(volatile)]
fn _record_check(run_id: i64, target: Option<&str>) {
    checks::record_check(run_id, target).or_report()
}

extension_sql_file!(
    "../../sql/checks.sql",
    name = "checks",
    requires = [
        _record_check,
        load_contract,
        forget_contract,
        "contract_tables"
    ]
);

extension_sql_file!(
    "../../sql/public_api.sql",
    name = "public_api",
    requires = [drift_diff, load_contract, forget_contract],
    finalize
);

/// Required by `cargo pgrx test`; the SQL surface is pinned by the regression suites in
/// `tests/sql`, run against real clusters by `scripts/test.sh`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
