//! `--metrics-addr`: Prometheus text at `/metrics`, and `/healthz` (503 once the audit database
//! has been unreachable for longer than `DRIFT_HEALTH_UNREACHABLE_SECONDS`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Encoder, Gauge, IntCounter, IntGauge, Registry, TextEncoder};

/// What the sidecar reports.
pub struct Metrics {
    registry: Registry,
    delivered: IntCounter,
    failed: IntCounter,
    pending: IntGauge,
    parked: IntGauge,
    oldest_pending_age: Gauge,
    last_poll: Gauge,
    parked_items: Mutex<HashSet<i64>>,
    unreachable_since: Mutex<Option<Instant>>,
    unhealthy_after: Duration,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(unhealthy_after: Duration) -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let delivered = counter(
            "drift_notifier_delivered_total",
            "Outbox items delivered to Asana (tasks filed, follow-ups posted) by this process.",
        );
        let failed = counter(
            "drift_notifier_failed_total",
            "Delivery attempts that failed (retried later, or parked) in this process.",
        );
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let pending = int_gauge(
            "drift_notifier_pending",
            "Outbox items not delivered yet, as of the last successful poll.",
        );
        let parked = int_gauge(
            "drift_notifier_parked",
            "Items this process parked after an Asana rejection (4xx) and has not delivered since; a restart retries them.",
        );
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let oldest_pending_age = gauge(
            "drift_notifier_oldest_pending_age_seconds",
            "Age of the oldest undelivered item (since its check run ended), as of the last successful poll; 0 when none.",
        );
        let last_poll = gauge(
            "drift_notifier_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll of the outbox that completed.",
        );
        Arc::new(Metrics {
            registry,
            delivered,
            failed,
            pending,
            parked,
            oldest_pending_age,
            last_poll,
            parked_items: Mutex::new(HashSet::new()),
            unreachable_since: Mutex::new(None),
            unhealthy_after,
        })
    }

    pub fn delivered(&self, item: i64) {
        self.delivered.inc();
        let mut parked = self.parked_items.lock().unwrap_or_else(|e| e.into_inner());
        if parked.remove(&item) {
            self.parked.set(parked.len() as i64);
        }
    }

    pub fn failed(&self, item: i64, parked: bool) {
        self.failed.inc();
        let mut set = self.parked_items.lock().unwrap_or_else(|e| e.into_inner());
        if parked {
            set.insert(item);
        } else {
            set.remove(&item);
        }
        self.parked.set(set.len() as i64);
    }

    /// A completed poll: what is pending, and how old the oldest is.
    pub fn polled(&self, pending: i64, oldest_age: Option<f64>) {
        self.pending.set(pending);
        self.oldest_pending_age
            .set(oldest_age.unwrap_or(0.0).max(0.0));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_poll.set(now.as_secs_f64());
    }

    /// The audit database answered.
    pub fn reachable(&self) {
        *self
            .unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The audit database could not be reached (or the connection was lost).
    pub fn unreachable(&self) {
        self.unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
    }

    /// False once the database has been unreachable for longer than the threshold.
    pub fn healthy(&self) -> bool {
        self.unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|since| since.elapsed() <= self.unhealthy_after)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Binds `addr` and serves `/metrics` and `/healthz` in the background. A bind failure (the
/// address is in use, or not local) is returned: it is a configuration error.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on DRIFT_METRICS_ADDR {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let m = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let m = metrics.clone();
                async move {
                    if m.healthy() {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the audit database has been unreachable for too long\n",
                        )
                    }
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gauges_and_health() {
        let m = Metrics::new(Duration::from_millis(50));
        m.failed(1, true);
        m.failed(2, false);
        m.delivered(2);
        m.polled(3, Some(12.5));
        let text = m.render();
        for line in [
            "drift_notifier_delivered_total 1",
            "drift_notifier_failed_total 2",
            "drift_notifier_parked 1",
            "drift_notifier_pending 3",
            "drift_notifier_oldest_pending_age_seconds 12.5",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(m.healthy());
        m.unreachable();
        assert!(m.healthy(), "not yet past the threshold");
        std::thread::sleep(Duration::from_millis(80));
        m.unreachable();
        assert!(!m.healthy(), "the first failure counts");
        m.reachable();
        assert!(m.healthy());
    }
}
