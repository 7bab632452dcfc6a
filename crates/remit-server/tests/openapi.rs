//! The OpenAPI document covers the router, and `/metrics` and trace
//! context behave as documented.
//!
//! Routes are read from the router's source (every `.route("PATH",
//! method(...))` under `src/`), so a route added without a
//! `#[utoipa::path]` fails `every_route_is_documented`. Surfaces left out
//! on purpose are listed in `remit_server::openapi::UNDOCUMENTED_PREFIXES`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use remit_server::openapi::{ApiDoc, UNDOCUMENTED_PREFIXES};
use remit_server::{AppState, Settings};
use remit_token::EcdsaP256Signer;
use serde_json::Value;
use tower::ServiceExt as _;
use utoipa::OpenApi as _;

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options"];

/// (METHOD, path) of every `.route(...)` call in the sources of the
/// server and of the gateway whose routes it serves.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    collect_rs(&manifest.join("src"), &mut files);
    collect_rs(&manifest.join("../remit-gateway/src"), &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            let end = closing_paren(call);
            let args = &call[..end];
            rest = &call[end..];
            let Some(open) = args.find('"') else { continue };
            let close = args[open + 1..].find('"').unwrap() + open + 1;
            let path = args[open + 1..close].to_owned();
            let handlers = &args[close + 1..];
            assert!(
                !contains_call(handlers, "any"),
                "{}: route {path} uses any(); list its methods so they can be documented",
                file.display()
            );
            let mut found = false;
            for method in METHODS {
                if contains_call(handlers, method) {
                    routes.insert((method.to_ascii_uppercase(), path.clone()));
                    found = true;
                }
            }
            assert!(
                found,
                "{}: no method found for route {path}",
                file.display()
            );
        }
    }
    routes
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Index of the parenthesis closing a call whose `(` was just consumed.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Whether `name(` appears as a call (not as the tail of a longer name).
fn contains_call(text: &str, name: &str) -> bool {
    let needle = format!("{name}(");
    let mut from = 0;
    while let Some(at) = text[from..].find(&needle) {
        let at = from + at;
        let before = text[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return true;
        }
        from = at + needle.len();
    }
    false
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_route_reader_sees_the_router() {
    // Guards the test below against a reader that finds nothing.
    let routes = routes_in_source();
    for expected in [
        ("GET", "/healthz"),
        ("POST", "/v1/agents"),
        ("GET", "/v1/agents"),
        ("POST", "/oauth/introspect"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not read from the sources: {routes:?}"
        );
    }
}

#[test]
fn every_route_is_documented() {
    let documented = documented();
    let missing: Vec<_> = routes_in_source()
        .into_iter()
        .filter(|(_, path)| !UNDOCUMENTED_PREFIXES.iter().any(|p| path.starts_with(p)))
        .filter(|route| !documented.contains(route))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without #[utoipa::path] in remit_server::openapi::ApiDoc: {missing:?} \
         (document them, or add a prefix to UNDOCUMENTED_PREFIXES if they are not REST)"
    );
}

#[test]
fn every_documented_operation_is_routed() {
    let routes = routes_in_source();
    let stale: Vec<_> = documented()
        .into_iter()
        .filter(|op| !routes.contains(op))
        .collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
}

#[test]
fn the_document_describes_problems_and_the_admin_scheme() {
    let doc: Value = serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
    let problem = &doc["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "detail"] {
        assert!(
            problem["properties"][field].is_object(),
            "{field}: {problem}"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path == "/oauth/token" {
                continue; // RFC 6749 errors, checked below
            }
            let default = &op["responses"]["default"]["content"]["application/problem+json"];
            assert!(
                default.is_object(),
                "{method} {path} lacks a problem+json default"
            );
        }
    }
    let admin = &doc["paths"]["/v1/revocations"]["post"];
    assert_eq!(admin["security"][0]["admin_token"], serde_json::json!([]));
    assert!(admin["responses"]["401"].is_object());
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
}

#[test]
fn the_token_endpoint_is_documented_as_a_form_with_oauth_errors() {
    let doc: Value = serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
    let op = &doc["paths"]["/oauth/token"]["post"];
    let form = &op["requestBody"]["content"]["application/x-www-form-urlencoded"];
    assert!(form.is_object(), "{op}");
    assert!(
        op["requestBody"]["content"]["application/json"].is_null(),
        "{op}"
    );
    let schema = &doc["components"]["schemas"]["TokenExchangeForm"];
    for field in [
        "grant_type",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "authorization_details",
    ] {
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .contains(&Value::from(field)),
            "{field} must be required: {schema}"
        );
    }
    // RFC 6749 §5.2: errors are plain JSON with `error`, never problem+json.
    for status in ["400", "default"] {
        let content = &op["responses"][status]["content"];
        assert!(
            content["application/problem+json"].is_null(),
            "{status}: {op}"
        );
        assert_eq!(
            content["application/json"]["schema"]["$ref"], "#/components/schemas/OAuthError",
            "{status}: {op}"
        );
    }
    assert!(
        op["security"].is_null(),
        "the actor authenticates by assertion"
    );
    // Admin gateway routes are secured like the rest of the admin API.
    for (path, method) in [
        ("/v1/servers/{id}/bless", "post"),
        ("/v1/approvals/{id}/approve", "post"),
        ("/v1/gateway/shadow", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(
            op["security"][0]["admin_token"],
            serde_json::json!([]),
            "{path}"
        );
        assert!(op["responses"]["401"].is_object(), "{path}");
    }
}

struct App {
    router: axum::Router,
    token: String,
    _dir: tempfile::TempDir,
}

async fn app(metrics_require_admin: bool) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = support::sqlite_store(dir.path()).await;
    let (token, hash) = support::admin_token();
    let mut settings = Settings::new("http://127.0.0.1:9");
    settings.metrics_require_admin = metrics_require_admin;
    let state = AppState::new(
        store,
        EcdsaP256Signer::generate().unwrap(),
        hash,
        settings,
        support::receipt_log(dir.path()),
    )
    .await
    .unwrap();
    App {
        router: remit_server::router(
            remit_server::Gateway::new(state, remit_server::GatewayConfig::default()).unwrap(),
        ),
        token,
        _dir: dir,
    }
}

async fn get(
    router: &axum::Router,
    path: &str,
    auth: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = Request::get(path);
    if let Some(token) = auth {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn openapi_json_is_served_with_this_server_as_its_server() {
    let app = app(false).await;
    let (status, content_type, body) = get(&app.router, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:9");
    assert!(doc["paths"]["/v1/remits"]["post"].is_object());
}

#[tokio::test]
async fn metrics_refuse_a_missing_token_when_configured_to_need_one() {
    let app = app(true).await;
    let (status, content_type, _) = get(&app.router, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, "application/problem+json");
    let (status, _, _) = get(&app.router, "/metrics", Some("not-the-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&app.router, "/metrics", Some(&app.token)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_not_raw_path() {
    let app = app(false).await;
    let (status, _, _) = get(&app.router, "/v1/agents/no-such-agent", Some(&app.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&app.router, "/no/such/endpoint", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, content_type, text) = get(&app.router, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(
        text.contains(r#"remit_http_request_duration_seconds_count{method="GET",route="/v1/agents/{id}",status="404"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        !text.contains("no-such-agent"),
        "raw paths must not become labels"
    );
    assert!(
        !text.contains("/no/such/endpoint"),
        "raw paths must not become labels"
    );
}
