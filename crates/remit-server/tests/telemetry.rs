//! OpenTelemetry export: a request carrying a W3C `traceparent` produces a
//! span that reaches an OTLP/HTTP receiver (a real HTTP server here that
//! decodes the protobuf) inside the caller's trace.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: every decoded export request goes to the channel.
async fn receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let _ = tx.send(request);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_is_exported_in_the_callers_trace() {
    let (collector, mut exports) = receiver().await;
    let guard = Arc::new(remit_server::telemetry::init(Some(&collector)).unwrap());
    assert!(guard.exporting());

    let server = support::sqlite().await;
    let answer = server
        .raw(format!(
            "GET /healthz HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ntraceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\n\r\n",
            server.addr
        ))
        .await;
    assert!(answer.headers.starts_with("HTTP/1.1 200"));

    // Flush (a blocking call) off the async threads, then wait for the span.
    let flusher = Arc::clone(&guard);
    tokio::task::spawn_blocking(move || flusher.flush())
        .await
        .unwrap();
    let wanted = hex::decode(TRACE_ID).unwrap();
    let span = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let export = exports.recv().await.expect("receiver closed");
            let found = export
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .find(|s| s.trace_id == wanted)
                .cloned();
            if let Some(span) = found {
                return span;
            }
        }
    })
    .await
    .expect("no span of the caller's trace was exported");
    assert_eq!(span.parent_span_id, hex::decode(PARENT_ID).unwrap());
    assert_eq!(attribute(&span, "http.route").as_deref(), Some("/healthz"));
    assert_eq!(
        attribute(&span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_ne!(span.span_id, hex::decode(PARENT_ID).unwrap());
}
