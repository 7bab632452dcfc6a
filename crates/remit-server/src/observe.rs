//! HTTP observation: a span and latency metrics per request, and the
//! Prometheus scrape endpoint.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use remit_runtime::metrics::{self, render, TEXT_FORMAT};
use remit_runtime::telemetry::{TraceContext, TRACEPARENT};
use tracing::Instrument as _;

/// Middleware: a span per request (method, route template, the caller's
/// trace id), the [`TraceContext`] extension, and the latency histogram.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let trace = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        parent_id = tracing::field::Empty,
    );
    if let Some(trace) = &trace {
        span.record("trace_id", trace.trace_id.as_str());
        span.record("parent_id", trace.parent_id.as_str());
        // Without an OpenTelemetry layer this is a no-op.
        if let Some(parent) = trace.otel_context() {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            // A parent can only be refused once the span has started; it has not.
            let _ = span.set_parent(parent);
        }
    }
    if let Some(trace) = trace {
        request.extensions_mut().insert(trace);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    metrics::http_request(&method, &route, status, started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn handler() -> Response {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], render()).into_response()
}
