//! The native half of the `remit` Python package.
//!
//! Every rule lives in `remit-token` and `remit-ledger`; this crate only
//! converts between Python objects and their types, so a Python agent or
//! auditor runs exactly the checks the gateway and `remit audit verify`
//! run. The Python half (`python/remit`) adds what is transport, not rule:
//! the `httpx` auth, the MCP session, the LLM SDK helpers and the typed
//! refusals of the gateway.
//!
//! Errors cross as the exception classes of `remit.errors` (defined in
//! Python so they can carry attributes and be subclassed), each with the
//! stable rule name the Rust error gives (`ChainError::rule`,
//! `AuditError::code`).
//!
//! The GIL is released around signature work, so threads of one agent
//! sign and verify in parallel.

mod errors;
mod ledger;
mod token;
mod verify;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// The current time in Unix seconds, or the caller's `now`.
pub(crate) fn now_or(now: Option<u64>) -> PyResult<u64> {
    match now {
        Some(now) => Ok(now),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("the clock is before 1970")),
    }
}

/// `value` as Python objects (dicts, lists, str, int), through `json.loads`.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// JSON text from a `str` (taken as JSON), `bytes`, or anything
/// `json.dumps` accepts (a dict or list).
pub(crate) fn json_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.to_owned());
    }
    if let Ok(bytes) = value.extract::<Vec<u8>>() {
        return String::from_utf8(bytes)
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("JSON bytes are not UTF-8"));
    }
    value
        .py()
        .import("json")?
        .call_method1("dumps", (value,))?
        .extract()
}

/// The extension module `remit._native`; `remit/__init__.py` re-exports it.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    token::register(m)?;
    verify::register(m)?;
    ledger::register(m)?;
    Ok(())
}
