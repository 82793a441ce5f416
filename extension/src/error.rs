//! One error type for the extension, turned into a Postgres ERROR with a specific SQLSTATE once,
//! at the SQL boundary.

use drift_watch_core::ContractError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiError;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("drift_watch: {0}")]
    Contract(#[from] ContractError),

    #[error(
        "drift_watch: source table '{source_name}.{table_name}' in origin '{origin}' is already \
         defined by origin '{other_origin}'"
    )]
    DuplicateTable {
        origin: String,
        other_origin: String,
        source_name: String,
        table_name: String,
    },

    #[error("drift_watch: unknown target \"{0}\": there is no foreign server of that name")]
    UnknownTarget(String),

    #[error("drift_watch: no user mapping for role \"{role}\" on foreign server \"{target}\"")]
    NoUserMapping { target: String, role: String },

    #[error("drift_watch: could not read the live schema of target \"{target}\": {message}")]
    TargetUnreachable {
        target: String,
        message: String,
        detail: Option<String>,
        /// The SQLSTATE dblink raised: the target's own (e.g. 55P03, 57014, 40001), or 08001
        /// when no connection could be made.
        sqlstate: PgSqlErrorCode,
    },

    #[error(
        "drift_watch: this session has a dblink connection named \"{0}\"; the live read of \
         target \"{0}\" will not go through it"
    )]
    ConnectionNameTaken(String),

    #[error("drift_watch: extension dblink is not installed in this database")]
    DblinkMissing,

    #[error("drift_watch: internal SPI error: {0}")]
    Spi(#[from] SpiError),

    #[error("drift_watch: internal error: {0}")]
    Internal(&'static str),
}

impl DriftError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            DriftError::Contract(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            DriftError::DuplicateTable { .. } => ERRCODE_UNIQUE_VIOLATION,
            DriftError::UnknownTarget(_) => ERRCODE_UNDEFINED_OBJECT,
            DriftError::NoUserMapping { .. } => ERRCODE_UNDEFINED_OBJECT,
            DriftError::TargetUnreachable { sqlstate, .. } => *sqlstate,
            DriftError::ConnectionNameTaken(_) => ERRCODE_DUPLICATE_OBJECT,
            DriftError::DblinkMissing => ERRCODE_UNDEFINED_FUNCTION,
            DriftError::Spi(_) | DriftError::Internal(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            DriftError::Contract(_) => Some("The stored contract is unchanged.".into()),
            DriftError::DuplicateTable { other_origin, .. } => Some(format!(
                "Each dbt source table may be defined once. Remove it from one of the files, or \
                 call forget_contract('{other_origin}') if that file no longer exists."
            )),
            DriftError::UnknownTarget(_) => Some(
                "Create it with CREATE SERVER <name> FOREIGN DATA WRAPPER postgres_fdw (or \
                 dblink_fdw) OPTIONS (host '...', port '...', dbname '...'), or call \
                 drift_diff() with no argument to read this database."
                    .into(),
            ),
            DriftError::NoUserMapping { target, .. } => Some(format!(
                "CREATE USER MAPPING FOR CURRENT_USER SERVER {target} OPTIONS (user '...', \
                 password '...');"
            )),
            DriftError::TargetUnreachable { .. } => Some(
                "Nothing was compared: a target that cannot be read is an error, never \
                 \"no drift\"."
                    .into(),
            ),
            DriftError::ConnectionNameTaken(name) => Some(format!(
                "Close it with SELECT dblink_disconnect('{name}'); connections drift_watch uses \
                 are made from the foreign server and the caller's user mapping."
            )),
            DriftError::DblinkMissing => Some("CREATE EXTENSION dblink;".into()),
            DriftError::Spi(_) | DriftError::Internal(_) => None,
        }
    }

    /// SQLSTATE, message and detail, as `report` raises them.
    pub fn parts(&self) -> (PgSqlErrorCode, String, Option<String>) {
        let detail = match self {
            DriftError::TargetUnreachable { detail, .. } => detail.clone(),
            _ => None,
        };
        (self.sqlstate(), self.to_string(), detail)
    }

    /// Raises this error as a Postgres ERROR. Never returns.
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "drift_watch");
        if let DriftError::TargetUnreachable {
            detail: Some(d), ..
        } = &self
        {
            report = report.set_detail(d.clone());
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// Unwraps a result at the SQL boundary.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T, DriftError> {
    fn or_report(self) -> T {
        self.unwrap_or_else(|e| e.report())
    }
}
