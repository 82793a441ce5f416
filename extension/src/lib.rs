//! drift_watch: the dbt source contract in the audit database, and `drift_diff()` against a live
//! catalog (this database, or a read-replica through a foreign server).
//!
//! The SQL functions here are thin: parsing and the diff live in `drift_watch_core` (pure Rust),
//! the contract tables in [`store`], every live-schema read in [`catalog`].

use drift_watch_core::{column_references, parse_document_with, preview, ParseOptions};
use pgrx::prelude::*;

mod catalog;
mod checks;
mod error;
mod runs;
mod spi_rows;
mod store;

use catalog::Target;
use error::OrReport;

pgrx::pg_module_magic!();

/// Loaded into a backend: never capture Rust backtraces. pgrx appends a captured backtrace to an
/// error's DETAIL, and a postmaster often inherits `RUST_BACKTRACE=1`; error text is stored in
/// `drift_watch.runs` and can reach an Asana task, so it must not carry one.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY (edition 2021: safe fn): a backend is single-threaded when it loads the library.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
}

extension_sql_file!(
    "../../sql/contract.sql",
    name = "contract_tables",
    bootstrap
);

/// Parses a type spelling with the server's own type parser (`parseTypeString`), looking only
/// at the current search_path; an unknown name gives oid 0, a syntax error raises.
#[pg_extern(stable, strict, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
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
/// SECURITY DEFINER: a loader (e.g. the dbt project's CI login) needs EXECUTE only.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn load_contract(origin: &str, document: &str) -> i32 {
    if origin.is_empty() {
        error!("drift_watch: origin must not be empty");
    }
    // The meta key naming owners: `SET drift_watch.owner_meta_key = 'team'` (or ALTER DATABASE /
    // ROLE ... SET), `owner` by default.
    let owner_key = Spi::get_one::<String>(
        "SELECT NULLIF(current_setting('drift_watch.owner_meta_key', true), '')",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| "owner".into());
    let options = ParseOptions { owner_key };
    let contract = parse_document_with(origin, document, &options)
        .map_err(error::DriftError::from)
        .or_report();
    store::replace_origin(origin, &contract).or_report()
}

/// Removes everything loaded from `origin`; returns the number of source tables removed.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn forget_contract(origin: &str) -> i32 {
    drift_watch_core::check_origin(origin)
        .map_err(error::DriftError::from)
        .or_report();
    store::forget_origin(origin).or_report()
}

/// Every difference between the stored contract and the live schema of `target` (a foreign
/// server name), or of this database when `target` is NULL. Changes nothing.
/// SECURITY INVOKER: the live side is read through the caller's own user mapping.
#[allow(clippy::type_complexity)] // pgrx needs the row type spelled out here
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
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
    let key = match &target {
        Target::Server(name) => *name,
        Target::Local => "",
    };
    let deltas = Spi::connect(|client| {
        let contract = store::read_contract(client, key)?;
        let live = catalog::read_live(client, &target, &contract)?;
        // As a check would classify it now where there is a baseline; a plain diff elsewhere.
        let baselines = checks::read_baselines(client, key, &contract, &live.catalog)?;
        Ok(preview(&contract, &live.catalog, &live.types, &baselines))
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
#[search_path(pg_catalog, pg_temp)]
fn _catalog_query() -> String {
    Spi::connect(|client| {
        let contract = store::read_contract(client, "")?;
        catalog::catalog_query_for(client, &contract)
    })
    .or_report()
}

/// Step 1 of `drift_watch.run_check` (see sql/checks.sql): takes the target's run lock and opens
/// the run, as the extension's owner. The run is remembered in this backend, so only a read made
/// here, for this target, can be recorded for it.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _begin_check(target: Option<&str>) -> i64 {
    runs::begin(target).or_report()
}

/// Step 2: reads the contract and the live schema as the CALLER (its user mapping, its
/// privileges), and keeps the result, or the error, in this backend for step 3. Raises the read's
/// error after keeping it.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn _read_check(run: i64) {
    runs::read(run)
}

/// Step 3, inside `drift_watch._finish_check` (SECURITY DEFINER, with its savepoint): records
/// what step 2 read: baselines, deltas, outbox, NOTIFY; or raises the read's error, which
/// `_finish_check` records as the run's failure. Executable by the owner only.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _record_read(run: i64) {
    runs::record(run)
}

/// What step 2's reads saw of the target: how many reads were made, and its replication state
/// (NULLs when no read succeeded). Owner only; `_finish_check` records it.
#[allow(clippy::type_complexity)] // pgrx needs the row type spelled out here
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _read_info(
    run: i64,
) -> TableIterator<
    'static,
    (
        name!(attempts, i32),
        name!(in_recovery, Option<bool>),
        name!(replay_lag_ms, Option<i64>),
        name!(replay_paused, Option<bool>),
    ),
> {
    TableIterator::once(runs::info(run))
}

/// Whether step 2 kept a read (or its error) for `run` in this backend. Owner only.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _has_read(run: i64) -> bool {
    runs::has_read(run)
}

/// Where `code` reads `column_name`: lines naming it, and lines reading every column (`select *`,
/// `t.*`, `star()`). See `drift_watch_core::lineage::column_references`.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _column_refs(
    code: Option<&str>,
    column_name: Option<&str>,
) -> TableIterator<'static, (name!(lines, Vec<i32>), name!(star_lines, Vec<i32>))> {
    let (Some(code), Some(column)) = (code, column_name) else {
        return TableIterator::new(std::iter::once((Vec::new(), Vec::new())));
    };
    let refs = column_references(code, column);
    let as_i32 = |v: Vec<u32>| v.into_iter().map(|l| l as i32).collect::<Vec<i32>>();
    TableIterator::new(std::iter::once((
        as_i32(refs.lines),
        as_i32(refs.star_lines),
    )))
}

extension_sql_file!(
    "../../sql/checks.sql",
    name = "checks",
    requires = [
        _begin_check,
        _read_check,
        _record_read,
        _has_read,
        _read_info,
        _column_refs,
        drift_diff,
        _catalog_query,
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
