//! Prometheus metrics: reconciles, their duration, failures by error label,
//! and tunnels by Ready status (read from the controller's cache at scrape).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::{text::encode, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::conditions::{self, READY};
use crate::api::SecureTunnel;
use crate::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: String,
}

/// Counts SecureTunnels by the status of their Ready condition at scrape time.
#[derive(Debug, Default)]
struct TunnelsByReady {
    stores: Mutex<Vec<Store<SecureTunnel>>>,
}

impl prometheus_client::collector::Collector for TunnelsByReady {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<ReadyLabels, Gauge>::default();
        for status in [conditions::TRUE, conditions::FALSE, "Unknown"] {
            family
                .get_or_create(&ReadyLabels {
                    ready: status.into(),
                })
                .set(0);
        }
        let stores = self.stores.lock().map(|s| s.clone()).unwrap_or_default();
        for tunnel in stores.iter().flat_map(Store::state) {
            let ready = tunnel
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, READY))
                .map_or("Unknown", |c| c.status.as_str());
            family
                .get_or_create(&ReadyLabels {
                    ready: ready.into(),
                })
                .inc();
        }
        let metric = encoder.encode_descriptor(
            "securetunnel_tunnels",
            "SecureTunnels by the status of their Ready condition",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// The operator's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
    tunnels: Arc<TunnelsByReady>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        // 1 ms to about 16 s.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let tunnels = Arc::new(TunnelsByReady::default());
        registry.register(
            "securetunnel_reconciles",
            "Reconciles run",
            reconciles.clone(),
        );
        registry.register(
            "securetunnel_reconcile_failures",
            "Reconciles that failed, by error label",
            failures.clone(),
        );
        registry.register(
            "securetunnel_reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register_collector(Box::new(tunnels.clone()));
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            tunnels,
        }
    }

    /// Counts the tunnels of this controller's cache in `securetunnel_tunnels`.
    pub fn watch_tunnels(&self, store: Store<SecureTunnel>) {
        if let Ok(mut stores) = self.tunnels.stores.lock() {
            stores.push(store);
        }
    }

    /// Records one reconcile.
    pub fn observe(&self, result: &Result<Action, Error>, elapsed: Duration) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Err(e) = result {
            self.failures
                .get_or_create(&ErrorLabels {
                    error: e.metric_label().to_string(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
