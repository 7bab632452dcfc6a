//! The receipt log of the control plane and the gateway: every mutation
//! (agent register and disable, server and tool add, remit issue, every
//! revocation) and every gateway call is a signed `remit_ledger` receipt,
//! durable before the answer leaves.
//!
//! The log sits behind [`ReceiptLog`]. Two implementations share one
//! group-commit writer ([`group`]): [`FileReceiptLog`], the ledger's log
//! directory in the data directory (`<data>/log`, one `fdatasync` per batch
//! of concurrent appends, checkpoints sealed off the append path), and
//! [`StoreReceiptLog`], one sequence in the database shared by replicas
//! (one transaction per batch). Either is opened once at start (opening
//! hashes every leaf) and kept in the application state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use remit_ledger::{
    Actor, ActorKind, Decision, DirError, Effect, Event, Kind, LogError, NoteError, NoteSigner,
    ReceiptSigner,
};
use remit_token::{EcdsaP256Signer, Signer as _};

pub mod chains;
pub mod file;
pub mod group;

pub use file::FileReceiptLog;
use group::{BatchWriter, GroupCommit};

/// The log directory's name inside the data directory.
pub const LOG_DIR: &str = "log";
/// File holding the checkpoint (C2SP signed note) signing key.
pub const NOTE_KEY_FILE: &str = "note.key";
/// Most leaves one `GET /v1/receipts` returns.
pub const MAX_PAGE: u64 = 1000;

/// Why the receipt log could not be opened, appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptLogError {
    /// The log refused or failed (store I/O, signing, corrupt leaves).
    #[error("receipt log: {0}")]
    Log(#[from] LogError),
    /// The log directory could not be read or written.
    #[error("receipt log directory: {0}")]
    Dir(#[from] DirError),
    /// The note key file could not be read, written or parsed.
    #[error("checkpoint key {path}: {detail}")]
    NoteKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The log directory was created with another note key than the one in
    /// the data directory: checkpoints would not verify.
    #[error(
        "{log}/note.pub does not match {key}; restore the matching note key or move the log away"
    )]
    NoteKeyMismatch {
        /// The log directory.
        log: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The shared log in the database was written with other keys than
    /// this process holds: what it appended would not verify beside the
    /// rest, so it does not start.
    #[error("the receipt log in the database is signed with {theirs}, but this process holds {ours}; every server and wrap on one database must share receipt.jwk and note.key (copy them from the first server's data directory)")]
    ForeignLogKey {
        /// The key the log was written with (receipt `kid`, or the
        /// checkpoint's note key).
        theirs: String,
        /// The key this process holds.
        ours: String,
    },
    /// An earlier append panicked while holding the log; nothing more is
    /// appended until a restart reopens (and recovers) it.
    #[error("the receipt log is unavailable after an earlier failure; restart the server")]
    Poisoned,
    /// The blocking append task did not finish.
    #[error("the receipt append task failed: {0}")]
    Task(String),
    /// The batch this receipt was group-committed in could not be made
    /// durable; no receipt of that batch was acknowledged.
    #[error("the receipt batch was not written, so this receipt is not durable: {0}")]
    Batch(String),
}

/// How a log took an append: queued for its group-commit writer (await
/// the answer), or not taken (append it on a blocking thread).
#[derive(Debug)]
pub enum Submitted {
    /// Queued; resolves to the receipt's index once it is durable.
    Queued(group::Pending),
    /// This log has no queue; the event is handed back.
    Blocking(Box<Event>),
}

/// Where receipts go. Implementations make an appended receipt durable
/// before returning its index.
pub trait ReceiptLog: Send + Sync + std::fmt::Debug + 'static {
    /// Signs and durably appends one receipt; returns its index. Blocks.
    fn append(&self, event: Event) -> Result<u64, ReceiptLogError>;
    /// Queues one receipt without blocking, when the log has a queue; the
    /// default hands the event back for [`ReceiptLog::append`].
    fn submit(&self, event: Event) -> Result<Submitted, ReceiptLogError> {
        Ok(Submitted::Blocking(Box::new(event)))
    }
    /// Up to `limit` raw leaves starting at index `from`.
    fn leaves(&self, from: u64, limit: u64) -> Result<Vec<Vec<u8>>, ReceiptLogError>;
    /// The latest signed checkpoint (C2SP signed note text).
    fn latest_checkpoint(&self) -> Result<String, ReceiptLogError>;
    /// Number of receipts.
    fn size(&self) -> u64;
    /// The JWKS of the receipt signing key, for `remit audit verify --jwks`.
    fn receipt_jwks(&self) -> serde_json::Value;
    /// The note verifier key (`origin+id+key`) checkpoints are signed with.
    fn note_verifier_key(&self) -> String;
}

/// A receipt on its way to durability. Its index may be named to a client
/// only after [`Durable::wait`] returned it; until then the caller can do
/// other work (the gateway forwards a call while its receipt syncs).
#[derive(Debug)]
pub enum Durable {
    /// Queued for the log's group-commit writer.
    Queued(group::Pending),
    /// Being appended on a blocking thread (a log without a queue).
    Blocking(tokio::task::JoinHandle<Result<u64, ReceiptLogError>>),
}

impl Durable {
    /// Waits, without holding a thread, until the receipt is durable and
    /// returns its index.
    pub async fn wait(self) -> Result<u64, ReceiptLogError> {
        match self {
            Durable::Queued(pending) => pending.wait().await,
            Durable::Blocking(task) => task
                .await
                .map_err(|e| ReceiptLogError::Task(e.to_string()))?,
        }
    }
}

/// Starts making `event` durable: through the log's group-commit queue, or
/// on a blocking thread for a log without one. Must be called from within
/// a Tokio runtime.
pub fn submit(log: &Arc<dyn ReceiptLog>, event: Event) -> Result<Durable, ReceiptLogError> {
    Ok(match log.submit(event)? {
        Submitted::Queued(pending) => Durable::Queued(pending),
        Submitted::Blocking(event) => {
            let log = Arc::clone(log);
            Durable::Blocking(tokio::task::spawn_blocking(move || log.append(*event)))
        }
    })
}

/// Appends `event` and waits, without holding a thread, until it is
/// durable ([`submit`], then [`Durable::wait`]).
pub async fn append(log: &Arc<dyn ReceiptLog>, event: Event) -> Result<u64, ReceiptLogError> {
    submit(log, event)?.wait().await
}

fn load_note_key(path: &Path, origin: &str) -> Result<NoteSigner, ReceiptLogError> {
    let bad = |detail: String| ReceiptLogError::NoteKey {
        path: path.to_owned(),
        detail,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => NoteSigner::from_skey(text.trim()).map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let note = NoteSigner::generate(origin).map_err(|e: NoteError| bad(e.to_string()))?;
            crate::setup::write_secret(path, note.to_skey().as_bytes())
                .map_err(|e| bad(e.to_string()))?;
            Ok(note)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Most times one batch is re-sequenced because another replica appended
/// first, before the append fails.
pub const MAX_APPEND_RETRIES: usize = 64;

/// The receipt log in the database (`log_leaves`, `log_head`,
/// `log_checkpoints`), shared by every replica on one PostgreSQL database:
/// one sequence, no forks.
///
/// An append is optimistic: the batch is sequenced after the end this
/// process knows, signed, and written with
/// [`SequencedLogRepo::append_leaves_at`], which moves the head only if
/// nobody appended meanwhile (the head row is locked until commit). If
/// another replica did, this one reads the new leaves (extending its tree
/// and hash link), sequences again and retries. After each batch a signed
/// checkpoint for the new size is stored (Ed25519 is deterministic, so two
/// replicas sealing the same size write the same text).
///
/// Appends are **group-committed** through the same writer as the file
/// log ([`group`]): concurrent callers queue their events, and the writer
/// thread writes every queued event in one transaction (one commit, one
/// sync, one checkpoint) and hands each its index. Replicas must share the
/// receipt key and the note key (one data directory, or copies of
/// `receipt.jwk` and `note.key`).
///
/// [`SequencedLogRepo::append_leaves_at`]: remit_store::SequencedLogRepo::append_leaves_at
#[derive(Debug)]
pub struct StoreReceiptLog<S> {
    // INVARIANT: declared first, so dropping the log stops its writer first.
    group: GroupCommit,
    store: S,
    runtime: tokio::runtime::Handle,
    signer: Arc<EcdsaP256Signer>,
    note: Arc<NoteSigner>,
}

/// What this process knows of the shared log: the tree and the last link.
#[derive(Debug, Default)]
struct Mirror {
    tree: remit_ledger::Tree,
    last_receipt: Option<remit_ledger::Hash>,
}

/// Why the store-backed log failed.
fn store_error(e: remit_store::StoreError) -> ReceiptLogError {
    ReceiptLogError::Task(format!("receipt log in the database: {e}"))
}

/// The write side of a [`StoreReceiptLog`], owned by its writer thread.
#[derive(Debug)]
struct StoreWriter<S> {
    store: S,
    runtime: tokio::runtime::Handle,
    mirror: Mirror,
    signer: Arc<EcdsaP256Signer>,
    note: Arc<NoteSigner>,
}

impl<S: remit_store::Store> StoreReceiptLog<S> {
    /// Opens the log in `store`, reading every leaf to rebuild the tree
    /// (checking each leaf's index and hash link), with the note key in
    /// `<data_dir>/note.key`. Call from within the Tokio runtime.
    pub async fn open(
        store: S,
        data_dir: &Path,
        signer: EcdsaP256Signer,
        origin: &str,
    ) -> Result<Self, ReceiptLogError> {
        let note = Arc::new(load_note_key(&data_dir.join(NOTE_KEY_FILE), origin)?);
        let signer = Arc::new(signer);
        let size = store.log_size().await.map_err(store_error)?;
        let leaves = store.leaves(0, size).await.map_err(store_error)?;
        let mut mirror = Mirror::default();
        let newest_kid = extend(&mut mirror, leaves)?;
        refuse_foreign_keys(&store, newest_kid.as_deref(), &signer, &note).await?;
        let runtime = tokio::runtime::Handle::current();
        let writer = StoreWriter {
            store: store.clone(),
            runtime: runtime.clone(),
            mirror,
            signer: Arc::clone(&signer),
            note: Arc::clone(&note),
        };
        Ok(Self {
            group: GroupCommit::start("remit-receipts-db", writer)?,
            store,
            runtime,
            signer,
            note,
        })
    }

    fn block_on<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, remit_store::StoreError>>,
    ) -> Result<T, ReceiptLogError> {
        self.runtime.block_on(future).map_err(store_error)
    }
}

impl<S: remit_store::Store> StoreWriter<S> {
    fn block_on<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, remit_store::StoreError>>,
    ) -> Result<T, ReceiptLogError> {
        self.runtime.block_on(future).map_err(store_error)
    }

    /// Reads the leaves other replicas appended since this one last looked.
    fn catch_up(&mut self) -> Result<(), ReceiptLogError> {
        let size = self.block_on(self.store.log_size())?;
        if size > self.mirror.tree.size() {
            let leaves = self.block_on(self.store.leaves(self.mirror.tree.size(), size))?;
            extend(&mut self.mirror, leaves)?;
        }
        Ok(())
    }
}

impl<S: remit_store::Store> BatchWriter for StoreWriter<S> {
    /// Sequences, signs and writes `events` as one batch; returns the first
    /// index.
    fn write(&mut self, events: Vec<Event>) -> Result<u64, ReceiptLogError> {
        let key = Arc::clone(&self.signer);
        let signer = ReceiptSigner::new(key.as_ref()).map_err(LogError::from)?;
        for _ in 0..MAX_APPEND_RETRIES {
            self.catch_up()?;
            let start = self.mirror.tree.size();
            let mut prev = self.mirror.last_receipt;
            let mut leaves = Vec::with_capacity(events.len());
            for (offset, event) in events.iter().enumerate() {
                let receipt =
                    remit_ledger::Receipt::new(event.clone(), start + offset as u64, prev);
                let payload = receipt
                    .canonical()
                    .map_err(|e| LogError::from(remit_ledger::LeafError::from(e)))?;
                prev = Some(remit_ledger::receipt_hash(&payload));
                leaves.push(signer.sign_payload(&payload).map_err(LogError::from)?);
            }
            if !self.block_on(self.store.append_leaves_at(start, &leaves))? {
                continue;
            }
            for leaf in &leaves {
                self.mirror.tree.push(remit_ledger::merkle::leaf_hash(leaf));
            }
            self.mirror.last_receipt = prev;
            let checkpoint = remit_ledger::Checkpoint {
                origin: self.note.name().to_owned(),
                size: self.mirror.tree.size(),
                root: self.mirror.tree.root(),
            };
            let text = checkpoint.sign(&self.note).map_err(LogError::from)?;
            let stored = remit_store::StoredCheckpoint {
                size: checkpoint.size,
                text,
            };
            if let Err(e) = self.block_on(self.store.put_checkpoint(&stored)) {
                // The receipts are durable; they stay unsealed until the
                // next checkpoint covers them.
                tracing::error!(error = %e, "storing the receipt checkpoint failed");
            }
            return Ok(start);
        }
        Err(ReceiptLogError::Task(format!(
            "the shared receipt log moved {MAX_APPEND_RETRIES} times while appending; try again"
        )))
    }

    /// Every batch stores its own checkpoint (replicas share them), so
    /// there is nothing left to seal here; `latest_checkpoint` reads the
    /// database.
    fn seal(&mut self, _force: bool) -> Result<String, ReceiptLogError> {
        Ok(String::new())
    }
}

/// Extends `mirror` with leaves read from the store, checking that each
/// continues the sequence (its index) and the hash link of the one before.
/// Refuses a shared log whose newest receipt or checkpoint was signed with
/// another receipt or note key than this process's: a replica or wrap given
/// fresh keys would otherwise append receipts no auditor can verify beside
/// the others.
async fn refuse_foreign_keys<S: remit_store::Store>(
    store: &S,
    newest_kid: Option<&str>,
    signer: &EcdsaP256Signer,
    note: &NoteSigner,
) -> Result<(), ReceiptLogError> {
    if let Some(kid) = newest_kid.filter(|kid| *kid != signer.key_id()) {
        return Err(ReceiptLogError::ForeignLogKey {
            theirs: format!("receipt key {kid:?}"),
            ours: format!("receipt key {:?}", signer.key_id()),
        });
    }
    if let Some(checkpoint) = store.latest_checkpoint().await.map_err(store_error)? {
        let ours = note.verifier();
        if ours.open(&checkpoint.text).is_err() {
            return Err(ReceiptLogError::ForeignLogKey {
                theirs: "another checkpoint (note) key".into(),
                ours: format!("note key {}", ours.to_vkey()),
            });
        }
    }
    Ok(())
}

/// Adds `leaves` to the mirror, checking each one's index and link;
/// returns the key id that signed the last of them.
fn extend(mirror: &mut Mirror, leaves: Vec<Vec<u8>>) -> Result<Option<String>, ReceiptLogError> {
    let mut newest_kid = None;
    for leaf in leaves {
        let index = mirror.tree.size();
        let corrupt = |reason: String| ReceiptLogError::Log(LogError::Corrupt { index, reason });
        let parsed =
            remit_ledger::SignedReceipt::parse(&leaf).map_err(|e| corrupt(e.to_string()))?;
        if parsed.receipt.index != index {
            return Err(corrupt(format!(
                "receipt says index {}",
                parsed.receipt.index
            )));
        }
        if parsed.receipt.prev.as_ref().map(|p| p.hash) != mirror.last_receipt.filter(|_| index > 0)
        {
            return Err(corrupt(
                "its link does not name the receipt before it".into(),
            ));
        }
        mirror.last_receipt = Some(parsed.receipt_hash());
        mirror.tree.push(remit_ledger::merkle::leaf_hash(&leaf));
        newest_kid = Some(parsed.kid);
    }
    Ok(newest_kid)
}

impl<S: remit_store::Store> ReceiptLog for StoreReceiptLog<S> {
    fn append(&self, event: Event) -> Result<u64, ReceiptLogError> {
        self.group.append_blocking(event)
    }

    fn submit(&self, event: Event) -> Result<Submitted, ReceiptLogError> {
        Ok(Submitted::Queued(self.group.submit(event)?))
    }

    fn leaves(&self, from: u64, limit: u64) -> Result<Vec<Vec<u8>>, ReceiptLogError> {
        self.block_on(self.store.leaves(from, from.saturating_add(limit)))
    }

    fn latest_checkpoint(&self) -> Result<String, ReceiptLogError> {
        match self.block_on(self.store.latest_checkpoint())? {
            Some(stored) => Ok(stored.text),
            None => Ok(remit_ledger::Checkpoint {
                origin: self.note.name().to_owned(),
                size: 0,
                root: remit_ledger::Tree::new().root(),
            }
            .sign(&self.note)
            .map_err(LogError::from)?),
        }
    }

    fn size(&self) -> u64 {
        self.block_on(self.store.log_size()).unwrap_or(0)
    }

    fn receipt_jwks(&self) -> serde_json::Value {
        let key = self
            .signer
            .public_jwk()
            .clone()
            .published(self.signer.key_id());
        serde_json::json!({ "keys": [key] })
    }

    fn note_verifier_key(&self) -> String {
        self.note.verifier().to_vkey()
    }
}

/// Control-plane events, in the ledger's vocabulary.
///
/// The ledger has no registry kinds, so a registry change is an `allow`
/// receipt of the admin's action; `tool` names the control-plane action
/// and its object (`agent.register:planner`), and revocations say what
/// was revoked the same way (`revoke.subtree:<jti>`).
pub mod events {
    use super::*;

    fn admin() -> Actor {
        Actor {
            id: "admin".into(),
            kind: ActorKind::User,
        }
    }

    fn user(id: &str) -> Actor {
        Actor {
            id: id.into(),
            kind: ActorKind::User,
        }
    }

    fn agent(id: &str) -> Actor {
        Actor {
            id: id.into(),
            kind: ActorKind::Agent,
        }
    }

    fn base(kind: Kind, time_ms: u64, action: String) -> Event {
        let mut event = Event::new(kind, time_ms);
        event.tool = Some(action);
        event
    }

    /// An agent was registered.
    pub fn agent_registered(agent_id: &str, time_ms: u64) -> Event {
        let mut e = base(
            Kind::Register,
            time_ms,
            format!("agent.register:{agent_id}"),
        );
        e.actors = vec![admin(), agent(agent_id)];
        e
    }

    /// An agent was disabled (which revokes it).
    pub fn agent_disabled(agent_id: &str, time_ms: u64) -> Event {
        let mut e = base(Kind::Revoke, time_ms, format!("agent.disable:{agent_id}"));
        e.actors = vec![admin(), agent(agent_id)];
        e
    }

    /// An MCP server was disabled: the gateway refuses every call to it.
    pub fn server_disabled(server: &str, time_ms: u64) -> Event {
        let mut e = base(Kind::Revoke, time_ms, format!("server.disable:{server}"));
        e.actors = vec![admin()];
        e
    }

    /// An MCP server was blessed.
    pub fn server_added(server: &str, time_ms: u64) -> Event {
        let mut e = base(Kind::Register, time_ms, format!("server.add:{server}"));
        e.actors = vec![admin()];
        e
    }

    /// A tool of a blessed server was pinned.
    pub fn tool_added(server: &str, tool: &str, time_ms: u64) -> Event {
        let mut e = base(Kind::Register, time_ms, format!("tool.add:{server}/{tool}"));
        e.actors = vec![admin()];
        e
    }

    /// A prompt pinned (or re-pinned) when its server was blessed.
    pub fn prompt_added(server: &str, prompt: &str, time_ms: u64) -> Event {
        let mut e = base(
            Kind::Register,
            time_ms,
            format!("prompt.add:{server}/{prompt}"),
        );
        e.actors = vec![admin()];
        e
    }

    /// A policy decision in the ledger's words: effect, determining policy
    /// ids, version, and the explanation (for denials and escalations).
    pub fn policy_decision(decision: &remit_policy::Decision) -> Decision {
        let effect = match decision.verdict() {
            remit_policy::Verdict::Allow => Effect::Allow,
            remit_policy::Verdict::Deny => Effect::Deny,
            remit_policy::Verdict::Escalate => Effect::Escalate,
        };
        Decision {
            effect,
            policy_ids: decision
                .determining()
                .iter()
                .map(|p| p.id.clone())
                .collect(),
            policy_version: decision.policy_version().to_owned(),
            reason: (effect != Effect::Allow).then(|| decision.explanation()),
        }
    }

    /// A root remit was issued to `agent_id` acting for `sub`; `decision`
    /// is the policy's allow (its determining ids and version).
    pub fn remit_issued(
        jti: &str,
        sub: &str,
        agent_id: &str,
        decision: Option<Decision>,
        time_ms: u64,
    ) -> Event {
        let mut e = Event::new(Kind::Issue, time_ms);
        e.root_jti = Some(jti.into());
        e.leaf_jti = Some(jti.into());
        e.actors = vec![user(sub), agent(agent_id)];
        e.decision = decision;
        e
    }

    /// Issuance to `agent_id` for `sub` was refused by the policy (a deny,
    /// or an escalation, which issuance cannot wait for).
    pub fn issue_refused(sub: &str, agent_id: &str, decision: Decision, time_ms: u64) -> Event {
        let mut e = base(Kind::Deny, time_ms, format!("remit.issue:{agent_id}"));
        e.actors = vec![user(sub), agent(agent_id)];
        e.decision = Some(decision);
        e
    }

    /// A remit was exchanged (RFC 8693): `actors` is the user, then every
    /// agent of the new remit's `act` from the first to the actor.
    /// `subject_leaf` is the subject chain's leaf jti; `root` and `leaf` the
    /// exchanged chain's.
    pub fn remit_exchanged(
        exchanged: Exchanged<'_>,
        decision: Option<Decision>,
        time_ms: u64,
    ) -> Event {
        let mut e = base(
            Kind::Delegate,
            time_ms,
            format!("oauth.token_exchange:{}", exchanged.subject_leaf),
        );
        e.root_jti = Some(exchanged.root.into());
        e.leaf_jti = Some(exchanged.leaf.into());
        e.actors = std::iter::once(user(exchanged.sub))
            .chain(exchanged.agents.iter().map(|a| agent(a)))
            .collect();
        e.decision = decision;
        e
    }

    /// What an exchange produced, for [`remit_exchanged`].
    #[derive(Debug, Clone, Copy)]
    pub struct Exchanged<'a> {
        /// The user.
        pub sub: &'a str,
        /// Agents from the first to the actor.
        pub agents: &'a [&'a str],
        /// The subject chain's leaf jti.
        pub subject_leaf: &'a str,
        /// The exchanged chain's root jti.
        pub root: &'a str,
        /// The exchanged chain's leaf jti (the actor's remit).
        pub leaf: &'a str,
    }

    /// An exchange was refused: `reason` is the RFC 6749 error code and
    /// its description.
    pub fn exchange_refused(
        actor: Option<&str>,
        error: &str,
        description: &str,
        time_ms: u64,
    ) -> Event {
        let mut e = base(Kind::Deny, time_ms, "oauth.token_exchange".into());
        e.actors = actor.map(agent).into_iter().collect();
        e.decision = Some(Decision {
            effect: Effect::Deny,
            policy_ids: Vec::new(),
            policy_version: String::new(),
            reason: Some(format!("{error}: {description}")),
        });
        e
    }

    /// The requests refused before authentication over the last
    /// `period_secs`, counted by Remit's reason codes (no caller text):
    /// one receipt instead of one per request.
    pub fn unauthenticated_summary(
        counts: &std::collections::BTreeMap<&'static str, u64>,
        period_secs: u64,
        time_ms: u64,
    ) -> Event {
        let total: u64 = counts.values().sum();
        let by_reason = counts
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut e = base(Kind::Deny, time_ms, "unauthenticated.summary".into());
        e.findings = counts
            .iter()
            .map(|(reason, n)| ((*reason).to_owned(), u32::try_from(*n).unwrap_or(u32::MAX)))
            .collect();
        e.decision = Some(Decision {
            effect: Effect::Deny,
            policy_ids: vec!["unauthenticated".into()],
            policy_version: String::new(),
            reason: Some(format!(
                "{total} requests refused before authentication in the last {period_secs} s: {by_reason}"
            )),
        });
        e
    }

    /// A revocation the store recorded at `epoch`: [`revoked`] with its
    /// `revocation_epoch`, so an auditor tells which decisions saw it (those
    /// whose epoch is at least this one).
    pub fn revoked_at_epoch(kind: &str, value: &str, epoch: i64, time_ms: u64) -> Event {
        let mut e = revoked(kind, value, time_ms);
        e.revocation_epoch = u64::try_from(epoch).ok();
        e
    }

    /// A fresh call id (128 random bits, base64url) for every receipt one
    /// call produces; `None` only if the system's random source failed.
    pub fn call_id() -> Option<remit_ledger::CallId> {
        let id = remit_token::fresh_jti().ok()?;
        remit_ledger::CallId::try_from(id).ok()
    }

    /// A decision's revocation epoch from the revocation set's: read it
    /// *before* the set is consulted, so the receipt never claims a
    /// revocation the decision did not see.
    pub fn epoch(set_epoch: i64) -> Option<u64> {
        u64::try_from(set_epoch).ok()
    }

    /// Fills a refusal's `root_jti`, `leaf_jti` and actors from a
    /// credential that was refused (expired, forged, signed by the wrong
    /// key, revoked), marked `unverified`: what it claimed, parsed but not
    /// vouched for. Caller text is bounded. Returns whether the chain
    /// parsed at all (nothing is filled when it did not).
    pub fn claimed_by(event: &mut Event, chain_text: &str) -> bool {
        let Ok(chain) = remit_token::chain::UnverifiedChain::parse(chain_text) else {
            return false;
        };
        let bounded = |t: &str| crate::bounded::caller_text(t).into_owned();
        let links = chain.links();
        let (Some(root), Some(leaf)) = (links.first(), links.last()) else {
            return false;
        };
        event.root_jti = Some(bounded(&root.claims().jti));
        event.leaf_jti = Some(bounded(&leaf.claims().jti));
        event.actors = std::iter::once(Actor {
            id: bounded(&leaf.claims().sub),
            kind: ActorKind::User,
        })
        .chain(links.iter().map(|l| Actor {
            id: bounded(&l.claims().act.sub),
            kind: ActorKind::Agent,
        }))
        .collect();
        event.unverified = true;
        true
    }

    /// Something was revoked: `kind` is `jti`, `subtree`, `agent`, `sub`,
    /// `tool` or `kid`.
    pub fn revoked(kind: &str, value: &str, time_ms: u64) -> Event {
        let mut e = base(Kind::Revoke, time_ms, format!("revoke.{kind}:{value}"));
        e.actors = vec![admin()];
        match kind {
            "jti" | "subtree" => e.leaf_jti = Some(value.into()),
            "agent" => e.actors.push(agent(value)),
            _ => {}
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_log_continues_the_sequence_and_keeps_its_note_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = EcdsaP256Signer::generate().unwrap();
        let jwk = key.to_private_jwk().unwrap();
        let log = FileReceiptLog::open(dir.path(), key, "remit.test/receipts").unwrap();
        assert_eq!(log.append(events::server_added("s", 1)).unwrap(), 0);
        assert_eq!(log.append(events::revoked("jti", "j", 2)).unwrap(), 1);
        let vkey = log.note_verifier_key();
        drop(log);
        let key = EcdsaP256Signer::from_jwk(&jwk).unwrap();
        let log = FileReceiptLog::open(dir.path(), key, "other-origin").unwrap();
        assert_eq!(log.note_verifier_key(), vkey);
        assert_eq!(log.append(events::agent_registered("a", 3)).unwrap(), 2);
        assert_eq!(log.leaves(1, 5).unwrap().len(), 2);
        assert!(log.latest_checkpoint().unwrap().contains("\n3\n"));
    }

    /// A runtime, a data directory holding an SQLite store, the store and
    /// a receipt key (as a JWK, to give each log its own copy).
    fn store_setup() -> (
        tokio::runtime::Runtime,
        tempfile::TempDir,
        remit_store::SqliteStore,
        remit_token::PrivateJwk,
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = runtime
            .block_on(remit_store::SqliteStore::open(&dir.path().join("t.db")))
            .unwrap();
        let jwk = EcdsaP256Signer::generate()
            .unwrap()
            .to_private_jwk()
            .unwrap();
        (runtime, dir, store, jwk)
    }

    #[test]
    fn two_store_logs_on_one_database_append_one_sequence_without_a_fork() {
        let (runtime, dir, store, jwk) = store_setup();
        // Two "replicas": same database, same keys (one data directory).
        let logs: Vec<Arc<dyn ReceiptLog>> = (0..2)
            .map(|_| {
                let key = EcdsaP256Signer::from_jwk(&jwk).unwrap();
                let log = runtime
                    .block_on(StoreReceiptLog::open(store.clone(), dir.path(), key, "o/r"))
                    .unwrap();
                Arc::new(log) as Arc<dyn ReceiptLog>
            })
            .collect();
        std::thread::scope(|scope| {
            for (n, log) in logs.iter().enumerate() {
                for t in 0..4 {
                    let log = Arc::clone(log);
                    scope.spawn(move || {
                        for i in 0..10 {
                            log.append(events::server_added(&format!("s{n}{t}{i}"), 1))
                                .unwrap();
                        }
                    });
                }
            }
        });
        let leaves = logs[1].leaves(0, 1000).unwrap();
        assert_eq!(leaves.len(), 80);
        let jwks = remit_ledger::Jwks::from_json(&logs[0].receipt_jwks().to_string()).unwrap();
        let verifier = remit_ledger::NoteVerifier::from_vkey(&logs[0].note_verifier_key()).unwrap();
        let checkpoint = logs[0].latest_checkpoint().unwrap();
        let report = remit_ledger::audit(&leaves, &jwks, &checkpoint, &verifier, None).unwrap();
        assert_eq!(report.size, 80);
        assert_eq!(report.unsealed, 0);
        // A replica opening later rebuilds the same tree from the database.
        let late = runtime
            .block_on(StoreReceiptLog::open(
                store.clone(),
                dir.path(),
                EcdsaP256Signer::from_jwk(&jwk).unwrap(),
                "o/r",
            ))
            .unwrap();
        assert_eq!(late.append(events::server_added("late", 2)).unwrap(), 80);
    }

    #[test]
    fn a_store_log_written_with_other_keys_is_refused_not_forked() {
        let (runtime, dir, store, jwk) = store_setup();
        let open = |data: &Path, key: EcdsaP256Signer| {
            runtime.block_on(StoreReceiptLog::open(store.clone(), data, key, "o/r"))
        };
        let first = open(dir.path(), EcdsaP256Signer::from_jwk(&jwk).unwrap()).unwrap();
        first.append(events::server_added("s", 1)).unwrap();
        drop(first);
        // A replica or wrap given a fresh receipt key: refused.
        let stranger = EcdsaP256Signer::generate().unwrap();
        assert!(matches!(
            open(dir.path(), stranger),
            Err(ReceiptLogError::ForeignLogKey { .. })
        ));
        // The right receipt key but a fresh note key (another data
        // directory without note.key): refused too.
        let elsewhere = tempfile::tempdir().unwrap();
        let same = EcdsaP256Signer::from_jwk(&jwk).unwrap();
        assert!(matches!(
            open(elsewhere.path(), same),
            Err(ReceiptLogError::ForeignLogKey { .. })
        ));
        // Both keys shared: it opens and appends after the rest.
        let same = EcdsaP256Signer::from_jwk(&jwk).unwrap();
        let again = open(dir.path(), same).unwrap();
        assert_eq!(again.append(events::server_added("t", 2)).unwrap(), 1);
    }

    fn audit_file_log(log: &FileReceiptLog) -> remit_ledger::AuditReport {
        let leaves = log.leaves(0, u64::MAX).unwrap();
        let jwks = remit_ledger::Jwks::from_json(&log.receipt_jwks().to_string()).unwrap();
        let verifier = remit_ledger::NoteVerifier::from_vkey(&log.note_verifier_key()).unwrap();
        let checkpoint = log.latest_checkpoint().unwrap();
        remit_ledger::audit(&leaves, &jwks, &checkpoint, &verifier, None).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_from_many_tasks_make_one_gap_free_verifiable_log() {
        const TASKS: u64 = 32;
        const EACH: u64 = 20;
        let dir = tempfile::tempdir().unwrap();
        let key = EcdsaP256Signer::generate().unwrap();
        let log: Arc<dyn ReceiptLog> =
            Arc::new(FileReceiptLog::open(dir.path(), key, "remit.test/receipts").unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..TASKS {
            let log = Arc::clone(&log);
            tasks.spawn(async move {
                let mut got = Vec::new();
                for i in 0..EACH {
                    got.push(
                        append(&log, events::server_added(&format!("s{t}-{i}"), 1))
                            .await
                            .unwrap(),
                    );
                }
                got
            });
        }
        let mut indices = Vec::new();
        while let Some(done) = tasks.join_next().await {
            indices.extend(done.unwrap());
        }
        indices.sort_unstable();
        assert_eq!(indices, (0..TASKS * EACH).collect::<Vec<_>>());
        let leaves = log.leaves(0, u64::MAX).unwrap();
        let jwks = remit_ledger::Jwks::from_json(&log.receipt_jwks().to_string()).unwrap();
        let verifier = remit_ledger::NoteVerifier::from_vkey(&log.note_verifier_key()).unwrap();
        let checkpoint = tokio::task::spawn_blocking({
            let log = Arc::clone(&log);
            move || log.latest_checkpoint()
        })
        .await
        .unwrap()
        .unwrap();
        let report = remit_ledger::audit(&leaves, &jwks, &checkpoint, &verifier, None).unwrap();
        assert_eq!((report.size, report.unsealed), (TASKS * EACH, 0));
        // The checkpoint file on disk, as `remit audit verify --log` reads it,
        // is sealed too once the log is closed.
        drop(log);
        let on_disk = std::fs::read_to_string(dir.path().join("log/checkpoint")).unwrap();
        assert!(
            on_disk.contains(&format!("\n{}\n", TASKS * EACH)),
            "{on_disk}"
        );
    }

    #[test]
    fn a_crash_with_a_torn_tail_and_a_stale_checkpoint_recovers_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = EcdsaP256Signer::generate().unwrap();
        let jwk = key.to_private_jwk().unwrap();
        let log = FileReceiptLog::open(dir.path(), key, "remit.test/receipts").unwrap();
        log.append(events::server_added("a", 1)).unwrap();
        let stale = log.latest_checkpoint().unwrap();
        for n in 0..4 {
            log.append(events::server_added(&format!("b{n}"), 2))
                .unwrap();
        }
        drop(log);
        // The crash: a batch half written, the checkpoint never rewritten.
        let leaves = dir.path().join("log").join(remit_ledger::store::LEAF_FILE);
        let mut raw = std::fs::OpenOptions::new()
            .append(true)
            .open(&leaves)
            .unwrap();
        std::io::Write::write_all(&mut raw, br#"{"receipt":{"index":5,"#).unwrap();
        drop(raw);
        std::fs::write(dir.path().join("log/checkpoint"), &stale).unwrap();
        let log = FileReceiptLog::open(
            dir.path(),
            EcdsaP256Signer::from_jwk(&jwk).unwrap(),
            "remit.test/receipts",
        )
        .unwrap();
        assert_eq!(log.size(), 5);
        let on_disk = std::fs::read_to_string(dir.path().join("log/checkpoint")).unwrap();
        assert!(on_disk.contains("\n5\n"), "resealed on open: {on_disk}");
        assert_eq!(log.append(events::server_added("c", 3)).unwrap(), 5);
        let report = audit_file_log(&log);
        assert_eq!((report.size, report.unsealed), (6, 0));
    }

    #[test]
    fn a_log_written_under_another_note_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = EcdsaP256Signer::generate().unwrap();
        drop(FileReceiptLog::open(dir.path(), key, "o").unwrap());
        std::fs::remove_file(dir.path().join(NOTE_KEY_FILE)).unwrap();
        let key = EcdsaP256Signer::generate().unwrap();
        assert!(matches!(
            FileReceiptLog::open(dir.path(), key, "o"),
            Err(ReceiptLogError::NoteKeyMismatch { .. })
        ));
    }
}
