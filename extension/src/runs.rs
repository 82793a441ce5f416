//! The state of the check runs in progress in this backend, between the three steps of
//! `drift_watch.run_check` (sql/checks.sql). The live read runs as the caller; recording runs as
//! the extension's owner. What the read found is handed from one to the other here, in backend
//! memory written only by this code: it never passes through SQL, so a caller can neither forge
//! a read nor record one for a run or target it did not read.

use std::cell::RefCell;
use std::collections::HashMap;

use drift_watch_core::ContractTable;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;

use crate::catalog::{self, LiveRead, Target};
use crate::checks;
use crate::error::{DriftError, OrReport};
use crate::store;

enum RunState {
    /// Opened by `_begin_check`, not read yet.
    Begun { target: Option<String> },
    /// Read: the contract and the live side as the caller saw them.
    Read {
        target: Option<String>,
        contract: Vec<ContractTable>,
        live: LiveRead,
    },
    /// The read failed with this error.
    Failed {
        sqlstate: PgSqlErrorCode,
        message: String,
        detail: Option<String>,
    },
}

thread_local! {
    static RUNS: RefCell<HashMap<i64, RunState>> = RefCell::new(HashMap::new());
}

/// Opens a run (lock, row) and remembers it. Runs of earlier, finished or aborted, statements of
/// this backend are forgotten: one `run_check` is one begin, read and finish.
pub fn begin(target: Option<&str>) -> Result<i64, DriftError> {
    RUNS.with(|r| r.borrow_mut().clear());
    let run = Spi::get_one_with_args::<i64>("SELECT drift_watch._open_run($1)", &[target.into()])?
        .ok_or(DriftError::Internal("no run id"))?;
    RUNS.with(|r| {
        r.borrow_mut().insert(
            run,
            RunState::Begun {
                target: target.map(str::to_string),
            },
        )
    });
    Ok(run)
}

fn not_begun(run: i64) -> ! {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("drift_watch: run {run} was not begun in this session"),
        "drift_watch",
    )
    .set_hint("Call drift_watch.run_check(target).")
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Reads the contract and the live side for `run` as the current (calling) role.
pub fn read(run: i64) {
    let target = RUNS.with(|r| match r.borrow().get(&run) {
        Some(RunState::Begun { target }) => Some(target.clone()),
        _ => None,
    });
    let Some(target) = target else { not_begun(run) };
    let keep = |state: RunState| RUNS.with(|r| r.borrow_mut().insert(run, state));
    let outcome = PgTryBuilder::new(|| {
        Spi::connect(|client| {
            let contract = store::read_contract(client)?;
            let live_target = match target.as_deref() {
                Some(server) => Target::Server(server),
                None => Target::Local,
            };
            let live = catalog::read_live(client, &live_target, &contract)?;
            Ok::<_, DriftError>((contract, live))
        })
    })
    .catch_others(|caught| {
        let (sqlstate, message, detail) = match &caught {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => (
                r.sql_error_code(),
                r.message().to_string(),
                r.detail().map(str::to_string),
            ),
            CaughtError::RustPanic { ereport, .. } => (
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                ereport.message().to_string(),
                None,
            ),
        };
        keep(RunState::Failed {
            sqlstate,
            message,
            detail,
        });
        caught.rethrow()
    })
    .execute();
    match outcome {
        Ok((contract, live)) => {
            keep(RunState::Read {
                target,
                contract,
                live,
            });
        }
        Err(e) => {
            let (sqlstate, message, detail) = e.parts();
            keep(RunState::Failed {
                sqlstate,
                message,
                detail,
            });
            e.report()
        }
    }
}

/// Whether `read` kept a result or an error for `run`.
pub fn has_read(run: i64) -> bool {
    RUNS.with(|r| {
        matches!(
            r.borrow().get(&run),
            Some(RunState::Read { .. } | RunState::Failed { .. })
        )
    })
}

/// Records what `read` kept for `run` (as the extension's owner), or raises the read's error.
pub fn record(run: i64) {
    let state = RUNS.with(|r| r.borrow_mut().remove(&run));
    match state {
        Some(RunState::Read {
            target,
            contract,
            live,
        }) => checks::record(run, target.as_deref(), &contract, live).or_report(),
        Some(RunState::Failed {
            sqlstate,
            message,
            detail,
        }) => {
            let mut report = ErrorReport::new(sqlstate, message, "drift_watch");
            if let Some(d) = detail {
                report = report.set_detail(d);
            }
            report.report(PgLogLevel::ERROR);
        }
        Some(RunState::Begun { .. }) | None => ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("drift_watch: no live read was made for run {run} in this session"),
            "drift_watch",
        )
        .report(PgLogLevel::ERROR),
    }
}
