//! Auditor side: receipts, inclusion and consistency proofs, checkpoints
//! and whole-log audits — `remit-ledger` as Python classes, with the same
//! checks as `remit audit verify`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use remit_ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use remit_ledger::{
    AuditError, AuditReport as Report, Auditor, Hash, LogDir, NoteVerifier, SignedReceipt, Tree,
};

use crate::token::with_jwks;
use crate::{errors, to_python};

/// Registers the auditor classes and functions on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Receipt>()?;
    m.add_class::<Checkpoint>()?;
    m.add_class::<AuditReport>()?;
    m.add_function(wrap_pyfunction!(verify_receipt, m)?)?;
    m.add_function(wrap_pyfunction!(verify_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(verify_inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(verify_consistency_proof, m)?)?;
    m.add_function(wrap_pyfunction!(inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(audit_log, m)?)?;
    m.add_function(wrap_pyfunction!(audit_leaves, m)?)?;
    Ok(())
}

/// A leaf given as `str` or `bytes`.
fn leaf_bytes(leaf: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    match leaf.extract::<String>() {
        Ok(text) => Ok(text.into_bytes()),
        Err(_) => leaf.extract::<Vec<u8>>(),
    }
}

fn audit_error(error: &AuditError) -> PyErr {
    errors::audit(error, error.code(), error.index())
}

fn parse_hash(text: &str) -> PyResult<Hash> {
    Hash::from_hex(text)
        .ok_or_else(|| PyValueError::new_err(format!("{text:?} is not a 64-digit hex SHA-256")))
}

fn note_verifier(vkey: &str) -> PyResult<NoteVerifier> {
    NoteVerifier::from_vkey(vkey.trim()).map_err(|e| {
        errors::key(
            format!("not a note verifier key: {e}"),
            "malformed_note_key",
        )
    })
}

/// One signed receipt whose signature verified.
#[pyclass(module = "remit", name = "Receipt", frozen)]
#[derive(Debug)]
pub struct Receipt {
    signed: SignedReceipt,
    leaf_hash: Hash,
}

impl Receipt {
    fn new(signed: SignedReceipt, leaf: &[u8]) -> Self {
        Receipt {
            signed,
            leaf_hash: leaf_hash(leaf),
        }
    }
}

#[pymethods]
impl Receipt {
    /// The receipt's index in the log (what `_meta.receipt_id` names).
    #[getter]
    fn index(&self) -> u64 {
        self.signed.receipt.index
    }

    /// The event kind: `allow`, `deny`, `escalate`, `issue`, `revoke`, ...
    #[getter]
    fn kind(&self) -> &'static str {
        self.signed.receipt.event.kind.as_str()
    }

    /// When it happened, Unix milliseconds.
    #[getter]
    fn time_ms(&self) -> u64 {
        self.signed.receipt.event.time
    }

    /// The tool or endpoint, e.g. `mcp:fs/read_file`.
    #[getter]
    fn tool(&self) -> Option<&str> {
        self.signed.receipt.event.tool.as_deref()
    }

    /// The actor chain as `(kind, id)` pairs: the user first, then each agent.
    #[getter]
    fn actors(&self) -> Vec<(String, String)> {
        let actors = self.signed.receipt.event.actors.iter();
        actors
            .map(|a| {
                let kind = serde_json::to_value(a.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (kind, a.id.clone())
            })
            .collect()
    }

    /// The root remit's `jti`.
    #[getter]
    fn root_jti(&self) -> Option<&str> {
        self.signed.receipt.event.root_jti.as_deref()
    }

    /// The leaf remit's `jti`.
    #[getter]
    fn leaf_jti(&self) -> Option<&str> {
        self.signed.receipt.event.leaf_jti.as_deref()
    }

    /// The decision (`effect`, `policy_ids`, `policy_version`, `reason`), if any.
    #[getter]
    fn decision<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.signed.receipt.event.decision)
    }

    /// Findings counted by type (never the values).
    #[getter]
    fn findings(&self) -> BTreeMap<String, u32> {
        self.signed.receipt.event.findings.clone()
    }

    /// The id of the key that signed it.
    #[getter]
    fn kid(&self) -> &str {
        &self.signed.kid
    }

    /// SHA-256 (hex) of the canonical receipt: what the next receipt links to.
    #[getter]
    fn receipt_hash(&self) -> String {
        self.signed.receipt_hash().to_hex()
    }

    /// RFC 6962 leaf hash (hex): what inclusion proofs start from.
    #[getter]
    fn leaf_hash(&self) -> String {
        self.leaf_hash.to_hex()
    }

    /// The whole receipt, as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.signed.receipt)
    }

    fn __repr__(&self) -> String {
        format!(
            "Receipt(index={}, kind={:?}, tool={:?})",
            self.index(),
            self.kind(),
            self.tool()
        )
    }
}

/// Parses a log leaf (`{"receipt":..,"sig":..}`, canonical JSON) and
/// verifies its ES256 signature against the receipt `jwks`; raises
/// `AuditFailed` (`unknown_key`, `bad_signature`, `not_canonical`,
/// `malformed_leaf`).
#[pyfunction]
fn verify_receipt(leaf: &Bound<'_, PyAny>, jwks: &Bound<'_, PyAny>) -> PyResult<Receipt> {
    let bytes = leaf_bytes(leaf)?;
    with_jwks(jwks, |jwks| {
        let keys = jwks.receipt_keys()?;
        let bad = |reason| audit_error(&AuditError::BadLeaf { index: 0, reason });
        let signed = SignedReceipt::parse(&bytes).map_err(bad)?;
        signed.verify(|kid| keys.get(kid)).map_err(|reason| {
            let index = signed.receipt.index;
            audit_error(&AuditError::BadLeaf { index, reason })
        })?;
        Ok(Receipt::new(signed, &bytes))
    })
}

/// A tree head signed by the log's note key.
#[pyclass(module = "remit", name = "Checkpoint", frozen)]
#[derive(Debug, Clone)]
pub struct Checkpoint {
    inner: remit_ledger::Checkpoint,
    note: String,
}

#[pymethods]
impl Checkpoint {
    /// The log's identity (its note key's name).
    #[getter]
    fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// How many receipts the tree head covers.
    #[getter]
    fn size(&self) -> u64 {
        self.inner.size
    }

    /// The RFC 6962 root, hex.
    #[getter]
    fn root(&self) -> String {
        self.inner.root.to_hex()
    }

    /// The signed note text.
    #[getter]
    fn note(&self) -> &str {
        &self.note
    }

    fn __repr__(&self) -> String {
        format!(
            "Checkpoint(origin={:?}, size={}, root={})",
            self.inner.origin, self.inner.size, self.inner.root
        )
    }
}

fn open_checkpoint(note: &str, verifier: &NoteVerifier, code: &str) -> PyResult<Checkpoint> {
    let inner = remit_ledger::Checkpoint::open(note, verifier)
        .map_err(|e| errors::audit(format!("checkpoint: {e}"), code, None))?;
    Ok(Checkpoint {
        inner,
        note: note.to_owned(),
    })
}

/// Opens a signed checkpoint (C2SP signed note) with the log's note
/// verifier key (`note.pub`); raises `AuditFailed("bad_checkpoint")`.
#[pyfunction]
fn verify_checkpoint(note: &str, note_key: &str) -> PyResult<Checkpoint> {
    open_checkpoint(note, &note_verifier(note_key)?, "bad_checkpoint")
}

fn hashes(proof: &[String]) -> PyResult<Vec<Hash>> {
    proof.iter().map(|h| parse_hash(h)).collect()
}

/// Checks that `leaf` is receipt `index` of the tree `checkpoint` signed
/// (RFC 9162 inclusion proof, hex hashes as `remit audit prove` prints
/// them); raises `AuditFailed("inclusion")`.
#[pyfunction]
fn verify_inclusion_proof(
    leaf: &Bound<'_, PyAny>,
    index: u64,
    proof: Vec<String>,
    checkpoint: &Checkpoint,
) -> PyResult<()> {
    let hash = leaf_hash(&leaf_bytes(leaf)?);
    let cp = &checkpoint.inner;
    verify_inclusion(&hash, index, cp.size, &hashes(&proof)?, &cp.root).map_err(|e| {
        errors::audit(
            format!("receipt {index} is not in the checkpoint's tree: {e}"),
            "inclusion",
            Some(index),
        )
    })
}

/// Checks that the tree `current` signed extends the one `earlier` signed
/// (RFC 9162 consistency proof): no rollback, no fork; raises
/// `AuditFailed("inconsistent")`.
#[pyfunction]
fn verify_consistency_proof(
    earlier: &Checkpoint,
    current: &Checkpoint,
    proof: Vec<String>,
) -> PyResult<()> {
    let (old, new) = (&earlier.inner, &current.inner);
    verify_consistency(old.size, new.size, &hashes(&proof)?, &old.root, &new.root).map_err(|e| {
        errors::audit(
            format!("the log is not consistent with the earlier checkpoint: {e}"),
            "inconsistent",
            None,
        )
    })
}

/// The inclusion proof of receipt `index` against a log directory's
/// signed checkpoint: the same dict `remit audit prove --log` prints
/// (`index`, `tree_size`, `leaf_hash`, `root`, `proof`, `checkpoint`).
#[pyfunction]
fn inclusion_proof<'py>(py: Python<'py>, log: PathBuf, index: u64) -> PyResult<Bound<'py, PyAny>> {
    let fail = |e: &dyn std::fmt::Display| errors::audit(e, "log", None);
    let dir = LogDir::new(log);
    let note = dir.checkpoint().map_err(|e| fail(&e))?;
    let verifier = dir.note_verifier().map_err(|e| fail(&e))?;
    let cp = open_checkpoint(&note, &verifier, "bad_checkpoint")?.inner;
    if index >= cp.size {
        let message = format!(
            "receipt {index} is not covered by the checkpoint (size {})",
            cp.size
        );
        return Err(errors::audit(message, "not_covered", Some(index)));
    }
    let reader = dir.leaf_reader().map_err(|e| fail(&e))?;
    let mut tree = Tree::new();
    for leaf in reader.take(usize::try_from(cp.size).unwrap_or(usize::MAX)) {
        tree.push(leaf_hash(&leaf.map_err(|e| fail(&e))?));
    }
    let proof = tree.inclusion_proof(index, cp.size).map_err(|e| fail(&e))?;
    let leaf = tree
        .leaf(index)
        .ok_or_else(|| fail(&"the log holds fewer leaves"))?;
    let out = serde_json::json!({
        "index": index,
        "tree_size": cp.size,
        "leaf_hash": leaf.to_hex(),
        "root": cp.root.to_hex(),
        "proof": proof.iter().map(Hash::to_hex).collect::<Vec<_>>(),
        "checkpoint": note,
    });
    to_python(py, &out)
}

/// What a whole-log audit established (a failure raises `AuditFailed`).
#[pyclass(module = "remit", name = "AuditReport", frozen)]
#[derive(Debug)]
pub struct AuditReport {
    report: Report,
    note: String,
    torn: u64,
    pinned: bool,
    receipts: Vec<Py<Receipt>>,
}

#[pymethods]
impl AuditReport {
    /// Always `True`: a failed audit raises instead.
    #[getter]
    fn ok(&self) -> bool {
        true
    }

    /// Receipts checked.
    #[getter]
    fn size(&self) -> u64 {
        self.report.size
    }

    /// The recomputed tree head of all of them, hex.
    #[getter]
    fn root(&self) -> String {
        self.report.root.to_hex()
    }

    /// The verified signed checkpoint.
    #[getter]
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            inner: self.report.checkpoint.clone(),
            note: self.note.clone(),
        }
    }

    /// Receipts after the checkpoint: signed and linked, not yet sealed.
    #[getter]
    fn unsealed(&self) -> u64 {
        self.report.unsealed
    }

    /// The size of the earlier checkpoint the log extends, if one was given.
    #[getter]
    fn earlier_size(&self) -> Option<u64> {
        self.report.earlier.as_ref().map(|c| c.size)
    }

    /// How many receipts each key id signed.
    #[getter]
    fn signers(&self) -> BTreeMap<String, u64> {
        self.report.signers.clone()
    }

    /// Bytes of a torn last line (a crash mid-write, never acknowledged).
    #[getter]
    fn torn_tail_bytes(&self) -> u64 {
        self.torn
    }

    /// Whether the note key was given (pinned) rather than read from the log.
    #[getter]
    fn note_key_pinned(&self) -> bool {
        self.pinned
    }

    /// Every verified receipt, in order, when asked for (`receipts=True`).
    #[getter]
    fn receipts(&self, py: Python<'_>) -> Vec<Py<Receipt>> {
        self.receipts.iter().map(|r| r.clone_ref(py)).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "AuditReport(ok=True, size={}, root={})",
            self.report.size, self.report.root
        )
    }
}

/// Runs the auditor over `leaves`, keeping each verified receipt if asked.
fn run_audit(
    leaves: impl Iterator<Item = PyResult<Vec<u8>>>,
    keys: &remit_ledger::Jwks,
    note: &str,
    verifier: &NoteVerifier,
    earlier: Option<&str>,
    keep: bool,
) -> PyResult<(Report, Vec<Receipt>)> {
    let mut auditor = Auditor::new(keys);
    let mut kept = Vec::new();
    for leaf in leaves {
        let leaf = leaf?;
        auditor.push(&leaf).map_err(|e| audit_error(&e))?;
        if keep {
            let signed = SignedReceipt::parse(&leaf).map_err(|reason| {
                let index = auditor.size().saturating_sub(1);
                audit_error(&AuditError::BadLeaf { index, reason })
            })?;
            kept.push(Receipt::new(signed, &leaf));
        }
    }
    let report = auditor
        .finish(note, verifier, earlier)
        .map_err(|e| audit_error(&e))?;
    Ok((report, kept))
}

fn report(
    py: Python<'_>,
    (report, kept): (Report, Vec<Receipt>),
    note: String,
    torn: u64,
    pinned: bool,
) -> PyResult<AuditReport> {
    let receipts = kept
        .into_iter()
        .map(|r| Py::new(py, r))
        .collect::<PyResult<_>>()?;
    Ok(AuditReport {
        report,
        note,
        torn,
        pinned,
        receipts,
    })
}

/// Audits a log directory exactly as `remit audit verify --log DIR`: every
/// leaf canonical, signed by a key of `jwks`, at its own index, linked to
/// the one before; the tree head equal to the signed checkpoint's; and
/// consistent with an `earlier` checkpoint you kept. `note_key` pins the
/// note verifier key (default: `DIR/note.pub`, unpinned). Raises
/// `AuditFailed` with the first bad index and why.
#[pyfunction]
#[pyo3(signature = (log, jwks, *, note_key=None, earlier=None, receipts=false))]
fn audit_log(
    py: Python<'_>,
    log: PathBuf,
    jwks: &Bound<'_, PyAny>,
    note_key: Option<&str>,
    earlier: Option<&str>,
    receipts: bool,
) -> PyResult<AuditReport> {
    let fail = |e: &dyn std::fmt::Display| errors::audit(e, "log", None);
    let dir = LogDir::new(log);
    let pinned = note_key.is_some();
    let verifier = match note_key {
        Some(vkey) => note_verifier(vkey)?,
        None => dir.note_verifier().map_err(|e| fail(&e))?,
    };
    let note = dir.checkpoint().map_err(|e| fail(&e))?;
    let mut reader = dir.leaf_reader().map_err(|e| fail(&e))?;
    with_jwks(jwks, |jwks| {
        let keys = jwks.receipt_keys()?;
        let result = py.detach(|| {
            let leaves = reader.by_ref().map(|l| l.map_err(|e| fail(&e)));
            run_audit(leaves, keys, &note, &verifier, earlier, receipts)
        })?;
        let torn = reader.torn_bytes();
        report(py, result, note.clone(), torn, pinned)
    })
}

/// Audits leaves read elsewhere (a server's `/v1/receipts` pages) against
/// its signed `checkpoint` and pinned `note_key`, with the same checks as
/// `audit_log`.
#[pyfunction]
#[pyo3(signature = (leaves, jwks, checkpoint, note_key, *, earlier=None, receipts=false))]
fn audit_leaves(
    py: Python<'_>,
    leaves: &Bound<'_, PyAny>,
    jwks: &Bound<'_, PyAny>,
    checkpoint: &str,
    note_key: &str,
    earlier: Option<&str>,
    receipts: bool,
) -> PyResult<AuditReport> {
    let verifier = note_verifier(note_key)?;
    let leaves = leaves
        .try_iter()?
        .map(|leaf| leaf_bytes(&leaf?))
        .collect::<PyResult<Vec<_>>>()?;
    with_jwks(jwks, |jwks| {
        let keys = jwks.receipt_keys()?;
        let result = py.detach(|| {
            let leaves = leaves.into_iter().map(Ok);
            run_audit(leaves, keys, checkpoint, &verifier, earlier, receipts)
        })?;
        report(py, result, checkpoint.to_owned(), 0, true)
    })
}
