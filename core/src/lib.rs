//! Pure logic of drift_watch: no Postgres, no I/O.
//!
//! * [`contract`] turns a dbt properties file or a compiled `manifest.json` into contract tables,
//!   applying dbt's own rules (schema defaults, identifiers, `enabled`, quoting, Jinja defaults).
//! * [`ident`] holds the Postgres identifier rules (case folding, truncation, quoting).
//! * [`types`] holds the small amount of type-spelling logic that must happen before Postgres's
//!   own type parser sees a spelling (which schemas an unqualified name may live in).
//! * [`diff`] compares the contract with a live catalog read and produces deltas.
//!
//! The extension crate glues these to SQL; everything here is tested by plain `cargo test`.

pub mod contract;
pub mod diff;
pub mod fxhash;
pub mod ident;
pub mod jinja;
pub mod lineage;
pub mod types;

pub use contract::{
    check_origin, parse_document, parse_document_with, ChangeSet, Contract, ContractColumn,
    ContractError, ContractTable, DocumentKind, ParseOptions, TablePolicy, Undocumented,
};
pub use diff::{
    baselines_without_columns, check, contract_fingerprint, diff, merge_relations, preview,
    Baseline, Baselines, CatalogSummary, Change, CheckOutcome, Delta, LiveCatalog, LiveColumn,
    LiveTable, ResolvedType, TypeKey, TypeMap,
};
pub use fxhash::{FxHashMap, FxHashSet};
pub use lineage::{
    column_references, ColumnReferences, Lineage, LineageEdge, LineageNode, Parent, Severity,
};
