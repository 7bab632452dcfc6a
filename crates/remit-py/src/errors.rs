//! Rust errors as the exceptions of `remit.errors`, each carrying the
//! stable rule name its Rust error gives.

use pyo3::prelude::*;
use remit_token::{ChainError, CryptoError, IssueError, JwkError, LinkError};

/// The Python exception classes, defined in `remit/errors.py`.
pub(crate) mod py {
    pyo3::import_exception!(remit.errors, InvalidKey);
    pyo3::import_exception!(remit.errors, ChainInvalid);
    pyo3::import_exception!(remit.errors, DelegationRefused);
    pyo3::import_exception!(remit.errors, NotAuthorized);
    pyo3::import_exception!(remit.errors, ProofInvalid);
    pyo3::import_exception!(remit.errors, AuditFailed);
}

/// A key that did not load: `InvalidKey(message, rule)`.
pub(crate) fn key(error: impl std::fmt::Display, rule: &str) -> PyErr {
    py::InvalidKey::new_err((error.to_string(), rule.to_owned()))
}

/// A JWK error.
pub(crate) fn jwk(error: &JwkError) -> PyErr {
    let rule = match error {
        JwkError::Malformed(_) => "malformed",
        JwkError::Unsupported { .. } => "unsupported",
        JwkError::BadMember { .. } => "bad_member",
        JwkError::InvalidKey(_) => "invalid_key",
        JwkError::PrivateMember { .. } => "private_member",
        JwkError::WrongAlg { .. } => "wrong_alg",
    };
    key(error, rule)
}

/// A cryptography failure (a bad key, or the signer failing).
pub(crate) fn crypto(error: &CryptoError) -> PyErr {
    match error {
        CryptoError::Key(e) => jwk(e),
        other => key(other, "crypto"),
    }
}

/// A refused chain: `ChainInvalid(message, rule, link)`.
pub(crate) fn chain(error: &ChainError) -> PyErr {
    py::ChainInvalid::new_err((error.to_string(), error.rule(), error.link()))
}

/// The stable name of a refused delegation: the chain rule it would break
/// (`grant_widened`, `class_raised`, ...) or what was wrong with the ask.
pub(crate) fn issue_rule(error: &IssueError) -> &'static str {
    match error {
        IssueError::NoGrants => "no_grants",
        IssueError::Ttl { .. } => "ttl",
        IssueError::MaxDepth(_) => "max_depth_raised",
        IssueError::ToolNotInParent(_) => "grant_widened",
        IssueError::NotHolder { .. } => "not_holder",
        IssueError::ParentExpired { .. } => "expired",
        IssueError::Rule(rule) => LinkError::rule(rule),
        IssueError::Crypto(_) => "crypto",
    }
}

/// A refused delegation: `DelegationRefused(message, rule)`.
pub(crate) fn issue(error: &IssueError) -> PyErr {
    py::DelegationRefused::new_err((error.to_string(), issue_rule(error)))
}

/// A call the chain does not cover: `NotAuthorized(message, rule)`.
pub(crate) fn not_authorized(error: &remit_token::AuthorizeError) -> PyErr {
    py::NotAuthorized::new_err((error.to_string(), "insufficient_scope"))
}

/// A refused proof of possession: `ProofInvalid(message, rule)`.
pub(crate) fn proof(error: &remit_token::ProofError) -> PyErr {
    use remit_token::ProofError as P;
    let rule = match error {
        P::Jws(_) | P::Claims(_) | P::Jti => "malformed",
        P::Key(_) => "key",
        P::NotHolder => "not_holder",
        P::BadSignature => "signature",
        P::Method { .. } => "htm",
        P::Uri { .. } => "htu",
        P::Stale { .. } => "stale",
        P::RemitMismatch => "ath",
        P::PrivateKeyInHeader => "private_key_in_header",
    };
    py::ProofInvalid::new_err((error.to_string(), rule))
}

/// A failed audit check: `AuditFailed(message, code, index)`.
pub(crate) fn audit(message: impl std::fmt::Display, code: &str, index: Option<u64>) -> PyErr {
    py::AuditFailed::new_err((message.to_string(), code.to_owned(), index))
}
