//! Request tracing: one `tracing` span per HTTP request, the W3C
//! `traceparent` of the caller carried into it, and request metrics.
//!
//! The server's `observe` middleware is the outermost layer of the router. It parses an
//! incoming `traceparent` (W3C Trace Context, version 00) into a
//! [`TraceContext`] and inserts it as a request extension, so handlers
//! (and the receipts they write) can name the caller's trace:
//!
//! ```ignore
//! async fn handler(trace: Option<Extension<TraceContext>>) { /* trace.0.trace_id */ }
//! ```
//!
//! A missing or malformed `traceparent` is ignored (the spec says to
//! restart the trace), never an error. With no subscriber installed the
//! span costs one disabled-callsite check.
//!
//! # Export
//!
//! [`init`] installs the process's subscriber: log lines on stderr
//! (`RUST_LOG` filter, `info` by default) and, when an OTLP endpoint is
//! configured, OpenTelemetry trace export over OTLP/HTTP (protobuf),
//! batched on the tokio runtime through hyper (HTTPS with the same rustls
//! stack as the OIDC key fetches). The request span's parent is the
//! caller's `traceparent`, so Remit's spans join the caller's trace.
//! Export is off by default: `otlp_endpoint` in the configuration (a base
//! URL; `/v1/traces` is appended) or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! turn it on. Export failures are logged by the SDK, never fail a request.

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";

/// A caller's W3C trace context (`traceparent`, version 00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// The caller's span id: 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` value; `None` when it is not a valid one.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        // Version 00 has exactly four fields; later versions may append more.
        if version.len() != 2 || !is_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace_id.len() != 32 || !is_hex(trace_id) || trace_id.bytes().all(|b| b == b'0') {
            return None;
        }
        if parent_id.len() != 16 || !is_hex(parent_id) || parent_id.bytes().all(|b| b == b'0') {
            return None;
        }
        if flags.len() != 2 || !is_hex(flags) {
            return None;
        }
        Some(Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: u8::from_str_radix(flags, 16).ok()?,
        })
    }

    /// Whether the caller sampled this trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The caller's span as a remote OpenTelemetry parent.
    pub fn otel_context(&self) -> Option<opentelemetry::Context> {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        let trace_id = TraceId::from_hex(&self.trace_id).ok()?;
        let span_id = SpanId::from_hex(&self.parent_id).ok()?;
        let parent = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        );
        Some(opentelemetry::Context::new().with_remote_span_context(parent))
    }
}

/// The OTLP environment variables that turn export on without configuration.
pub const OTLP_ENV: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Why the subscriber or the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint, ...).
    #[error("OpenTelemetry export to {endpoint}: {detail}")]
    Exporter {
        /// The endpoint as configured.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// Another subscriber is already installed in this process.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the exporter alive; dropping it flushes the spans still queued.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(error) = provider.force_flush() {
                tracing::warn!(%error, "flushing OpenTelemetry spans failed");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Where spans go: the configured base URL (`/v1/traces` appended), or
/// `None` to leave it to the standard environment variables (see
/// [`OTLP_ENV`]); export is off when neither is set.
fn export_target(configured: Option<&str>) -> Option<Option<String>> {
    match configured.map(str::trim).filter(|e| !e.is_empty()) {
        Some(base) => Some(Some(format!("{}/v1/traces", base.trim_end_matches('/')))),
        None if OTLP_ENV
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|e| !e.trim().is_empty())) =>
        {
            Some(None)
        }
        None => None,
    }
}

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, the
    /// event's fields flattened, and the spans it happened in), for a log
    /// shipper.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// [`init_with`] human-readable logs.
pub fn init(otlp_endpoint: Option<&str>) -> Result<TelemetryGuard, TelemetryError> {
    init_with(otlp_endpoint, LogFormat::Text)
}

/// Installs the process-wide subscriber: stderr logs (`RUST_LOG`, `info`
/// by default) in `format`, plus OTLP/HTTP span export when
/// `otlp_endpoint` (or the standard environment) names a collector. Must
/// run inside a tokio runtime (the batch exporter runs on it). Keep the
/// guard until exit.
pub fn init_with(
    otlp_endpoint: Option<&str>,
    format: LogFormat,
) -> Result<TelemetryGuard, TelemetryError> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    // The log filter applies to log lines only: quieting the logs never
    // stops the request spans from being exported.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let (otel, provider) = match export_target(otlp_endpoint) {
        None => (None, None),
        Some(endpoint) => {
            let provider = tracer_provider(endpoint.as_deref())?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("remit"))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

/// Longest wait for a collector's answer.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest collector answer read.
const MAX_EXPORT_ANSWER: usize = 4 * 1024 * 1024;

/// The exporter's HTTP client: hyper (HTTP/1.1) over the server's rustls
/// connector, so export adds no second HTTP or TLS stack.
#[derive(Debug)]
struct OtlpClient(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<hyper::body::Bytes>,
    >,
);

type ExportAnswer = Result<hyper::Response<hyper::body::Bytes>, opentelemetry_http::HttpError>;

impl opentelemetry_http::HttpClient for OtlpClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: hyper::Request<hyper::body::Bytes>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ExportAnswer> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        use http_body_util::BodyExt as _;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = hyper::Request::from_parts(parts, http_body_util::Full::new(body));
            let response = tokio::time::timeout(EXPORT_TIMEOUT, self.0.request(request)).await??;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_EXPORT_ANSWER)
                .collect()
                .await?
                .to_bytes();
            Ok(hyper::Response::from_parts(parts, body))
        })
    }
}

fn tracer_provider(
    endpoint: Option<&str>,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let shown = endpoint.unwrap_or("(from OTEL_EXPORTER_OTLP_*)").to_owned();
    let failed = |detail: String| TelemetryError::Exporter {
        endpoint: shown.clone(),
        detail,
    };
    let connector = crate::oidc::https_connector().map_err(failed)?;
    let client = OtlpClient(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    );
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(client);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build().map_err(|e| failed(e.to_string()))?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("remit")
                .build(),
        )
        .build())
}

fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_valid_traceparent_is_carried() {
        let trace =
            TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(trace.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(trace.parent_id, "b7ad6b7169203331");
        assert!(trace.sampled());
        // A later version may append fields.
        assert!(TraceContext::parse(
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-more"
        )
        .is_some_and(|t| !t.sampled()));
    }
}
