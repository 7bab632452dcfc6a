//! Verifier side: verified chains (`authorize`, `verify_proof`),
//! `verify_chain`, and the cached `Verifier` — `remit-token`'s
//! verification, unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use remit_token::pop::{self, ProofRequest};
use remit_token::{authorize_call, Call, ChainCache, UnverifiedChain, VerifyOptions};

use crate::token::{with_jwks, Chain, Jwks};
use crate::{errors, json_text, now_or, to_python};

/// Registers the verifier classes and functions on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<VerifiedChain>()?;
    m.add_class::<Verifier>()?;
    m.add_function(wrap_pyfunction!(verify_chain, m)?)?;
    Ok(())
}

/// What a verification requires beyond the chain rules.
pub(crate) fn options(
    audience: &str,
    issuer: Option<String>,
    leeway: u64,
    now: Option<u64>,
) -> PyResult<VerifyOptions> {
    let mut opts = VerifyOptions::new(now_or(now)?);
    opts.audience = audience.to_owned();
    opts.issuer = issuer;
    opts.leeway_secs = leeway;
    Ok(opts)
}

/// A chain whose every link and rule verified: the only kind to act on.
/// It is a `Chain` too, so every property of `Chain` reads the same.
#[pyclass(module = "remit", name = "VerifiedChain", frozen, extends = Chain)]
#[derive(Debug)]
pub struct VerifiedChain {
    inner: remit_token::VerifiedChain,
}

impl VerifiedChain {
    pub(crate) fn wrap(
        py: Python<'_>,
        verified: Result<remit_token::VerifiedChain, remit_token::ChainError>,
    ) -> PyResult<Py<VerifiedChain>> {
        let inner = verified.map_err(|e| errors::chain(&e))?;
        let links =
            UnverifiedChain::from_links(inner.links().to_vec()).map_err(|e| errors::chain(&e))?;
        let init =
            PyClassInitializer::from(Chain { inner: links }).add_subclass(VerifiedChain { inner });
        Py::new(py, init)
    }
}

#[pymethods]
impl VerifiedChain {
    /// Checks one call against the chain's authority; returns the index of
    /// the grant that admits it, or raises `NotAuthorized` saying which
    /// part no grant admits.
    #[pyo3(signature = (tool, args=None, *, resource=None, action=None))]
    fn authorize(
        &self,
        tool: &str,
        args: Option<&Bound<'_, PyAny>>,
        resource: Option<&str>,
        action: Option<&str>,
    ) -> PyResult<usize> {
        let args: serde_json::Value = match args {
            Some(args) => serde_json::from_str(&json_text(args)?)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            None => serde_json::json!({}),
        };
        let call = Call {
            tool,
            resource,
            action,
            args: &args,
        };
        authorize_call(&self.inner, &call)
            .map(|a| a.grant)
            .map_err(|e| errors::not_authorized(&e))
    }

    /// Verifies a DPoP proof for a request against this chain's holder
    /// key (`iat` within `max_skew` seconds of `now`); returns its `jti`
    /// for the caller's replay cache, or raises `ProofInvalid`.
    #[pyo3(signature = (proof, method, url, *, now=None, max_skew=60))]
    fn verify_proof(
        &self,
        py: Python<'_>,
        proof: &str,
        method: &str,
        url: &str,
        now: Option<u64>,
        max_skew: u64,
    ) -> PyResult<String> {
        let now = now_or(now)?;
        let request = ProofRequest {
            htm: method,
            htu: url,
        };
        py.detach(|| pop::verify_proof(proof, &self.inner, request, now, max_skew))
            .map(|p| p.jti)
            .map_err(|e| errors::proof(&e))
    }

    /// The effective authority (as `remit token verify --json` prints it).
    #[getter]
    fn authority<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.authority())
    }

    /// The `jti` of every link, root first (what revocation checks).
    #[getter]
    fn jtis<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.jtis())
    }

    fn __repr__(&self) -> String {
        let a = self.inner.authority();
        format!(
            "VerifiedChain(agents={:?}, sub={:?}, exp={})",
            a.actors, a.sub, a.exp
        )
    }
}

/// Parses and verifies chain text (or a `Chain`) against the issuer
/// `jwks`; see `Chain.verify`.
#[pyfunction]
#[pyo3(signature = (chain, jwks, *, audience="remit", issuer=None, leeway=0, now=None))]
fn verify_chain(
    py: Python<'_>,
    chain: &Bound<'_, PyAny>,
    jwks: &Bound<'_, PyAny>,
    audience: &str,
    issuer: Option<String>,
    leeway: u64,
    now: Option<u64>,
) -> PyResult<Py<VerifiedChain>> {
    let opts = options(audience, issuer, leeway, now)?;
    let text = match chain.cast::<Chain>() {
        Ok(c) => c.get().inner.to_text(),
        Err(_) => chain.extract::<String>()?,
    };
    with_jwks(jwks, |jwks| {
        let keys = jwks.issuer_keys()?;
        let verified = py.detach(|| remit_token::VerifiedChain::verify_text(&text, keys, &opts));
        VerifiedChain::wrap(py, verified)
    })
}

/// A verifier for a service that sees the same chains again (a Python MCP
/// server, a proxy): `remit-token`'s `ChainCache`, the gateway's, in front
/// of `verify_chain`. A chain seen before is served from the cache until
/// its `exp`; a chain extending a cached one by a link costs that link's
/// check only. Call `revoked()` whenever a revocation lands: every cached
/// chain is then verified again.
#[pyclass(module = "remit", name = "Verifier", frozen)]
#[derive(Debug)]
pub struct Verifier {
    jwks: Py<Jwks>,
    audience: String,
    issuer: Option<String>,
    leeway: u64,
    cache: Mutex<ChainCache>,
    epoch: AtomicU64,
}

#[pymethods]
impl Verifier {
    /// A verifier of chains rooted in `jwks`, for `audience`, holding at
    /// most `capacity` verified chains.
    #[new]
    #[pyo3(signature = (jwks, *, audience="remit", issuer=None, leeway=0, capacity=10_000))]
    fn new(
        py: Python<'_>,
        jwks: &Bound<'_, PyAny>,
        audience: &str,
        issuer: Option<String>,
        leeway: u64,
        capacity: usize,
    ) -> PyResult<Self> {
        let jwks = match jwks.cast::<Jwks>() {
            Ok(jwks) => jwks.clone().unbind(),
            Err(_) => Py::new(py, Jwks::parse(&json_text(jwks)?)?)?,
        };
        jwks.get().issuer_keys()?;
        Ok(Verifier {
            jwks,
            audience: audience.to_owned(),
            issuer,
            leeway,
            cache: Mutex::new(ChainCache::new(capacity)),
            epoch: AtomicU64::new(0),
        })
    }

    /// Verifies chain text (or a `Chain`) like `verify_chain`, through the
    /// cache; raises `ChainInvalid`. Revocation of a `jti` in the chain
    /// remains the caller's check (`VerifiedChain.jtis`).
    #[pyo3(signature = (chain, *, now=None))]
    fn verify(
        &self,
        py: Python<'_>,
        chain: &Bound<'_, PyAny>,
        now: Option<u64>,
    ) -> PyResult<Py<VerifiedChain>> {
        let opts = options(&self.audience, self.issuer.clone(), self.leeway, now)?;
        let text = match chain.cast::<Chain>() {
            Ok(c) => c.get().inner.to_text(),
            Err(_) => chain.extract::<String>()?,
        };
        let keys = self.jwks.get().issuer_keys()?;
        let epoch = self.epoch.load(Ordering::Acquire);
        let verified = py.detach(|| {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache
                .verify(&text, keys, &opts, epoch)
                .map(|arc| remit_token::VerifiedChain::clone(&arc))
        });
        VerifiedChain::wrap(py, verified)
    }

    /// Forgets every cached verification (call it when a revocation lands).
    fn revoked(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn __len__(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
