//! Shapes of the JSON bodies the handlers build, for the document only.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// The pattern every identifier (agent, server, tool, jti, user, key id) matches.
pub const ID_PATTERN: &str = "^[A-Za-z0-9.:_@/-]{1,200}$";

/// An RFC 9457 problem document.
#[derive(Debug, ToSchema)]
pub struct Problem {
    /// `urn:remit:problem:<slug>`, stable per kind of problem.
    #[schema(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly went wrong, and how to fix it when the client can.
    pub detail: String,
}

/// How much harm an agent or a tool can do.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RiskTier {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Whether a registered agent or server may be used.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Status {
    /// May be used.
    Active,
    /// May not be used.
    Disabled,
}

/// A destination's clearance (lowercase, as the registry stores it).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Clearance {
    /// May be published.
    Public,
    /// Inside the organisation.
    Internal,
    /// A need-to-know group.
    Confidential,
    /// Named people only.
    Restricted,
}

/// A remit's highest data classification (uppercase, as in the token).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Classification {
    /// May be published.
    Public,
    /// Inside the organisation.
    Internal,
    /// A need-to-know group.
    Confidential,
    /// Named people only.
    Restricted,
}

/// What a revocation is keyed by.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RevocationKind {
    /// Exactly one remit.
    Jti,
    /// A remit and every remit delegated from it.
    Subtree,
    /// Every remit held by an agent.
    Agent,
    /// Every remit acting for a user.
    Sub,
    /// Every call to a tool.
    Tool,
    /// Everything signed by a key.
    Kid,
}

/// The only grant type.
#[derive(Debug, ToSchema)]
pub enum GrantType {
    /// Permission to call tools.
    #[schema(rename = "remit_tool")]
    RemitTool,
}

/// One RFC 9396 `authorization_details` entry of type `remit_tool`.
#[derive(Debug, ToSchema)]
pub struct Grant {
    /// Always `remit_tool`.
    #[schema(rename = "type")]
    pub kind: GrantType,
    /// Tool names or globs (`fs.read`, `github.*`), 1 to 64.
    #[schema(min_items = 1, max_items = 64)]
    pub tools: Vec<String>,
    /// Resource globs; unrestricted when absent.
    #[schema(max_items = 64)]
    pub resources: Option<Vec<String>>,
    /// Allowed actions; unrestricted when absent.
    #[schema(max_items = 64)]
    pub actions: Option<Vec<String>>,
    /// Constraints on named arguments (`{"path": {"prefix": "/tmp/"}}`).
    pub args: Option<BTreeMap<String, Value>>,
}

/// A registered agent.
#[derive(Debug, ToSchema)]
pub struct Agent {
    /// Its identifier.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// Its public P-256 key as a JWK.
    #[schema(value_type = Object)]
    pub public_jwk: Value,
    /// RFC 7638 thumbprint of that key.
    pub key_thumbprint: String,
    /// Who is accountable for it.
    pub owner: String,
    /// Its risk tier.
    pub risk_tier: RiskTier,
    /// Whether it may act.
    pub status: Status,
    /// When it was registered (Unix seconds).
    pub created_at: i64,
    /// When it last changed (Unix seconds).
    pub updated_at: i64,
    /// Index of the receipt of this change (mutations only).
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
    /// Revocation epoch after disabling (disable only).
    #[schema(nullable = false)]
    pub revocation_epoch: Option<i64>,
}

/// `GET /v1/agents`.
#[derive(Debug, ToSchema)]
pub struct AgentList {
    /// Every registered agent.
    pub agents: Vec<Agent>,
}

/// A blessed MCP server.
#[derive(Debug, ToSchema)]
pub struct McpServer {
    /// Its identifier.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// Where the gateway forwards calls.
    pub url: String,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
    /// Whether calls may reach it.
    pub status: Status,
    /// When it was added (Unix seconds).
    pub created_at: i64,
    /// When it last changed (Unix seconds).
    pub updated_at: i64,
    /// Index of the receipt of this change (mutations only).
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/servers`.
#[derive(Debug, ToSchema)]
pub struct McpServerList {
    /// Every blessed server.
    pub servers: Vec<McpServer>,
}

/// A tool of a blessed server.
#[derive(Debug, ToSchema)]
pub struct Tool {
    /// The server it belongs to.
    pub server: String,
    /// Its name.
    pub name: String,
    /// How much harm a call can do.
    pub risk: RiskTier,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
    /// SHA-256 (hex) of the reviewed description.
    pub description_sha256: String,
    /// When it was added (Unix seconds).
    pub created_at: i64,
    /// The argument whose value is a call's resource, if any.
    pub resource_arg: Option<String>,
    /// Index of the receipt of this change (mutations only).
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/servers/{id}/tools`.
#[derive(Debug, ToSchema)]
pub struct ToolList {
    /// The server's pinned tools.
    pub tools: Vec<Tool>,
}

/// `POST /v1/remits`: the token, shown once, and facts about it.
#[derive(Debug, ToSchema)]
pub struct IssuedRemit {
    /// The remit, JWS compact (`typ` `remit+jwt`).
    pub remit: String,
    /// Its token id.
    pub jti: String,
    /// The user it acts for.
    pub sub: String,
    /// The agent that holds it.
    pub agent: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Thumbprint of the holder key (`cnf.jkt`).
    pub holder: String,
    /// Always `remit+jwt`.
    pub token_type: String,
    /// Index of the issue receipt.
    pub receipt_id: u64,
}

/// A revocation.
#[derive(Debug, ToSchema)]
pub struct Revocation {
    /// What it is keyed by.
    pub kind: RevocationKind,
    /// The jti, agent, user, tool or key id.
    pub value: String,
    /// Its position in the revocation sequence.
    pub epoch: i64,
    /// Why, in words.
    pub reason: String,
    /// Who revoked.
    pub revoked_by: String,
    /// When (Unix seconds).
    pub revoked_at: i64,
    /// Whether this request revoked it (`POST` only).
    #[schema(nullable = false)]
    pub newly_revoked: Option<bool>,
    /// How many exchanged remits were revoked with it, in the same
    /// transaction, because it reaches their subject chains (`POST` only).
    #[schema(nullable = false)]
    pub propagated: Option<u64>,
    /// Index of the revoke receipt (when newly revoked).
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/revocations`.
#[derive(Debug, ToSchema)]
pub struct RevocationList {
    /// This process's revocation epoch.
    pub epoch: i64,
    /// Every revocation, in epoch order.
    pub revocations: Vec<Revocation>,
}

/// RFC 7662 introspection answer: `active: false` alone for anything
/// that does not verify, is expired or revoked.
#[derive(Debug, ToSchema)]
pub struct Introspection {
    /// Whether the chain verifies now and nothing in it is revoked.
    pub active: bool,
    /// `remit+jwt`.
    #[schema(nullable = false)]
    pub token_type: Option<String>,
    /// The root's issuer.
    #[schema(nullable = false)]
    pub iss: Option<String>,
    /// The user the chain acts for.
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// The audience.
    #[schema(nullable = false)]
    pub aud: Option<String>,
    /// Issued at.
    #[schema(nullable = false)]
    pub iat: Option<u64>,
    /// Not before.
    #[schema(nullable = false)]
    pub nbf: Option<u64>,
    /// Expiry.
    #[schema(nullable = false)]
    pub exp: Option<u64>,
    /// The leaf's token id.
    #[schema(nullable = false)]
    pub jti: Option<String>,
    /// The root's token id.
    #[schema(nullable = false)]
    pub root: Option<String>,
    /// The acting agent (nested `act` for delegations).
    #[schema(value_type = Option<Object>, nullable = false)]
    pub act: Option<Value>,
    /// The holder key confirmation (`jkt`).
    #[schema(value_type = Option<Object>, nullable = false)]
    pub cnf: Option<Value>,
    /// The effective grants.
    #[schema(nullable = false)]
    pub authorization_details: Option<Vec<Grant>>,
    /// Highest classification.
    #[schema(nullable = false)]
    pub class: Option<Classification>,
    /// Tool calls allowed, when limited.
    pub max_steps: Option<u64>,
    /// Delegation depth of the leaf.
    #[schema(nullable = false)]
    pub depth: Option<u32>,
    /// Number of links in the chain.
    #[schema(nullable = false)]
    pub links: Option<u32>,
}

/// RFC 7009 revocation answer (empty unless something was revoked now).
#[derive(Debug, ToSchema)]
pub struct OAuthRevoked {
    /// Index of the revoke receipt, when this request revoked the remit.
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/receipts`: raw signed leaves.
#[derive(Debug, ToSchema)]
pub struct ReceiptPage {
    /// Index of the first leaf returned.
    pub from: u64,
    /// Leaves in the log.
    pub size: u64,
    /// Canonical JSON `{"receipt":..,"sig":..}` of each leaf, byte for byte.
    pub leaves: Vec<String>,
}

/// `GET /v1/checkpoints/latest`.
#[derive(Debug, ToSchema)]
pub struct LatestCheckpoint {
    /// The signed tree head (C2SP signed note text).
    pub checkpoint: String,
    /// The note verifier key the checkpoint is signed with.
    pub note_verifier: String,
    /// The receipt signing key, as a JWKS.
    #[schema(value_type = Object)]
    pub receipt_jwks: Value,
}

/// `GET /healthz`.
#[derive(Debug, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// `GET /readyz`.
#[derive(Debug, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// This process's revocation epoch.
    pub revocation_epoch: i64,
}

/// A JSON Web Key Set.
#[derive(Debug, ToSchema)]
pub struct Jwks {
    /// The public keys.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Value>,
}

/// The RFC 8693 grant type, the only one `/oauth/token` accepts.
#[derive(Debug, ToSchema)]
pub enum TokenExchangeGrant {
    /// Token exchange.
    #[schema(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

/// What a `subject_token` is.
#[derive(Debug, ToSchema)]
pub enum SubjectTokenType {
    /// A remit chain (`root~...~leaf`).
    #[schema(rename = "urn:remit:params:oauth:token-type:remit")]
    Remit,
    /// A remit chain, named as a JWT.
    #[schema(rename = "urn:ietf:params:oauth:token-type:jwt")]
    Jwt,
    /// An OpenID Connect ID token from a configured issuer.
    #[schema(rename = "urn:ietf:params:oauth:token-type:id_token")]
    IdToken,
}

/// What an `actor_token` is: always a JWT (the agent's assertion).
#[derive(Debug, ToSchema)]
pub enum ActorTokenType {
    /// A JWT.
    #[schema(rename = "urn:ietf:params:oauth:token-type:jwt")]
    Jwt,
}

/// The token type `/oauth/token` issues.
#[derive(Debug, ToSchema)]
pub enum RemitTokenType {
    /// A remit chain.
    #[schema(rename = "urn:remit:params:oauth:token-type:remit")]
    Remit,
}

/// The form of `POST /oauth/token` (RFC 8693 §2.1), sent as
/// `application/x-www-form-urlencoded`, each parameter at most once.
#[derive(Debug, ToSchema)]
pub struct TokenExchangeForm {
    /// The RFC 8693 grant type.
    pub grant_type: TokenExchangeGrant,
    /// The remit chain the actor acts under, or an ID token.
    #[schema(min_length = 1)]
    pub subject_token: String,
    /// What `subject_token` is.
    pub subject_token_type: SubjectTokenType,
    /// The actor's assertion: a compact ES256 JWS signed by its
    /// registered key (`iss` = `sub` = agent id, `aud` = this server,
    /// `exp` at most 300 s ahead, a `jti` used once).
    #[schema(min_length = 1)]
    pub actor_token: String,
    /// Always the JWT token type.
    pub actor_token_type: ActorTokenType,
    /// RFC 9396 grants asked for: a JSON array of `remit_tool` grants, as text.
    #[schema(min_length = 1)]
    pub authorization_details: String,
    /// The token type wanted; only a remit can be issued.
    #[schema(nullable = false)]
    pub requested_token_type: Option<RemitTokenType>,
    /// Must be this server's audience when given.
    #[schema(nullable = false)]
    pub audience: Option<String>,
    /// Must be this server's audience when given.
    #[schema(nullable = false)]
    pub resource: Option<String>,
}

/// `POST /oauth/token` success (RFC 8693 §2.2.1).
#[derive(Debug, ToSchema)]
pub struct TokenExchanged {
    /// The issued chain text (`custody root~actor remit`, or one root
    /// remit for an ID-token subject).
    pub access_token: String,
    /// The remit token type.
    pub issued_token_type: RemitTokenType,
    /// `N_A`: a remit is used with a proof of possession, never as a bearer token.
    pub token_type: String,
    /// Seconds until the issued remit expires.
    pub expires_in: u64,
    /// The grants the issued remit carries.
    pub authorization_details: Vec<Grant>,
    /// The leaf's token id.
    pub jti: String,
    /// The root's token id.
    pub root: String,
    /// The user (ID-token subjects only).
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// The acting agent, with nested `act` for a delegation.
    #[schema(value_type = Object)]
    pub act: Value,
    /// The policy version the decision was made with.
    pub policy: Option<String>,
    /// Index of the `delegate` (or `issue`) receipt.
    pub receipt_id: u64,
}

/// An RFC 6749 §5.2 error code of `/oauth/token`.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated or malformed, or the body is not a form.
    InvalidRequest,
    /// The subject or actor token is invalid, expired, revoked or
    /// replayed, or the policy refused.
    InvalidGrant,
    /// `audience` or `resource` names another server.
    InvalidTarget,
    /// The requested grants are malformed or wider than the subject's (RFC 9396).
    InvalidAuthorizationDetails,
    /// `grant_type` is not token exchange.
    UnsupportedGrantType,
    /// The server failed (HTTP 500); details are in its log.
    ServerError,
}

/// An RFC 6749 §5.2 error answer (`application/json`, not a problem document).
#[derive(Debug, ToSchema)]
pub struct OAuthError {
    /// The error code.
    pub error: OAuthErrorCode,
    /// What went wrong, in words.
    pub error_description: String,
    /// For a policy refusal: `policy-denied` or `policy-escalated`.
    #[schema(nullable = false)]
    pub remit_reason: Option<String>,
    /// For a policy refusal: the policies that decided.
    #[schema(nullable = false)]
    pub policy_ids: Option<Vec<String>>,
    /// For a policy refusal: the policy version.
    #[schema(nullable = false)]
    pub policy_version: Option<String>,
}

/// RFC 9728 protected resource metadata of one MCP server behind the gateway.
#[derive(Debug, ToSchema)]
pub struct ProtectedResourceMetadata {
    /// The resource: `<public URL>/mcp/<server>` (the audience its remits name).
    pub resource: String,
    /// This server.
    pub authorization_servers: Vec<String>,
    /// `header`.
    pub bearer_methods_supported: Vec<String>,
    /// `ES256`.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether a DPoP proof is required (bearer use switched off).
    pub dpop_bound_access_tokens_required: bool,
    /// A name for people.
    pub resource_name: String,
}

/// A tool pinned by a bless, and whether its pin changed.
#[derive(Debug, ToSchema)]
pub struct BlessedTool {
    /// The server it belongs to.
    pub server: String,
    /// Its name.
    pub name: String,
    /// How much harm a call can do.
    pub risk: RiskTier,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
    /// SHA-256 (hex) of the description and input schema now pinned.
    pub description_sha256: String,
    /// When it was first pinned (Unix seconds).
    pub created_at: i64,
    /// The argument whose value is a call's resource, if any (a new
    /// tool's first `path`, `uri`, `url` or `file` string argument).
    pub resource_arg: Option<String>,
    /// Index of the receipt of this pin.
    pub receipt_id: u64,
    /// Whether an earlier, different pin was replaced.
    pub repinned: bool,
}

/// `POST /v1/servers/{id}/bless`.
#[derive(Debug, ToSchema)]
pub struct Blessed {
    /// The server.
    pub server: String,
    /// The tools pinned now.
    pub tools: Vec<BlessedTool>,
    /// How many listed tools were not pinned because their name is not
    /// an MCP tool name (1-128 of `A-Za-z0-9_.-`).
    pub refused_names: u32,
}

/// Where a held call stands.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for a human.
    Pending,
    /// Approved: the same call may run once.
    Approved,
    /// Rejected.
    Rejected,
}

/// A call held for a human decision.
#[derive(Debug, ToSchema)]
pub struct Approval {
    /// Its identifier.
    pub id: String,
    /// The agent that made the call.
    pub agent: String,
    /// The remit it presented.
    pub remit_jti: String,
    /// `<server>/<tool>`.
    pub tool: String,
    /// SHA-256 (hex) of the canonical call it releases.
    pub call_hash: String,
    /// What the human is shown.
    pub summary: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it was held (Unix seconds).
    pub requested_at: i64,
    /// When it stops being usable (Unix seconds).
    pub expires_at: i64,
    /// Who decided: the OIDC user for an ID-token admin, else the
    /// body's `by` or `admin`.
    pub decided_by: Option<String>,
    /// When it was decided (Unix seconds).
    pub decided_at: Option<i64>,
    /// When the approved call was released (once).
    pub consumed_at: Option<i64>,
    /// Index of the approve or reject receipt (decisions only).
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/approvals`.
#[derive(Debug, ToSchema)]
pub struct ApprovalList {
    /// Pending approvals, oldest first.
    pub approvals: Vec<Approval>,
}

/// Who runs in shadow mode in this process.
#[derive(Debug, ToSchema)]
pub struct ShadowState {
    /// Agents in shadow mode.
    pub agents: Vec<String>,
    /// Servers in shadow mode.
    pub servers: Vec<String>,
}

/// RFC 8414 authorization server metadata.
#[derive(Debug, ToSchema)]
pub struct ServerMetadata {
    /// The issuer (this server's public URL).
    pub issuer: String,
    /// Where the issuer keys are published.
    pub jwks_uri: String,
    /// RFC 7662 endpoint.
    pub introspection_endpoint: String,
    /// RFC 7009 endpoint.
    pub revocation_endpoint: String,
    /// `bearer`.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `bearer`.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// `remit_tool`.
    pub authorization_details_types_supported: Vec<String>,
    /// `ES256`.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Empty: this server has no authorization endpoint.
    pub response_types_supported: Vec<String>,
    /// The RFC 8693 token exchange endpoint.
    pub token_endpoint: String,
    /// The token exchange grant type.
    pub grant_types_supported: Vec<String>,
    /// `none`: the actor authenticates with its assertion, not as a client.
    pub token_endpoint_auth_methods_supported: Vec<String>,
}
