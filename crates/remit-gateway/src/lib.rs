//! The MCP gateway: every tool call authenticated, scanned, decided,
//! budgeted and receipted, in front of upstream MCP servers.
//!
//! # Transport
//!
//! `POST /mcp/{server}` is MCP streamable HTTP. Answers are JSON
//! (`application/json`, which the spec lets a server choose for every
//! request), except a `tools/call` that sends `_meta.progressToken` and
//! accepts `text/event-stream`: once the upstream reports progress, the
//! answer is an SSE stream of those notifications, scanned and redacted like
//! a result ([`pipeline::progress`]), then the answer. `Host` and `Origin`
//! are checked first ([`origin`], DNS rebinding: 403), and an
//! `MCP-Protocol-Version` header naming a version the gateway does not
//! speak is a 400. `GET` answers 405 because the gateway offers no server-initiated
//! stream, and `DELETE` ends a session. The gateway answers `initialize`
//! itself (it is the MCP server the client talks to) and hands out an
//! `Mcp-Session-Id`; an unknown session id is a 404, as the spec asks, so the
//! client starts over. Upstream sessions are the gateway's own
//! ([`upstream`]): one per registered server, never the client's.
//!
//! # One request ([`pipeline`])
//!
//! Every request that reaches an upstream passes nine stages, run in order
//! by one driver for every request kind (a tool call, a resource read, a
//! prompt get), timed under these names in `remit_gateway_stage_seconds`:
//!
//! 1. authenticate ([`auth`]): remit chain, DPoP proof (or bearer), replay
//!    cache (shared by the replicas of a PostgreSQL deployment), audience,
//!    revocation;
//! 2. authority: the remit's grants must cover `<server>/<tool>` (a tool
//!    name is 1-128 of `A-Za-z0-9_.-`, never a `/`), its arguments and its
//!    resource (the value of the argument blessing named, `path`, `uri`,
//!    `url` or `file` by default, or `remit server tool-set --resource-arg`);
//! 3. pin: the tool must be blessed and its description unchanged;
//! 4. scan the arguments; data above the tool's clearance is refused;
//! 5. decide with the policy (`call_tool`) over the full context; an
//!    escalation is held as a pending approval bound to the call's hash
//!    ([`approvals`]);
//! 6. budget: a step of every link's remit and the payer's risk budget
//!    (the agent's, or for an exchanged remit the custody tree's),
//!    atomically in the store;
//! 7. route: forward upstream; the call's `allow` receipt is queued first,
//!    so the log's sync runs while the upstream works;
//! 8. release: scan the result; redact it above the holder's class, or
//!    block it; ask the policy (`read_result`);
//! 9. record: a receipt, durable before the answer leaves; the answer
//!    carries its index as `_meta.receipt_id`. A result with findings gets
//!    a second receipt (`result_redacted` / `result_released`), a withheld
//!    one a `deny`.
//!
//! MCP resources and prompts pass the same stages with their own grants and
//! policy actions: `resources/read` needs a grant of `<server>/resources/read`
//! whose resource patterns match the URI, `prompts/get` one of
//! `<server>/prompts/get` matching the prompt's name (its arguments checked
//! like a tool's); a step of every link is used, the content is scanned and
//! put to the policy (`read_resource` / `get_prompt`, resource `Server`,
//! with the content's classification), redacted or withheld above the
//! holder's class, and receipted. `resources/list` and `prompts/list` show
//! only what the remit grants; resource templates are not offered. A read
//! the policy escalates is held exactly like a tool call ([`hold`]): a
//! pending approval bound to the hash of the exact request (leaf remit,
//! server, method, URI or prompt name, arguments), released once. The
//! policy decides on the content read, so the upstream is asked (and a step
//! used) before the hold: each held attempt costs a step. Prompts
//! are pinned when the server is blessed ([`bless`]): the hash of each
//! prompt's description and arguments; a changed prompt is hidden from
//! `prompts/list` and `prompts/get` is refused (`gw-description-changed`)
//! until the next blessing, and a prompt that appeared since is not offered
//! (`gw-prompt-not-blessed`). Resource descriptions are not pinned (the
//! policy decides on the content read, which is scanned).
//!
//! `resources/subscribe` is refused (method not found, and the
//! `initialize` answer does not advertise `resources.subscribe`): updates
//! would need a server-to-client stream the gateway does not offer, and the
//! upstream session is shared by every client, so one client's subscription
//! cannot be kept apart from another's. Clients poll `resources/read`,
//! which is mediated.
//!
//! The policy context carries `pop` (`dpop` or `bearer`: the lockdown preset
//! refuses bearer use), whether the remit grants the call, and the holder's
//! clearance.
//!
//! In shadow mode (per agent or per server) stages 2, 4 and 5 note what
//! they would have refused, stage 6 spends nothing, and an observation
//! records the would-be decision while the request goes through — a tool
//! call, a `resources/read` or a `prompts/get` alike; authentication,
//! revocation, the description pins and result redaction still apply.
//!
//! # Refusals
//!
//! A refusal is a JSON-RPC error with a stable code and
//! `data: {reason, policy_ids, receipt_id}`:
//!
//! | code | meaning | HTTP |
//! |---|---|---|
//! | -32041 | denied (policy, scanner, budget, pin, limits, an argument or resource outside its constraint: `remit-constraint`) | 200 |
//! | -32042 | held for a human approval; `data.approval_id` | 200 |
//! | -32043 | the remit does not name the tool (`insufficient_scope`, `data.scope`) | 403 |
//! | -32044 | the upstream failed or timed out | 200 |
//! | upstream's | the upstream's own error, message and data scanned and redacted above the holder's class | 200 |
//! | -32045 | the message is over a size or depth limit | 413 / 400 |
//! | -32700 | not JSON, or not UTF-8 | 400 |
//!
//! Missing or invalid credentials are a 401 whose `WWW-Authenticate`
//! challenges (`DPoP`, and `Bearer` when bearer remits are accepted) point
//! at the RFC 9728 metadata (`/.well-known/oauth-protected-resource/mcp/{server}`).
//! Every error body is a JSON-RPC error with an `id` (`null` when unknown).
//! Every refusal of an authenticated caller writes a receipt; refusals of
//! requests without valid credentials are counted (metrics) and summarized
//! in a periodic receipt instead, so anonymous traffic cannot grow the log. A receipt never
//! holds the caller's or the upstream's words: a gateway refusal names its
//! rule (`policy_ids`) and no reason, a policy decision its policies' own
//! reasons; findings are counted by type.

pub mod approvals;
pub mod auth;
pub mod bless;
pub mod cache;
pub mod http;
pub mod jsonrpc;
pub mod origin;
pub mod pins;
pub mod pipeline;
pub mod problem;
pub mod settings;
pub mod upstream;
pub mod wrap;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::{get, post};
use axum::Router;
use remit_ledger::ArgsKey;
use remit_store::Store;
use remit_token::ReplayCache;

use remit_runtime::state::AppState;

/// Proof `jti`s remembered at most (the replay cache refuses when full).
pub const REPLAY_CAPACITY: usize = 100_000;

/// What an operator tunes about the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects in a request.
    pub max_json_depth: usize,
    /// How long an upstream may take to answer one request.
    pub upstream_timeout: Duration,
    /// How long an upstream's tool list is reused before it is asked again.
    pub tools_cache_ttl: Duration,
    /// How long registry rows and usage counters read from the store are
    /// reused (see [`cache`]); zero reads the store on every call.
    pub cache_ttl: Duration,
    /// Allowed clock skew of a DPoP proof's `iat`, seconds.
    pub proof_max_skew_secs: u64,
    /// Whether `Authorization: Bearer <chain>` (no proof of possession) is
    /// accepted at all.
    pub allow_bearer: bool,
    /// Risk points an agent may spend per window.
    pub risk_budget: u32,
    /// The risk window, seconds.
    pub risk_window_secs: u64,
    /// How long a held call waits for a human, seconds.
    pub approval_ttl_secs: u64,
    /// Agents whose calls run in shadow mode.
    pub shadow_agents: BTreeSet<String>,
    /// Servers whose calls run in shadow mode.
    pub shadow_servers: BTreeSet<String>,
    /// Credentials and trust per upstream server id (`[gateway.upstreams]`).
    pub upstreams: BTreeMap<String, Arc<settings::UpstreamSettings>>,
    /// Browser origins allowed besides the public URL's ([`origin`]).
    pub allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            upstream_timeout: Duration::from_secs(30),
            tools_cache_ttl: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(1),
            proof_max_skew_secs: 60,
            allow_bearer: true,
            risk_budget: 20,
            risk_window_secs: 3600,
            approval_ttl_secs: 3600,
            shadow_agents: BTreeSet::new(),
            shadow_servers: BTreeSet::new(),
            upstreams: BTreeMap::new(),
            allowed_origins: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Whether a call by `agent` to `server` runs in shadow mode.
    pub fn shadow(&self, agent: &str, server: &str) -> bool {
        self.shadow_agents.contains(agent) || self.shadow_servers.contains(server)
    }
}

/// Why the gateway runtime could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed: {0}")]
pub struct RuntimeError(String);

/// The gateway's process-wide state: configuration, the DPoP replay cache,
/// the upstream connections, client sessions and the argument-hash key.
#[derive(Debug)]
pub struct GatewayRuntime {
    config: RwLock<Arc<GatewayConfig>>,
    replay: Mutex<ReplayCache>,
    upstreams: upstream::UpstreamPool,
    sessions: Mutex<HashSet<String>>,
    args_key: ArgsKey,
    cache: cache::CallCache,
}

impl GatewayRuntime {
    /// A runtime with `config` and a fresh random argument-hash key.
    pub fn new(config: GatewayConfig) -> Result<Self, RuntimeError> {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).map_err(|e| RuntimeError(e.to_string()))?;
        Ok(Self {
            replay: Mutex::new(ReplayCache::new(
                REPLAY_CAPACITY,
                config.proof_max_skew_secs,
            )),
            upstreams: upstream::UpstreamPool::new(config.upstreams.clone()),
            config: RwLock::new(Arc::new(config)),
            sessions: Mutex::new(HashSet::new()),
            args_key: ArgsKey::new(&secret),
            cache: cache::CallCache::new(),
        })
    }

    /// The configuration calls are decided with now.
    pub fn config(&self) -> Arc<GatewayConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration (calls in flight keep the old one).
    pub fn set_config(&self, config: GatewayConfig) {
        *self.replay.lock().unwrap_or_else(PoisonError::into_inner) =
            ReplayCache::new(REPLAY_CAPACITY, config.proof_max_skew_secs);
        self.upstreams.configure(config.upstreams.clone());
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        self.cache.clear();
    }

    /// Registry rows and usage counters reused across calls.
    pub fn cache(&self) -> &cache::CallCache {
        &self.cache
    }

    /// The DPoP proof replay cache.
    pub fn replay(&self) -> &Mutex<ReplayCache> {
        &self.replay
    }

    /// The upstream connections.
    pub fn upstreams(&self) -> &upstream::UpstreamPool {
        &self.upstreams
    }

    /// The key receipts hash arguments with (arguments are never stored).
    pub fn args_key(&self) -> &ArgsKey {
        &self.args_key
    }

    /// Starts a client session and returns its id.
    pub fn open_session(&self) -> Result<String, RuntimeError> {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|e| RuntimeError(e.to_string()))?;
        let id = hex::encode(bytes);
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone());
        Ok(id)
    }

    /// Whether `id` is a live session.
    pub fn has_session(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// Ends a session; false when it was unknown.
    pub fn close_session(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }
}

/// The gateway as its handlers see it: the application state every
/// service shares (it derefs to it) and the gateway's own runtime. Cheap
/// to clone.
#[derive(Debug)]
pub struct Gateway<S: Store> {
    app: AppState<S>,
    runtime: Arc<GatewayRuntime>,
}

impl<S: Store> Clone for Gateway<S> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            runtime: Arc::clone(&self.runtime),
        }
    }
}

impl<S: Store> Gateway<S> {
    /// A gateway over `app` with `config`. Registry changes made through
    /// `app` make the gateway forget the registry rows it cached.
    pub fn new(app: AppState<S>, config: GatewayConfig) -> Result<Self, RuntimeError> {
        let runtime = Arc::new(GatewayRuntime::new(config)?);
        let cached = Arc::downgrade(&runtime);
        app.on_registry_change(move || {
            if let Some(runtime) = cached.upgrade() {
                runtime.cache().forget_registry();
            }
        });
        Ok(Self { app, runtime })
    }

    /// The gateway's runtime: limits, replay cache, upstreams, sessions.
    pub fn gateway(&self) -> &GatewayRuntime {
        &self.runtime
    }

    /// The application state shared with the control plane.
    pub fn app(&self) -> &AppState<S> {
        &self.app
    }
}

impl<S: Store> Deref for Gateway<S> {
    type Target = AppState<S>;

    fn deref(&self) -> &AppState<S> {
        &self.app
    }
}

impl<S: Store> FromRef<Gateway<S>> for AppState<S> {
    fn from_ref(gateway: &Gateway<S>) -> Self {
        gateway.app.clone()
    }
}

/// The public gateway routes: `/mcp/{server}` and its RFC 9728 metadata.
pub fn routes<S: Store>() -> Router<Gateway<S>> {
    Router::new()
        .route(
            "/mcp/{server}",
            post(http::post::<S>)
                .get(http::get_stream)
                .delete(http::delete::<S>),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp/{server}",
            get(http::resource_metadata::<S>),
        )
}

/// The admin routes the gateway adds: blessing servers, tuning tools,
/// deciding held calls. The caller wraps them in admin authentication.
pub fn admin_routes<S: Store>() -> Router<Gateway<S>> {
    Router::new()
        .route("/v1/servers/{id}/bless", post(bless::bless::<S>))
        .route(
            "/v1/servers/{id}/tools/{tool}",
            get(bless::show_tool::<S>)
                .patch(bless::set_tool::<S>)
                .post(bless::set_tool_post::<S>),
        )
        .route("/v1/approvals", get(approvals::list::<S>))
        .route("/v1/approvals/{id}", get(approvals::show::<S>))
        .route("/v1/approvals/{id}/approve", post(approvals::approve::<S>))
        .route("/v1/approvals/{id}/reject", post(approvals::reject::<S>))
        .route(
            "/v1/gateway/shadow",
            get(approvals::shadow_show::<S>).post(approvals::shadow_set::<S>),
        )
}
