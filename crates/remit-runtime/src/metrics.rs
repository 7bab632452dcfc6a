//! Prometheus metrics, served at `GET /metrics` in the text exposition
//! format (0.0.4).
//!
//! One process-wide registry. Recording is a few atomic adds: call the
//! functions here from anywhere on the request path.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `remit_decisions_total` | `outcome`, `action` | gateway decisions: allow, deny, escalate |
//! | `remit_decision_seconds` | `outcome` | time to decide |
//! | `remit_gateway_stage_seconds` | `stage` | time in one stage of a gateway request, numbered as the pipeline runs them: `authenticate`, `authority`, `pin`, `scan`, `decide`, `budget`, `route` (forwarded upstream and answered), `release`, `record` (what a ready answer waited for its receipt to be durable): tells Remit's own time from the upstream's and the disk's |
//! | `remit_http_request_duration_seconds` | `method`, `route`, `status` | every HTTP request, by route template (`/v1/agents/{id}`), never by raw path |
//! | `remit_revocations_total` | `kind` | new revocations made by this process |
//! | `remit_store_errors_total` | `kind` | store failures answered as 5xx (`unavailable`, `internal`) |
//! | `remit_receipt_append_seconds` | — | durable receipt appends (fsync and checkpoint included) |
//! | `remit_receipt_batch_size` | — | receipts made durable by one write and sync of the receipt log: how many calls shared a sync (group commit) |
//! | `remit_receipt_append_failures_total` | — | appends that failed (the request answered 500) |
//! | `remit_sqlite_counter_fallbacks_total` | — | calls counted through the counters pool because the steps or risk they needed could not be reserved without waiting on the write lock (embedded store); a steady rise means something else holds it |
//! | `remit_sqlite_wal_checkpoints_total` | — | WAL checkpoints completed by the checkpoint task |
//! | `remit_gateway_decisions_total` | `server`, `tool`, `decision`, `reason` | every decision the receipt log records (`allow`, `deny`, `escalate`, `error`), by MCP server and tool (`-` for control-plane actions) and reason code (the first deciding policy id or gateway rule); at most [`MAX_TOOL_SERIES`] server/tool pairs, the rest counted as `(other)` |
//! | `remit_approvals_waiting` | — | approvals held for a human right now (read from the store every [`APPROVALS_POLL`]) |
//! | `remit_receipts_pending` | — | receipts submitted and not yet durable: the receipt log's lag behind the calls |
//! | `remit_tls_reloads_total` | `result` | TLS certificate reloads (file change or SIGHUP): `ok`, or `error` (the previous certificate is still served) |
//!
//! `/metrics` is on the API listener and needs no credentials by default
//! (it shows counts and latencies, no identifiers beyond route templates,
//! revocation kinds and decision actions). Set `REMIT_METRICS_AUTH=admin`
//! to require the admin bearer token ([`crate::Settings::metrics_require_admin`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Distinct server/tool label pairs `remit_gateway_decisions_total` keeps;
/// more (a caller naming a thousand tools that do not exist) count as
/// `(other)`, so the metric set cannot grow without bound.
pub const MAX_TOOL_SERIES: usize = 1000;

/// How often the number of waiting approvals is read from the store.
pub const APPROVALS_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest reason code kept as a label value.
const MAX_REASON_LABEL: usize = 64;

/// The media type of the text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets, seconds: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Receipts per durable write: 1 to the largest batch ([`MAX_BATCH`]).
///
/// [`MAX_BATCH`]: crate::receipts::group::MAX_BATCH
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// A gateway decision's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call went through.
    Allow,
    /// The call was refused.
    Deny,
    /// The call was held for a human.
    Escalate,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Escalate => "escalate",
        }
    }
}

/// A stage of a gateway request, numbered as the pipeline runs them (the
/// gateway's driver, the README and the architecture use these names):
/// where a slow request's time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// 1: the remit chain, the DPoP proof and its replay, revocation.
    Authenticate,
    /// 2: the remit's grant over the request, its resource and arguments.
    Authority,
    /// 3: the target's pin (the blessed description) and its upstream.
    Pin,
    /// 4: the request's payload scanned against the target's clearance.
    Scan,
    /// 5: the policy's decision on the request.
    Decide,
    /// 6: steps and risk counted in the store.
    Budget,
    /// 7: the request forwarded upstream and answered.
    Route,
    /// 8: the answer scanned, redacted or withheld, decided.
    Release,
    /// 9: what a ready answer waited for its receipt to be durable.
    Record,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 9] = [
        Self::Authenticate,
        Self::Authority,
        Self::Pin,
        Self::Scan,
        Self::Decide,
        Self::Budget,
        Self::Route,
        Self::Release,
        Self::Record,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Authority => "authority",
            Self::Pin => "pin",
            Self::Scan => "scan",
            Self::Decide => "decide",
            Self::Budget => "budget",
            Self::Route => "route",
            Self::Release => "release",
            Self::Record => "record",
        }
    }
}

#[derive(Debug)]
struct Metrics {
    registry: Registry,
    decisions: IntCounterVec,
    decision_seconds: HistogramVec,
    stage_seconds: HistogramVec,
    http: HistogramVec,
    revocations: IntCounterVec,
    store_errors: IntCounterVec,
    receipt_append: Histogram,
    receipt_batch: Histogram,
    receipt_failures: IntCounter,
    unauthenticated: IntCounterVec,
    tls_reloads: IntCounterVec,
    gateway_decisions: IntCounterVec,
    tool_series: Mutex<HashSet<(String, String)>>,
    approvals_waiting: IntGauge,
    receipts_pending: IntGauge,
    store: Arc<StoreSource>,
}

/// What the embedded store counts about its per-call counters, read at
/// each scrape (the store keeps the totals; nothing is recorded here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Calls counted through the counters pool because their reservation
    /// would have waited on the write lock.
    pub counter_fallbacks: u64,
    /// WAL checkpoints completed.
    pub wal_checkpoints: u64,
}

/// Reads a store's counts; empty until a store is watched.
#[derive(Default)]
struct StoreSource(RwLock<Option<Box<dyn Fn() -> StoreCounts + Send + Sync>>>);

impl std::fmt::Debug for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSource")
    }
}

/// The `remit_sqlite_*_total` counters: values the store keeps, read when
/// the registry is gathered.
struct StoreCollector {
    source: Arc<StoreSource>,
    /// Prototypes, for their descriptions and options.
    counters: [IntCounter; 2],
}

impl StoreCollector {
    fn new(source: Arc<StoreSource>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            source,
            counters: [
                IntCounter::new(
                    "remit_sqlite_counter_fallbacks_total",
                    "Calls counted through the pool because their reservation would have waited on the write lock",
                )?,
                IntCounter::new(
                    "remit_sqlite_wal_checkpoints_total",
                    "WAL checkpoints completed",
                )?,
            ],
        })
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.counters.iter().flat_map(Collector::desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let source = self.source.0.read().unwrap_or_else(PoisonError::into_inner);
        let Some(read) = source.as_ref() else {
            return Vec::new();
        };
        let counts = read();
        let values = [counts.counter_fallbacks, counts.wal_checkpoints];
        // A fresh counter per scrape: the totals live in the store, and two
        // scrapes at once must not add into one another.
        self.counters
            .iter()
            .zip(values)
            .filter_map(|(proto, value)| {
                let desc = proto.desc().into_iter().next()?;
                let counter = IntCounter::new(desc.fq_name.clone(), desc.help.clone()).ok()?;
                counter.inc_by(value);
                Some(counter.collect())
            })
            .flatten()
            .collect()
    }
}

/// Builds the metric set. It fails only on a programming error (names or
/// labels clash); recording then does nothing rather than fail a request.
fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let histogram =
        |name: &str, help: &str| HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
    let decisions = IntCounterVec::new(
        Opts::new(
            "remit_decisions_total",
            "Gateway decisions by outcome and action",
        ),
        &["outcome", "action"],
    )?;
    let decision_seconds = HistogramVec::new(
        histogram("remit_decision_seconds", "Time to reach a gateway decision"),
        &["outcome"],
    )?;
    let stage_seconds = HistogramVec::new(
        histogram(
            "remit_gateway_stage_seconds",
            "Time in one stage of a gateway call",
        ),
        &["stage"],
    )?;
    let http = HistogramVec::new(
        histogram(
            "remit_http_request_duration_seconds",
            "HTTP request latency by route template",
        ),
        &["method", "route", "status"],
    )?;
    let revocations = IntCounterVec::new(
        Opts::new("remit_revocations_total", "New revocations by kind"),
        &["kind"],
    )?;
    let store_errors = IntCounterVec::new(
        Opts::new("remit_store_errors_total", "Store failures answered as 5xx"),
        &["kind"],
    )?;
    let receipt_append = Histogram::with_opts(histogram(
        "remit_receipt_append_seconds",
        "Durable receipt append latency",
    ))?;
    let receipt_batch = Histogram::with_opts(
        HistogramOpts::new(
            "remit_receipt_batch_size",
            "Receipts made durable by one write and sync of the receipt log",
        )
        .buckets(BATCH_BUCKETS.to_vec()),
    )?;
    let unauthenticated = IntCounterVec::new(
        Opts::new(
            "remit_unauthenticated_refusals_total",
            "Requests refused before the caller was authenticated, by reason code",
        ),
        &["reason"],
    )?;
    let receipt_failures = IntCounter::new(
        "remit_receipt_append_failures_total",
        "Receipt appends that failed",
    )?;
    registry.register(Box::new(decisions.clone()))?;
    registry.register(Box::new(decision_seconds.clone()))?;
    registry.register(Box::new(stage_seconds.clone()))?;
    registry.register(Box::new(http.clone()))?;
    registry.register(Box::new(revocations.clone()))?;
    registry.register(Box::new(store_errors.clone()))?;
    registry.register(Box::new(receipt_append.clone()))?;
    registry.register(Box::new(receipt_batch.clone()))?;
    registry.register(Box::new(receipt_failures.clone()))?;
    registry.register(Box::new(unauthenticated.clone()))?;
    let tls_reloads = IntCounterVec::new(
        Opts::new(
            "remit_tls_reloads_total",
            "TLS certificate reloads by result (ok, error)",
        ),
        &["result"],
    )?;
    registry.register(Box::new(tls_reloads.clone()))?;
    let gateway_decisions = IntCounterVec::new(
        Opts::new(
            "remit_gateway_decisions_total",
            "Recorded decisions by MCP server, tool, decision and reason code",
        ),
        &["server", "tool", "decision", "reason"],
    )?;
    registry.register(Box::new(gateway_decisions.clone()))?;
    let approvals_waiting = IntGauge::new(
        "remit_approvals_waiting",
        "Approvals held for a human right now",
    )?;
    registry.register(Box::new(approvals_waiting.clone()))?;
    let receipts_pending = IntGauge::new(
        "remit_receipts_pending",
        "Receipts submitted and not yet durable",
    )?;
    registry.register(Box::new(receipts_pending.clone()))?;
    let store = Arc::new(StoreSource::default());
    registry.register(Box::new(StoreCollector::new(store.clone())?))?;
    Ok(Metrics {
        registry,
        decisions,
        decision_seconds,
        stage_seconds,
        http,
        revocations,
        store_errors,
        receipt_append,
        receipt_batch,
        receipt_failures,
        unauthenticated,
        tls_reloads,
        gateway_decisions,
        tool_series: Mutex::new(HashSet::new()),
        approvals_waiting,
        receipts_pending,
        store,
    })
}

fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match build() {
            Ok(metrics) => Some(metrics),
            Err(error) => {
                tracing::error!(%error, "building the metric set failed; metrics are off");
                None
            }
        })
        .as_ref()
}

/// Records a gateway decision on `action` (a tool or an API action name;
/// keep it low-cardinality) that took `seconds`.
pub fn decision(outcome: Outcome, action: &str, seconds: f64) {
    if let Some(m) = metrics() {
        m.decisions
            .with_label_values(&[outcome.as_str(), action])
            .inc();
        m.decision_seconds
            .with_label_values(&[outcome.as_str()])
            .observe(seconds);
    }
}

/// Records `seconds` spent in one `stage` of a gateway call.
pub fn stage(stage: Stage, seconds: f64) {
    if let Some(m) = metrics() {
        m.stage_seconds
            .with_label_values(&[stage.as_str()])
            .observe(seconds);
    }
}

/// Records one HTTP request: `route` is the matched template, never the raw path.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    if let Some(m) = metrics() {
        let code = status.to_string();
        m.http
            .with_label_values(&[method, route, code.as_str()])
            .observe(seconds);
    }
}

/// Records a new revocation of `kind` (`jti`, `subtree`, `agent`, ...).
pub fn revocation(kind: &str) {
    if let Some(m) = metrics() {
        m.revocations.with_label_values(&[kind]).inc();
    }
}

/// Records a request refused before its caller was authenticated; `reason`
/// is one of Remit's own codes (never caller text).
pub fn unauthenticated(reason: &'static str) {
    if let Some(m) = metrics() {
        m.unauthenticated.with_label_values(&[reason]).inc();
    }
}

/// Records a store failure answered as 5xx: `unavailable` or `internal`.
pub fn store_error(kind: &str) {
    if let Some(m) = metrics() {
        m.store_errors.with_label_values(&[kind]).inc();
    }
}

/// Records a receipt append that took `seconds`; `ok` false when it failed.
pub fn receipt_append(seconds: f64, ok: bool) {
    if let Some(m) = metrics() {
        m.receipt_append.observe(seconds);
        if !ok {
            m.receipt_failures.inc();
        }
    }
}

/// Records one durable write of the receipt log holding `receipts`
/// receipts (how many calls shared its sync).
pub fn receipt_batch(receipts: usize) {
    if let Some(m) = metrics() {
        m.receipt_batch.observe(receipts as f64);
    }
}

/// Counts `event` in `remit_gateway_decisions_total` when it records a
/// decision (allow, deny, escalate, or a failed stage); other receipts are
/// not decisions and are not counted. Called for every receipt submitted.
pub fn decided(event: &remit_ledger::Event) {
    use remit_ledger::Kind;
    let decision = match event.kind {
        Kind::Allow => "allow",
        Kind::Deny => "deny",
        Kind::Escalate => "escalate",
        Kind::Error => "error",
        _ => return,
    };
    let Some(m) = metrics() else {
        return;
    };
    let (server, tool) = server_and_tool(event.tool.as_deref());
    let (server, tool) = {
        let mut seen = m.tool_series.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (server, tool);
        if seen.contains(&key) || seen.len() < MAX_TOOL_SERIES {
            seen.insert(key.clone());
            key
        } else {
            ("(other)".to_owned(), "(other)".to_owned())
        }
    };
    let reason = event
        .decision
        .as_ref()
        .and_then(|d| d.policy_ids.first())
        .map_or("-", String::as_str);
    let reason = if reason.len() > MAX_REASON_LABEL || reason.chars().any(char::is_control) {
        "(long)"
    } else {
        reason
    };
    m.gateway_decisions
        .with_label_values(&[server.as_str(), tool.as_str(), decision, reason])
        .inc();
}

/// `mcp:<server>/<tool>` and `mcp:<server>:<method>` to their server and
/// tool; anything else (control-plane actions) to `-` and its verb.
fn server_and_tool(tool: Option<&str>) -> (String, String) {
    let Some(tool) = tool else {
        return ("-".into(), "-".into());
    };
    if let Some(rest) = tool.strip_prefix("mcp:") {
        if let Some((server, name)) = rest.split_once('/') {
            return (server.to_owned(), name.to_owned());
        }
        if let Some((server, method)) = rest.split_once(':') {
            return (server.to_owned(), method.to_owned());
        }
        return (rest.to_owned(), "-".into());
    }
    // `admin:GET /v1/...`, `agent.register:ID`: the verb only, never the
    // caller's path or an id.
    let verb = tool
        .split([':', ' '])
        .next()
        .filter(|v| !v.is_empty() && v.len() <= MAX_REASON_LABEL)
        .unwrap_or("-");
    ("-".into(), verb.to_owned())
}

/// Sets the number of approvals waiting for a human.
pub fn approvals_waiting(count: usize) {
    if let Some(m) = metrics() {
        m.approvals_waiting
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

/// Counts a receipt submitted and not yet durable until it is dropped
/// (made durable, failed, or abandoned).
#[derive(Debug)]
pub struct PendingReceiptGauge(());

impl PendingReceiptGauge {
    /// One more receipt pending.
    pub fn start() -> Self {
        if let Some(m) = metrics() {
            m.receipts_pending.inc();
        }
        Self(())
    }
}

impl Drop for PendingReceiptGauge {
    fn drop(&mut self) {
        if let Some(m) = metrics() {
            m.receipts_pending.dec();
        }
    }
}

/// Records a TLS certificate reload; `ok` false when the new files did
/// not load and the previous certificate is still served.
pub fn tls_reload(ok: bool) {
    if let Some(m) = metrics() {
        m.tls_reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }
}

/// Exports `read`'s counts as the `remit_sqlite_*_total` counters from now
/// on, in place of any store watched before (one server per process; a
/// test that starts another replaces the first).
pub fn watch_store(read: impl Fn() -> StoreCounts + Send + Sync + 'static) {
    if let Some(m) = metrics() {
        *m.store.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(read));
    }
}

/// Every metric in the text exposition format.
pub fn render() -> String {
    let Some(m) = metrics() else {
        return String::new();
    };
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::error!(%error, "encoding metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_exposition() {
        decision(Outcome::Escalate, "fs.write", 0.002);
        revocation("subtree");
        store_error("unavailable");
        receipt_append(0.003, true);
        receipt_batch(5);
        http_request("GET", "/v1/agents/{id}", 200, 0.001);
        let text = render();
        assert!(
            text.contains(r#"remit_decisions_total{action="fs.write",outcome="escalate"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"remit_revocations_total{kind="subtree"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"remit_store_errors_total{kind="unavailable"}"#),
            "{text}"
        );
        assert!(
            text.contains("remit_receipt_append_seconds_count"),
            "{text}"
        );
        assert!(
            text.contains(r#"remit_receipt_batch_size_bucket{le="8"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"route="/v1/agents/{id}",status="200""#),
            "{text}"
        );
    }

    #[test]
    fn a_watched_store_is_read_at_each_scrape_and_a_new_one_replaces_it() {
        watch_store(|| StoreCounts {
            counter_fallbacks: 7,
            wal_checkpoints: 40,
        });
        let text = render();
        for line in [
            "remit_sqlite_counter_fallbacks_total 7",
            "remit_sqlite_wal_checkpoints_total 40",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        // Scraping twice does not add the totals up.
        assert!(render()
            .lines()
            .any(|l| l == "remit_sqlite_counter_fallbacks_total 7"));
        watch_store(|| StoreCounts {
            counter_fallbacks: 1,
            ..StoreCounts::default()
        });
        let text = render();
        assert!(
            text.lines()
                .any(|l| l == "remit_sqlite_counter_fallbacks_total 1"),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l == "remit_sqlite_counter_fallbacks_total 7"),
            "{text}"
        );
    }
}
