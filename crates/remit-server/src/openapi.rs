//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` attributes and the `ToSchema` derives of the request
//! and response types in `remit_api`, served at `GET /openapi.json`.
//!
//! The handlers return those same types (`Json<remit_api::...>`) and the
//! CLI reads answers into them, so a body's shape is written once. What
//! `remit_api::doc` holds for the document only (grants and the uppercase
//! classification of the token core, the lenient `/oauth/token` form) is
//! explained there. Schemathesis (`scripts/schemathesis`) still checks
//! every response against this document, and the route test in
//! `tests/openapi.rs` fails when a route of the router is missing here.
//!
//! Every operation answers errors as RFC 9457 `application/problem+json`
//! (the `default` response); admin operations take the `admin_token`
//! bearer scheme and list 401.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use remit_store::Store;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, ServerBuilder};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;
use crate::{discovery, gateway, receipts_api, registry, remits, revocation};

/// Name of the admin bearer security scheme in the document.
pub const ADMIN_SCHEME: &str = "admin_token";

/// Paths the router serves on purpose without an entry in the document:
/// non-REST surfaces (the MCP gateway speaks JSON-RPC and is described by
/// MCP itself). A route under one of these prefixes is skipped by the
/// route test; anything else must be documented.
pub const UNDOCUMENTED_PREFIXES: &[&str] = &["/mcp"];

/// The API description. Build the served document with [`document`].
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Remit control plane",
        description = "Registry, issuance, revocation, introspection and receipts of Remit. \
            Errors are RFC 9457 problem documents (application/problem+json).",
        license(name = "Apache-2.0")
    ),
    paths(
        discovery::healthz,
        discovery::readyz,
        discovery::jwks,
        discovery::metadata,
        document_handler,
        crate::observe::handler,
        registry::register_agent,
        registry::list_agents,
        registry::get_agent,
        registry::disable_agent,
        registry::add_server,
        registry::disable_server,
        registry::list_servers,
        registry::add_tool,
        registry::list_tools,
        remits::issue,
        revocation::revoke,
        revocation::list,
        revocation::introspect,
        revocation::oauth_revoke,
        receipts_api::leaves,
        receipts_api::latest_checkpoint,
        crate::exchange::token,
        gateway::http::resource_metadata,
        gateway::bless::bless,
        gateway::bless::show_tool,
        gateway::bless::set_tool,
        gateway::bless::set_tool_post,
        gateway::approvals::list,
        gateway::approvals::show,
        gateway::approvals::approve,
        gateway::approvals::reject,
        gateway::approvals::shadow_show,
        gateway::approvals::shadow_set,
    ),
    components(schemas(remit_api::Problem)),
    modifiers(&ProblemsAndSecurity),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "discovery", description = "Keys, metadata and this document"),
        (name = "registry", description = "Agents, MCP servers and their tools"),
        (name = "remits", description = "Issuing remits"),
        (name = "revocation", description = "Revocation and introspection (RFC 7009, RFC 7662)"),
        (name = "receipts", description = "The signed receipt log"),
        (name = "exchange", description = "RFC 8693 token exchange (errors are RFC 6749 §5.2 JSON, not problem documents)"),
        (name = "gateway", description = "The MCP gateway's admin API: blessing servers, tuning tools, held calls, shadow mode"),
    )
)]
pub struct ApiDoc;

/// Adds the admin security scheme, a problem+json `default` response to
/// every operation and a 401 to every admin operation.
#[derive(Debug)]
struct ProblemsAndSecurity;

impl Modify for ProblemsAndSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "The admin token printed once by the first `remit serve` (stored only as its SHA-256)"
                .into(),
        );
        components.add_security_scheme(ADMIN_SCHEME, SecurityScheme::Http(bearer));
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_problems(operation);
            }
        }
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn add_problems(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|list| !list.is_empty());
    let responses = &mut operation.responses.responses;
    if secured {
        responses.entry("401".into()).or_insert_with(|| {
            problem_response("Missing, malformed or wrong admin bearer token").into()
        });
    }
    responses
        .entry("default".into())
        .or_insert_with(|| problem_response("Any error, as an RFC 9457 problem document").into());
}

/// The document served by this process: [`ApiDoc`] with `public_url` as
/// its server. Built once per process (the public URL does not change).
pub fn document(public_url: &str) -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.servers = Some(vec![ServerBuilder::new().url(public_url).build()]);
        doc.to_json().unwrap_or_else(|error| {
            // Serializing a document of plain strings and maps cannot fail;
            // answer a valid, empty-looking document rather than panic.
            tracing::error!(%error, "serializing the OpenAPI document failed");
            String::from("{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"Remit control plane\",\"version\":\"0\"},\"paths\":{}}")
        })
    })
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "discovery",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object))
)]
pub async fn document_handler<S: Store>(State(state): State<AppState<S>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document(&state.settings().public_url),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_operations_declare_the_bearer_scheme_and_a_401() {
        let doc: serde_json::Value =
            serde_json::from_str(document("http://127.0.0.1:1")).unwrap_or_default();
        let op = &doc["paths"]["/v1/agents"]["post"];
        assert_eq!(op["security"][0][ADMIN_SCHEME], serde_json::json!([]));
        assert!(op["responses"]["401"].is_object());
        let public = &doc["paths"]["/healthz"]["get"];
        assert!(public["security"].is_null());
        assert!(public["responses"]["401"].is_null());
        assert_eq!(
            doc["components"]["securitySchemes"][ADMIN_SCHEME]["scheme"],
            "bearer"
        );
    }
}
