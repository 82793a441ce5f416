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
    /// The last read failed with this error (`run_check` may try again).
    Failed {
        target: Option<String>,
        sqlstate: PgSqlErrorCode,
        message: String,
        detail: Option<String>,
    },
}

struct Run {
    state: RunState,
    /// Reads made for this run.
    attempts: i32,
}

thread_local! {
    static RUNS: RefCell<HashMap<i64, Run>> = RefCell::new(HashMap::new());
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
            Run {
                state: RunState::Begun {
                    target: target.map(str::to_string),
                },
                attempts: 0,
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

/// Reads the contract and the live side for `run` as the current (calling) role; after a failed
/// or doubtful read, again (a retry within the run): the last read is the one recorded.
pub fn read(run: i64) {
    let target = RUNS.with(|r| {
        let mut runs = r.borrow_mut();
        let entry = runs.get_mut(&run)?;
        // Begun, or read before (a retry after a failed read, or a second look at a replica
        // that seemed behind): read (again).
        let target = match &entry.state {
            RunState::Begun { target }
            | RunState::Failed { target, .. }
            | RunState::Read { target, .. } => target.clone(),
        };
        entry.attempts += 1;
        Some(target)
    });
    let Some(target) = target else { not_begun(run) };
    let keep = |state: RunState| {
        RUNS.with(|r| {
            if let Some(entry) = r.borrow_mut().get_mut(&run) {
                entry.state = state;
            }
        })
    };
    let outcome = PgTryBuilder::new(|| {
        Spi::connect(|client| {
            let contract = store::read_contract(client, target.as_deref().unwrap_or(""))?;
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
            target: target.clone(),
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
                target: target.clone(),
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
            r.borrow().get(&run).map(|e| &e.state),
            Some(RunState::Read { .. } | RunState::Failed { .. })
        )
    })
}

/// Records what `read` kept for `run` (as the extension's owner), or raises the read's error.
pub fn record(run: i64) {
    let state = RUNS.with(|r| r.borrow_mut().remove(&run)).map(|e| e.state);
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
            ..
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

/// Reads made for `run`, and the target's replication state when a read succeeded.
pub fn info(run: i64) -> (i32, Option<bool>, Option<i64>, Option<bool>) {
    RUNS.with(|r| match r.borrow().get(&run) {
        Some(Run {
            state: RunState::Read { live, .. },
            attempts,
        }) => (
            *attempts,
            live.freshness.in_recovery,
            live.freshness.replay_lag_ms,
            live.freshness.replay_paused,
        ),
        Some(Run { attempts, .. }) => (*attempts, None, None, None),
        None => (0, None, None, None),
    })
}
