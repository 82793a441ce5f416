//! drift-notifier as a library: the sidecar that turns drift_watch's outbox into Asana tasks,
//! plus the `contract push`, `contract check` and `check` commands an analytics engineer runs by
//! hand. `main.rs` only parses the command line, starts the runtime and maps exit codes.
//!
//! * [`config`]: the command line and environment.
//! * [`connection`]: the audit database connection, LISTEN, reconnects, the sidecar loop.
//! * [`outbox`]: claim, extend, acknowledge, postpone through drift_watch's outbox functions.
//! * [`deliver`]: the delivery policy, written once against a [`sink::Sink`], and the drain loop.
//! * [`sink`]: the `Sink` trait and the dry-run printer; [`asana`]: the Asana sink (pacing,
//!   429 pauses, attachments).
//! * [`render`]: pure functions from deltas to task text.
//! * [`metrics`]: `/metrics` (Prometheus) and `/healthz`.
//! * [`commands`]: `contract push`, `contract check` (the CI gate), `check`.
//! * [`tls`]: libpq-compatible TLS to the audit database.

pub mod asana;
pub mod commands;
pub mod config;
pub mod connection;
pub mod deliver;
pub mod metrics;
pub mod outbox;
pub mod render;
pub mod sink;
pub mod tls;
