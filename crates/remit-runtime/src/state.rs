//! What every request handler shares: the store, the issuer key, the
//! revocation set, the chain cache and the settings.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::receipts::ReceiptLog;
use remit_policy::{Directory, PolicyEngine, Preset};
use remit_scan::{ScanConfig, Scanner};
use remit_store::{RemitFacts, RevocationFollower, RevocationTarget, SharedRevocations, Store};
use remit_token::{
    ChainCache, ChainError, EcdsaP256Signer, Jwks, Signer as _, UnverifiedChain, VerifiedChain,
    VerifyOptions,
};

/// How often the revocation follower re-reads the store even without a signal.
pub const REVOCATION_POLL: Duration = Duration::from_secs(2);
/// How often every process rebuilds its policy entity directory from the
/// store, so a replica sees agents and tools registered on another one.
pub const POLICY_REFRESH: Duration = Duration::from_secs(5);

/// Most receipts of refused, parsed credentials a process writes a minute
/// ([`AppState::take_refused_credential_receipt`]).
pub const REFUSED_CREDENTIAL_RECEIPTS_PER_MINUTE: u64 = 600;
/// Verified chains kept in memory.
pub const CHAIN_CACHE_CAPACITY: usize = 4096;

/// Settings that shape what the server issues and accepts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's public base URL: the `iss` of every remit it mints and
    /// the RFC 8414 `issuer`.
    pub public_url: String,
    /// The audience remits are minted for and verified against.
    pub audience: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of a remit when the request names none, seconds.
    pub default_ttl_secs: u64,
    /// Whether `/metrics` needs the admin token (`REMIT_METRICS_AUTH=admin`);
    /// open by default.
    pub metrics_require_admin: bool,
    /// Trusted OpenID Connect issuers (none by default): ID tokens for
    /// `/oauth/token` and admin identities ([`crate::oidc`]).
    pub oidc: Arc<crate::oidc::OidcVerifier>,
    /// The per-peer bucket for requests refused before authentication.
    pub unauthenticated: crate::anonymous::Limits,
}

impl Settings {
    /// Defaults for a server reachable at `public_url`.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            audience: "remit".into(),
            max_body_bytes: 64 * 1024,
            default_ttl_secs: 600,
            metrics_require_admin: false,
            oidc: Arc::default(),
            unauthenticated: crate::anonymous::Limits::default(),
        }
    }
}

/// The issuer key as this process holds it.
///
/// `remit serve` mints remits and holds the private half; `remit wrap`
/// only verifies them and holds the public JWKS, so a host that runs a wrap
/// (an agent's machine, another server on a shared PostgreSQL) never has a
/// key that could mint itself a wider remit.
#[derive(Debug)]
pub enum IssuerKey {
    /// The private key: remits are minted and verified here.
    Signing(EcdsaP256Signer),
    /// Only the published keys: remits are verified here, never minted.
    Verifying(IssuerJwks),
}

impl From<EcdsaP256Signer> for IssuerKey {
    fn from(signer: EcdsaP256Signer) -> Self {
        Self::Signing(signer)
    }
}

/// The issuer's published keys (what `/.well-known/jwks.json` serves), read
/// from a JWKS document with at least one key.
#[derive(Debug)]
pub struct IssuerJwks {
    jwks: Jwks,
    document: serde_json::Value,
}

/// Why a JWKS document cannot verify remits.
#[derive(Debug, thiserror::Error)]
pub enum IssuerJwksError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The text is not a JWKS of P-256 keys with `kid`s.
    #[error("not a JWKS of P-256 keys: {0}")]
    Invalid(#[from] remit_token::JwksError),
    /// The document has no key.
    #[error("the JWKS has no key")]
    Empty,
    /// The key remits are minted with is not among the published keys.
    #[error("the issuer key {0:?} is not in the JWKS: publish it before minting with it")]
    SignerNotPublished(String),
}

impl IssuerJwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_json(text: &str) -> Result<Self, IssuerJwksError> {
        let document = serde_json::from_str(text)?;
        let jwks = Jwks::from_json(text)?;
        if jwks.is_empty() {
            return Err(IssuerJwksError::Empty);
        }
        Ok(Self { jwks, document })
    }

    /// The JWKS document of `signer`'s public key alone.
    pub fn of(signer: &EcdsaP256Signer) -> Result<Self, IssuerJwksError> {
        Self::from_json(&published_jwks(signer).to_string())
    }

    /// Whether `kid` is among the keys.
    pub fn contains(&self, kid: &str) -> bool {
        self.jwks.get(kid).is_some()
    }

    /// The document as published.
    pub fn document(&self) -> &serde_json::Value {
        &self.document
    }
}

pub use crate::setup::published_jwks;

/// Asked to mint where only the issuer's public key is held.
#[derive(Debug, thiserror::Error)]
#[error("this process holds only the issuer's public key and cannot mint remits (remits are minted by `remit serve`)")]
pub struct NoIssuerKey;

/// Shared state of one server process. Cheap to clone.
#[derive(Debug)]
pub struct AppState<S: Store> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct Inner<S> {
    store: S,
    /// Swapped by a key rotation ([`AppState::set_issuer_keys`]).
    issuer: RwLock<Option<Arc<EcdsaP256Signer>>>,
    keys: RwLock<Arc<IssuerJwks>>,
    admin_hash: [u8; 32],
    follower: RevocationFollower,
    cache: Mutex<ChainCache>,
    settings: Settings,
    receipts: Arc<dyn ReceiptLog>,
    policy: RwLock<Arc<dyn PolicyEngine>>,
    policy_folder: RwLock<Option<crate::policy::PolicyFolder>>,
    policy_rebuild: tokio::sync::Mutex<()>,
    chains: Mutex<crate::receipts::chains::ChainBook>,
    /// Receipts of refused credentials this minute: (minute, count).
    refused_receipts: Mutex<(u64, u64)>,
    scanner: Scanner,
    scoped_cache: Mutex<ChainCache>,
    registry_listeners: RegistryListeners,
    refusals: crate::anonymous::Refusals,
}

/// What runs after every registry change this process makes (see
/// [`AppState::on_registry_change`]).
#[derive(Default)]
struct RegistryListeners(RwLock<Vec<Box<dyn Fn() + Send + Sync>>>);

impl std::fmt::Debug for RegistryListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.read().map_or(0, |l| l.len());
        write!(f, "RegistryListeners({count})")
    }
}

/// Why the policy engine could not be rebuilt over the registry.
#[derive(Debug, thiserror::Error)]
pub enum PolicyRebuildError {
    /// The registry could not be read.
    #[error("reading the registry for the policy: {0}")]
    Store(#[from] remit_store::StoreError),
    /// The policies do not load over the new directory.
    #[error(transparent)]
    Load(#[from] crate::policy::PolicyFolderError),
}

/// Why a chain is not active.
#[derive(Debug, thiserror::Error)]
pub enum Inactive {
    /// It does not verify (signature, chain rule, expiry, audience, ...).
    #[error("the chain does not verify: {0}")]
    Invalid(#[from] ChainError),
    /// Something it depends on was revoked.
    #[error("revoked: {} {}", .0.kind, .0.value)]
    Revoked(RevocationTarget),
}

impl<S: Store> AppState<S> {
    /// Builds the state and starts following revocations in the store.
    /// With [`IssuerKey::Verifying`] the state verifies remits but refuses
    /// to mint ([`NoIssuerKey`]).
    pub async fn new(
        store: S,
        issuer: impl Into<IssuerKey>,
        admin_hash: [u8; 32],
        settings: Settings,
        receipts: Arc<dyn ReceiptLog>,
    ) -> Result<Self, remit_store::StoreError> {
        let follower = RevocationFollower::start(store.clone(), REVOCATION_POLL).await?;
        let (issuer, keys) = match issuer.into() {
            IssuerKey::Signing(signer) => {
                let keys =
                    IssuerJwks::of(&signer).map_err(|e| remit_store::StoreError::Corrupt {
                        what: "issuer key",
                        detail: e.to_string(),
                    })?;
                (Some(Arc::new(signer)), keys)
            }
            IssuerKey::Verifying(keys) => (None, keys),
        };
        let policy = crate::policy::builtin_standard(Directory::default()).map_err(|e| {
            remit_store::StoreError::Corrupt {
                what: "built-in standard preset",
                detail: e.to_string(),
            }
        })?;
        let state = Self {
            inner: Arc::new(Inner {
                store,
                issuer: RwLock::new(issuer),
                keys: RwLock::new(Arc::new(keys)),
                admin_hash,
                follower,
                cache: Mutex::new(ChainCache::new(CHAIN_CACHE_CAPACITY)),
                refusals: crate::anonymous::Refusals::new(settings.unauthenticated),
                settings,
                receipts,
                policy: RwLock::new(Arc::from(policy)),
                policy_folder: RwLock::new(None),
                policy_rebuild: tokio::sync::Mutex::new(()),
                chains: Mutex::new(crate::receipts::chains::ChainBook::new()),
                refused_receipts: Mutex::new((0, 0)),
                scanner: Scanner::new(ScanConfig::default()),
                scoped_cache: Mutex::new(ChainCache::new(CHAIN_CACHE_CAPACITY)),
                registry_listeners: RegistryListeners::default(),
            }),
        };
        state.repair_propagation().await?;
        Ok(state)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The key remits are minted with; its `kid` is the one every root
    /// remit minted here names. A state built with only the public JWKS
    /// (`remit wrap`) has none.
    pub fn issuer(&self) -> Result<Arc<EcdsaP256Signer>, NoIssuerKey> {
        self.inner
            .issuer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(NoIssuerKey)
    }

    /// The published JWKS document.
    pub fn jwks_document(&self) -> serde_json::Value {
        self.issuer_keys().document.clone()
    }

    /// The keys remits are verified with.
    pub fn issuer_keys(&self) -> Arc<IssuerJwks> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the issuer keys (a key rotation, seen without a restart):
    /// remits verify against `published` and, when `signer` is given, are
    /// minted with it from now on (`None` keeps what this state mints
    /// with). Refuses a signer whose key is not published. Cached
    /// verifications are dropped, so a retired key stops verifying at once.
    pub fn set_issuer_keys(
        &self,
        signer: Option<EcdsaP256Signer>,
        published: IssuerJwks,
    ) -> Result<(), IssuerJwksError> {
        if let Some(signer) = &signer {
            if !published.contains(signer.key_id()) {
                return Err(IssuerJwksError::SignerNotPublished(
                    signer.key_id().to_owned(),
                ));
            }
        }
        let mut issuer = self
            .inner
            .issuer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = issuer.as_ref() {
            if signer.is_none() && !published.contains(current.key_id()) {
                return Err(IssuerJwksError::SignerNotPublished(
                    current.key_id().to_owned(),
                ));
            }
        }
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(published);
        if let Some(signer) = signer {
            *issuer = Some(Arc::new(signer));
        }
        drop(issuer);
        for cache in [&self.inner.cache, &self.inner.scoped_cache] {
            *cache.lock().unwrap_or_else(PoisonError::into_inner) =
                ChainCache::new(CHAIN_CACHE_CAPACITY);
        }
        Ok(())
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The receipt log.
    pub fn receipts(&self) -> &Arc<dyn ReceiptLog> {
        &self.inner.receipts
    }

    /// Durably appends a receipt and returns its index. A failure is a 500
    /// for the whole request: a mutation never answers success without its
    /// receipt.
    pub async fn record(&self, event: remit_ledger::Event) -> Result<u64, RecordError> {
        self.submit(event)?.durable().await
    }

    /// Starts appending a receipt without waiting for it to be durable, so
    /// the caller can overlap the log's sync with other work; the answer
    /// that names the receipt must wait for [`PendingReceipt::durable`].
    pub fn submit(&self, mut event: remit_ledger::Event) -> Result<PendingReceipt, RecordError> {
        crate::oidc::attribute_to_admin_identity(&mut event);
        crate::metrics::decided(&event);
        let started = std::time::Instant::now();
        let gauge = crate::metrics::PendingReceiptGauge::start();
        match crate::receipts::submit(&self.inner.receipts, event) {
            Ok(durable) => Ok(PendingReceipt {
                durable,
                started,
                _gauge: gauge,
            }),
            Err(error) => {
                crate::metrics::receipt_append(started.elapsed().as_secs_f64(), false);
                Err(record_failed(error))
            }
        }
    }

    /// The policy engine decisions are asked of now. Until [`Self::set_policy`]
    /// is called this is the built-in `standard` preset (Cedar) over an empty
    /// directory, which denies every request naming an unknown entity.
    pub fn policy(&self) -> Arc<dyn PolicyEngine> {
        Arc::clone(
            &self
                .inner
                .policy
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The version of the policy decisions are asked of now, as receipts
    /// record it (`sha256:<hex>`, the hash of the policy folder's files:
    /// [`remit_policy::PolicyVersion::of_files`]). A refusal made before
    /// the policy was asked (authentication, the remit's grant, the scan)
    /// records this, so every decision names the policy in force.
    pub fn policy_version(&self) -> String {
        self.policy().version().to_string()
    }

    /// The reference receipts record for the delegation chain `links`
    /// (root first, expiring at `exp`, Unix seconds), recording the chain
    /// in the log once: now, when it was presented bound to its holder's
    /// key at a gateway that refuses bearer use; after it expired
    /// otherwise ([`crate::receipts::chains`]). The record is durable
    /// before this returns, so the receipts that name it follow it.
    pub async fn chain_reference(
        &self,
        links: &[&str],
        exp: u64,
        presented: crate::receipts::chains::Presented,
    ) -> Result<remit_ledger::ChainRef, RecordError> {
        let (reference, record) = self
            .inner
            .chains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(links, exp, presented, now_ms());
        if let Some(record) = record {
            self.record(record).await?;
        }
        Ok(reference)
    }

    /// Whether a refused credential that parsed (expired, forged, wrong
    /// key, revoked) may have its own receipt now: at most
    /// [`REFUSED_CREDENTIAL_RECEIPTS_PER_MINUTE`] a minute per process, so
    /// forged chains (which anyone can make) cannot flood the log; past
    /// that they are only counted, as unparsed credentials are.
    pub fn take_refused_credential_receipt(&self) -> bool {
        let minute = now() / 60;
        let mut slot = self
            .inner
            .refused_receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 += 1;
        slot.1 <= REFUSED_CREDENTIAL_RECEIPTS_PER_MINUTE
    }

    /// Records the held-back chains that have expired (run periodically).
    pub async fn record_expired_chains(&self) {
        let due = self
            .inner
            .chains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .due(now(), now_ms());
        for record in due {
            if let Err(problem) = self.record(record).await {
                tracing::error!(error = %problem, "recording an expired delegation chain");
            }
        }
    }

    /// Replaces the policy engine (a new folder, or a registry change that
    /// rebuilt the entity directory). Requests in flight keep the engine
    /// they started with.
    pub fn set_policy(&self, engine: Box<dyn PolicyEngine>) {
        *self
            .inner
            .policy
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(engine);
    }

    /// Sets the policy folder decisions are loaded from; the next
    /// [`Self::rebuild_policy`] loads it over the registry's entities.
    pub fn set_policy_folder(&self, folder: crate::policy::PolicyFolder) {
        *self
            .inner
            .policy_folder
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(folder);
    }

    /// The preset the policy folder started from (`None`: no folder, the
    /// built-in `standard` preset); the gateway's metadata reads it.
    pub fn policy_preset(&self) -> Option<Preset> {
        self.inner
            .policy_folder
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|folder| folder.manifest().preset)
    }

    /// Rebuilds the policy engine over the registry as it is now: the
    /// folder set by [`Self::set_policy_folder`] (or the built-in `standard`
    /// preset without one) with the entity directory read from the store.
    ///
    /// Called after every registry mutation on this process and on a timer
    /// ([`POLICY_REFRESH`]) so replicas notice changes made elsewhere.
    /// Rebuilds are serialized, so a slow rebuild never overwrites a newer
    /// one; an unchanged directory keeps the current engine. Returns whether
    /// the engine was replaced.
    pub async fn rebuild_policy(&self) -> Result<bool, PolicyRebuildError> {
        let _one_at_a_time = self.inner.policy_rebuild.lock().await;
        let directory = crate::policy::directory_from_registry(self.store()).await?;
        if self.policy().directory() == &directory {
            return Ok(false);
        }
        let folder = self
            .inner
            .policy_folder
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let engine = match folder {
            Some(folder) => folder.load(None, directory)?,
            None => crate::policy::builtin_standard(directory)?,
        };
        self.set_policy(engine);
        Ok(true)
    }

    /// [`Self::rebuild_policy`] after a registry mutation that has already
    /// been answered for: a failure is logged, not returned, and the engine
    /// in place (which does not know the new entity, so denies it) stays
    /// until the next timer rebuild.
    pub async fn registry_changed(&self) {
        self.notify_registry_change();
        if let Err(error) = self.rebuild_policy().await {
            tracing::error!(%error, "rebuilding the policy after a registry change failed");
        }
    }

    /// The PII and secret scanner.
    pub fn scanner(&self) -> &Scanner {
        &self.inner.scanner
    }

    /// SHA-256 of the admin token.
    pub fn admin_hash(&self) -> &[u8; 32] {
        &self.inner.admin_hash
    }

    /// The revocation set this process decides with.
    pub fn revocations(&self) -> &SharedRevocations {
        self.inner.follower.revocations()
    }

    /// Brings the revocation set up to date now (after a local revoke, so
    /// this process never answers from a set older than its own write).
    /// Propagation to exchanged remits needs nothing here: the store writes
    /// it in the revocation's own transaction.
    pub async fn refresh_revocations(&self) -> Result<(), remit_store::StoreError> {
        self.revocations().catch_up(self.store()).await?;
        Ok(())
    }

    /// Records a `revoke` receipt for each revocation the store propagated
    /// to an exchanged remit. A receipt that cannot be written is logged:
    /// the revocation itself, a tightening, stands.
    pub async fn record_propagated(&self, propagated: &[remit_store::Revocation]) {
        for revocation in propagated {
            let kind = revocation.target.kind.to_string();
            crate::metrics::revocation(&kind);
            let event = crate::receipts::events::revoked_at_epoch(
                &kind,
                revocation.target.value.as_str(),
                revocation.epoch,
                now_ms(),
            );
            if let Err(problem) = self.record(event).await {
                tracing::error!(
                    error = %problem,
                    "receipt of a propagated revocation"
                );
            }
        }
    }

    /// Writes any propagation to exchanged remits that is missing from the
    /// store (left by an older Remit that crashed between a revocation and
    /// its propagation), with receipts, and refreshes the set. Runs at
    /// start and on the periodic refresh; one read when nothing is missing.
    pub async fn repair_propagation(&self) -> Result<usize, remit_store::StoreError> {
        let stamp = i64::try_from(now()).unwrap_or(i64::MAX);
        let written = self.store().repair_propagation(stamp).await?;
        if !written.is_empty() {
            tracing::warn!(
                count = written.len(),
                "revoked exchanged remits whose propagation was missing"
            );
            self.refresh_revocations().await?;
            self.record_propagated(&written).await;
        }
        Ok(written.len())
    }

    /// Verification options at `now`: this server's audience and issuer.
    pub fn verify_options(&self, now: u64) -> VerifyOptions {
        let mut options = VerifyOptions::new(now);
        options.audience.clone_from(&self.inner.settings.audience);
        options.issuer = Some(self.inner.settings.public_url.clone());
        options
    }

    /// Verifies chain text and checks it against the revocation set.
    ///
    /// Verified chains are cached under the revocation epoch; the revocation
    /// check itself runs on every call, so a cached chain never outlives a
    /// revocation.
    pub fn check_chain(&self, text: &str, now: u64) -> Result<Arc<VerifiedChain>, Inactive> {
        self.check_in(&self.inner.cache, text, self.verify_options(now))
    }

    /// Verifies `text` with `options` through `cache`, then checks the
    /// result against the revocation set (on every call, cached or not).
    fn check_in(
        &self,
        cache: &Mutex<ChainCache>,
        text: &str,
        options: VerifyOptions,
    ) -> Result<Arc<VerifiedChain>, Inactive> {
        let revocations = self.revocations();
        let epoch = u64::try_from(revocations.epoch()).unwrap_or(0);
        let keys = self.issuer_keys();
        let chain = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .verify(text, &keys.jwks, &options, epoch)?;
        if let Some(target) = revoked(revocations, &chain) {
            return Err(Inactive::Revoked(target));
        }
        Ok(chain)
    }
}

impl<S: Store> AppState<S> {
    /// Verifies chain text minted for `audience` (an MCP server's resource
    /// URL) and checks it against the revocation set. Kept in a cache apart
    /// from [`Self::check_chain`]'s, so a chain for one audience is never
    /// answered from a verification made for another.
    pub fn check_chain_for(
        &self,
        text: &str,
        now: u64,
        audience: &str,
    ) -> Result<Arc<VerifiedChain>, Inactive> {
        let mut options = self.verify_options(now);
        options.audience = audience.to_owned();
        self.check_in(&self.inner.scoped_cache, text, options)
    }

    /// Runs `listener` after every registry change this process makes, so
    /// a service that caches registry rows (the gateway) forgets them.
    pub fn on_registry_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        self.inner
            .registry_listeners
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(listener));
    }

    fn notify_registry_change(&self) {
        let listeners = self
            .inner
            .registry_listeners
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for listener in listeners.iter() {
            listener();
        }
    }

    /// Verifies chain text addressed to any audience Remit accepts: the
    /// deployment-wide audience, or one MCP server's resource URL
    /// (`<public_url>/mcp/<server id>`, what the gateway accepts for that
    /// server). The audience the unverified leaf names only picks which
    /// of those the chain is verified against; anything else is refused
    /// as the deployment-wide check refuses it. Introspection and RFC
    /// 7009 revocation judge remits with this, so a server-scoped remit
    /// the gateway accepts is never "inactive" to them.
    pub fn check_chain_any_audience(
        &self,
        text: &str,
        now: u64,
    ) -> Result<Arc<VerifiedChain>, Inactive> {
        let refused = match self.check_chain(text, now) {
            Err(Inactive::Invalid(e)) if e.rule() == "audience" => Inactive::Invalid(e),
            other => return other,
        };
        let aud = UnverifiedChain::parse(text).map(|c| c.leaf().claims().aud.clone());
        let prefix = format!("{}/mcp/", self.settings().public_url);
        match aud {
            Ok(aud)
                if aud
                    .strip_prefix(&prefix)
                    .is_some_and(|server| remit_store::ServerId::parse(server).is_ok()) =>
            {
                self.check_chain_for(text, now, &aud)
            }
            _ => Err(refused),
        }
    }

    /// Requests refused before authentication: counts and per-peer buckets.
    pub fn refusals(&self) -> &crate::anonymous::Refusals {
        &self.inner.refusals
    }

    /// [`Self::rebuild_policy`] for a handler that must not answer before
    /// the policy knows the change (blessing a server): a failure is
    /// returned (a 500 for the request).
    pub async fn reload_policy(&self) -> Result<(), PolicyRebuildError> {
        self.notify_registry_change();
        self.rebuild_policy().await.map(|_| ())
    }
}

/// The first revocation that applies to any link, agent or signing key of
/// `chain`, if any. Every agent along the chain is checked, not only the
/// leaf's holder: revoking an agent kills what was delegated through it.
pub fn revoked(revocations: &SharedRevocations, chain: &VerifiedChain) -> Option<RevocationTarget> {
    let jtis: Vec<&str> = chain.jtis().collect();
    let kids: Vec<&str> = chain.links().iter().map(|l| l.kid()).collect();
    let sub = chain.leaf_claims().sub.as_str();
    chain.agents().find_map(|agent| {
        revocations.find(&RemitFacts {
            chain: &jtis,
            agent,
            sub,
            kids: &kids,
            tool: None,
        })
    })
}

/// The current time, Unix milliseconds (receipt time).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current time, Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A receipt submitted by [`AppState::submit`], not yet known durable.
#[derive(Debug)]
#[must_use = "a receipt's index may be shown only once it is durable"]
pub struct PendingReceipt {
    durable: crate::receipts::Durable,
    started: std::time::Instant,
    /// Counts it in `remit_receipts_pending` until it is dropped.
    _gauge: crate::metrics::PendingReceiptGauge,
}

impl PendingReceipt {
    /// Waits until the receipt is durable; its index, or the 500 that
    /// replaces the answer when it could not be made durable.
    pub async fn durable(self) -> Result<u64, RecordError> {
        let appended = self.durable.wait().await;
        crate::metrics::receipt_append(self.started.elapsed().as_secs_f64(), appended.is_ok());
        appended.map_err(record_failed)
    }
}

/// A receipt that could not be made durable: the request it records must
/// not answer success (the HTTP layer turns this into a 500).
#[derive(Debug, thiserror::Error)]
#[error("the change was not confirmed because its receipt could not be recorded: {0}")]
pub struct RecordError(#[from] pub crate::receipts::ReceiptLogError);

fn record_failed(error: crate::receipts::ReceiptLogError) -> RecordError {
    tracing::error!(%error, "receipt append failed");
    RecordError(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_jwks_that_cannot_verify_a_remit_is_refused() {
        assert!(matches!(
            IssuerJwks::from_json("not json"),
            Err(IssuerJwksError::NotJson(_))
        ));
        assert!(matches!(
            IssuerJwks::from_json(r#"{"kty": "EC"}"#),
            Err(IssuerJwksError::Invalid(_))
        ));
        assert!(matches!(
            IssuerJwks::from_json(r#"{"keys": []}"#),
            Err(IssuerJwksError::Empty)
        ));
        let signer = EcdsaP256Signer::generate().unwrap();
        let key = signer.public_jwk().clone().published(signer.key_id());
        let text = serde_json::json!({ "keys": [key] }).to_string();
        let parsed = IssuerJwks::from_json(&text).unwrap();
        assert!(parsed.jwks.get(signer.key_id()).is_some());
    }
}
