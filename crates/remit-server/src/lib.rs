//! The Remit control plane: an axum application that registers agents and
//! MCP servers, issues remits, revokes them and answers introspection. It
//! serves the MCP gateway's routes beside its own (`remit-gateway`) and
//! builds both on the services of `remit-runtime`.
//!
//! # Model
//!
//! - `remit serve` prepares a data directory ([`setup`]): the issuer key
//!   (signs remits, published at `/.well-known/jwks.json`), the receipt key,
//!   and an admin token shown once and kept only as its SHA-256.
//! - State lives in `remit-store` (SQLite by default, PostgreSQL for
//!   replicas). The server holds no authoritative state in memory: only a
//!   revocation set, kept current by the store's follower, and a cache of
//!   verified chains keyed by the revocation epoch ([`state`]).
//! - The admin API (`/v1/*`, `/oauth/introspect`, `/oauth/revoke`) takes
//!   `Authorization: Bearer <admin token>`, or an ID token from a
//!   configured OpenID Connect issuer whose admin claim matches; receipts
//!   of an identity's changes name it ([`app`], [`oidc`]).
//! - `/v1/remits` mints a root remit for a registered, enabled agent, bound
//!   to the agent's registered key, and records the facts (never the token).
//!   It asks the live policy the `issue` action first and refuses (403,
//!   with the reason, policy ids and a `deny` receipt) anything but an
//!   allow; the remit's signed `policy` claim is the deciding version
//!   ([`remits`]). The policy's entity directory is rebuilt from the
//!   registry after every registry change on this process and every
//!   [`state::POLICY_REFRESH`] on every process, so replicas see agents
//!   registered elsewhere within that period.
//! - `/oauth/token` is RFC 8693 token exchange: a remit chain plus the
//!   actor agent's signed assertion give the actor a narrower remit of its
//!   own with `act` nested; the design (a custody root signed by the
//!   issuer, a child for the actor, revocation propagated through the
//!   store) is in [`exchange`].
//! - Revocations (by jti, subtree, agent, user, tool, key id) are written to
//!   the store and applied to this process's set before the answer leaves;
//!   other replicas follow through NOTIFY (PostgreSQL) or periodic catch-up.
//! - Every mutation (agent register and disable, server and tool add, remit
//!   issue, every new revocation, `/oauth/revoke`) appends one signed
//!   `remit_ledger` receipt, signed with `receipt.jwk`, durably (fsync and a
//!   fresh signed checkpoint) before the answer leaves; the answer carries
//!   its index as `receipt_id` ([`receipts`]). If the append fails the
//!   request answers 500 problem+json: never a success without its receipt.
//!   On SQLite the log is `<data>/log` (`remit audit verify --log` reads
//!   it); on PostgreSQL it is [`StoreReceiptLog`], one sequence in the
//!   database shared by every replica, group-committed. Either way
//!   `remit audit verify --server URL` checks it through the API.
//!
//! # Replicas
//!
//! Several `remit serve` processes may run on one PostgreSQL database. They
//! share keys through **one data directory** (or identical copies of it):
//! `issuer.jwk`, `receipt.jwk`, `note.key`, `admin-token.sha256` and the
//! `policy` folder; everything else is in the database. They must also
//! share one `public_url` (the load balancer's): it is the `iss` of every
//! remit and the issuer each replica verifies against. Revocations reach
//! every replica through NOTIFY plus a periodic catch-up read; registry
//! changes through the policy rebuild timer; receipts go to the shared log
//! (optimistic sequencing on the log head: no fork, no gap).
//!
//! # Threat model
//!
//! | threat | answer |
//! |---|---|
//! | admin token stolen from disk or database | only its SHA-256 is stored; the token is printed once |
//! | timing attack on the admin token | the presented token is hashed and hashes compared in constant time |
//! | private keys in the database | never: keys are 0600 files in a 0700 directory; tokens are not stored either |
//! | an agent registered with a private JWK by mistake | refused (`d` present), with a message saying to keep it private |
//! | an anonymous flood growing the signed log, or a caller's megabyte-long name quoted into receipts and headers | refusals before authentication are counters (`remit_unauthenticated_refusals_total`) and one summary receipt a minute; each peer address has a token bucket (429 with `Retry-After`); caller text is bounded everywhere by [`bounded::caller_text`] (prefix + SHA-256 past 128 bytes, control characters escaped) |
//! | an off-curve, truncated, non-canonical or private-key-bearing JWK | refused with a 400 naming the check, by `remit_token::EcPublicJwk`'s one parser, wherever a JWK enters |
//! | control characters in names and owners | refused with a 400 naming the character ([`registry::label`]) |
//! | a server id that overlaps another's tools (`evil/admin` under a grant `evil/*`) | server ids are `[a-z0-9][a-z0-9_.-]{0,62}` (`remit_store::ServerId`); older ids still list but are not served |
//! | an exchanged remit used to reset its step budget, or a copied chain rebound by exchange | steps are counted across the custody tree (every subject link), and exchange needs a DPoP proof by the subject leaf key |
//! | a server-scoped remit that introspection or RFC 7009 revocation cannot see | both judge every audience the gateway accepts |
//! | oversized or malformed bodies | body limit (64 KiB by default), RFC 9457 problem+json naming what is wrong |
//! | an exchanged remit outliving the chain it was exchanged from | subtree and agent revocations propagate to every custody root derived from the chain, transitively, as ordinary revocations |
//! | a forged or foreign ID token (alg none, HS256 keyed with the public key, wrong iss/aud, expired, unknown kid) | verified by `jsonwebtoken` with the issuer's own keys: RS256/ES256 only, key type fitting the alg, iss/aud/exp/nbf/iat checked ([`oidc`]) |
//! | a replayed actor assertion at `/oauth/token` | its `jti` is stored until its (≤ 5 min) expiry; a second use is refused on every replica |
//! | a revoked remit still honoured | every check consults the revocation set (every link's jti for subtrees, every agent along the chain, user, signing key ids); a cached verification is revalidated against it each time |
//! | a disabled agent's remits | disabling also revokes the agent |
//! | probing which tokens exist via `/oauth/revoke` | 200 whether or not the token was valid (RFC 7009) |
//! | an operator or intruder rewriting the history of changes | each change is a signed, hash-linked receipt under a signed checkpoint; `remit audit verify` names the first altered one |
//! | admin tokens and remits read off the network | `--tls-cert`/`--tls-key` serve HTTPS (rustls, reloaded on change or SIGHUP, [`tls`]); plain HTTP on a non-loopback address is refused unless `--insecure-http` says a proxy terminates TLS |
//! | a leaked or aged issuer key | `remit keys rotate issuer` publishes a new key, signs with it after every watcher has it, and retires the old one after the longest remit lifetime; processes follow the files without a restart, and a retired key stops verifying at once (cached verifications are dropped) |
//! | a change confirmed but not recorded (disk full, crash) | the receipt is synced before the answer; a failed append is a 500, and a torn tail is cut on restart (it was never acknowledged) |
//!
//! Every error on a decision path is a refusal: introspection answers
//! `active: false` for anything that does not verify, is expired or revoked.

pub mod app;
pub mod discovery;
pub mod exchange;
pub mod launch;
pub mod observe;
pub mod openapi;
pub mod rate_limit;
pub mod receipts_api;
pub mod registry;
pub mod remits;
pub mod revocation;
pub mod tls;

pub use remit_gateway as gateway;
pub use remit_gateway::problem;
pub use remit_runtime::{
    anonymous, bounded, metrics, oidc, policy, receipts, setup, start, state, telemetry,
};

pub use app::router;
pub use launch::{serve, FileConfig, ServeError, ServeOptions, StartReport};
pub use policy::{directory_from_registry, PolicyFolder, PolicyFolderError};
pub use problem::Problem;
pub use receipts::{FileReceiptLog, ReceiptLog, ReceiptLogError, StoreReceiptLog};
pub use remit_gateway::{Gateway, GatewayConfig};
pub use start::Database;
pub use state::{AppState, Settings};
