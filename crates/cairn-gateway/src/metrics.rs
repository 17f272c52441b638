//! The gateway's Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn stage_histogram() -> Histogram {
    // 50 ms .. ~14 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

/// Counters, gauges and histograms of one gateway.
#[derive(Clone)]
pub(crate) struct Metrics {
    /// Sessions ended, by final status.
    pub sessions: Family<Labels, Counter>,
    /// Sessions created.
    pub created: Counter,
    /// Sessions in progress (queued, executing, proving or assembling).
    pub running: Gauge,
    pub segments_verified: Counter,
    pub segments_rejected: Counter,
    /// Requests refused with 401 (no key or an unknown one).
    pub key_failures: Counter,
    /// Keyed requests refused with 429: their address had used up its failed attempts.
    pub key_attempts_refused: Counter,
    /// Seconds per stage: execute (submit to last segment), prove (per segment, first offer to verified),
    /// assemble, verify (the gateway's own check of the final receipt).
    pub stages: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sessions: Family::default(),
            created: Counter::default(),
            running: Gauge::default(),
            segments_verified: Counter::default(),
            segments_rejected: Counter::default(),
            key_failures: Counter::default(),
            key_attempts_refused: Counter::default(),
            stages: Family::new_with_constructor(stage_histogram),
        }
    }
}

impl Metrics {
    pub fn ended(&self, status: &str) {
        self.sessions
            .get_or_create(&vec![("status".into(), status.into())])
            .inc();
    }

    pub fn stage(&self, stage: &str, secs: f64) {
        self.stages
            .get_or_create(&vec![("stage".into(), stage.into())])
            .observe(secs);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut r = Registry::with_prefix("cairn_gateway");
        r.register(
            "sessions_ended",
            "Sessions ended, by status",
            self.sessions.clone(),
        );
        r.register("sessions_created", "Sessions created", self.created.clone());
        r.register(
            "sessions_running",
            "Sessions queued or in progress",
            self.running.clone(),
        );
        r.register(
            "segments_verified",
            "Segment receipts verified and accepted",
            self.segments_verified.clone(),
        );
        r.register(
            "segments_rejected",
            "Segment results refused (invalid, wrong claim, copied, malformed)",
            self.segments_rejected.clone(),
        );
        r.register(
            "api_key_failures",
            "Requests refused for a missing or unknown API key",
            self.key_failures.clone(),
        );
        r.register(
            "api_key_lockouts",
            "Keyed requests refused because their address had too many failed key attempts",
            self.key_attempts_refused.clone(),
        );
        r.register(
            "stage_seconds",
            "Seconds per stage (execute, prove per segment, assemble, verify)",
            self.stages.clone(),
        );
        let mut out = String::new();
        let _ = encode(&mut out, &r);
        out
    }
}
