"""Remit for Python agents and auditors.

One set of token and ledger rules: this package is `remit-token` and
`remit-ledger` (Rust) bound with PyO3, so an agent signing proofs or
delegating, and an auditor checking receipts, run exactly the checks the
gateway and `remit audit verify` run.

Holder side: `Key`, `Chain` (inspect, `delegate`, `verify`),
`Key.sign_proof`, `DPoPAuth` (httpx), `remit.mcp.connect`, `remit.llm`.
Verifier side: `verify_chain`, `Verifier` (with the gateway's chain cache).
Auditor side: `verify_receipt`, `verify_checkpoint`,
`verify_inclusion_proof`, `verify_consistency_proof`, `audit_log`,
`audit_leaves`, `remit.audit.audit_server`.
Errors: `remit.errors` (every one a `RemitError` with a stable `rule`).
"""

from remit import errors  # first: the native module raises its classes
from remit._native import (
    AuditReport,
    Chain,
    Checkpoint,
    Grant,
    Jwks,
    Key,
    Link,
    Receipt,
    VerifiedChain,
    Verifier,
    audit_leaves,
    audit_log,
    inclusion_proof,
    verify_chain,
    verify_checkpoint,
    verify_consistency_proof,
    verify_inclusion_proof,
    verify_receipt,
)
from remit.auth import DPoPAuth
from remit.errors import (
    ApprovalRequired,
    AuditFailed,
    ChainInvalid,
    DelegationRefused,
    Denied,
    InsufficientScope,
    InvalidKey,
    LimitExceeded,
    NotAuthorized,
    ProofInvalid,
    Refusal,
    RemitError,
    Unauthenticated,
    UpstreamFailed,
)

__all__ = [
    "AuditReport", "Chain", "Checkpoint", "Grant", "Jwks", "Key", "Link", "Receipt",
    "VerifiedChain", "Verifier", "audit_leaves", "audit_log", "inclusion_proof", "verify_chain",
    "verify_checkpoint", "verify_consistency_proof", "verify_inclusion_proof",
    "verify_receipt", "DPoPAuth", "errors", "ApprovalRequired", "AuditFailed",
    "ChainInvalid", "DelegationRefused", "Denied", "InsufficientScope", "InvalidKey",
    "LimitExceeded", "NotAuthorized", "ProofInvalid", "Refusal", "RemitError",
    "Unauthenticated", "UpstreamFailed",
]
