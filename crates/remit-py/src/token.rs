//! Holder and verifier side: keys, chains, delegation, DPoP proofs,
//! chain verification — `remit-token` as Python classes.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDateTime, PyTzInfo};
use remit_token::pop::{self, ProofRequest};
use remit_token::{
    delegate, narrow_grants, Classification, DelegateRequest, EcPublicJwk, EcdsaP256Signer,
    Pattern, PrivateJwk, RemitClaims, Signer as _, UnverifiedChain, UnverifiedRemit,
};

use crate::verify::{options, VerifiedChain};
use crate::{errors, json_text, now_or, to_python};

/// Registers the token classes and functions on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Key>()?;
    m.add_class::<Jwks>()?;
    m.add_class::<Grant>()?;
    m.add_class::<Link>()?;
    m.add_class::<Chain>()?;
    Ok(())
}

/// A P-256 private key: an agent's holder key (or an issuer's).
#[pyclass(module = "remit", name = "Key", frozen)]
#[derive(Debug)]
pub struct Key {
    signer: EcdsaP256Signer,
}

impl Key {
    fn from_private(jwk: &PrivateJwk) -> PyResult<Self> {
        let signer = EcdsaP256Signer::from_jwk(jwk).map_err(|e| errors::crypto(&e))?;
        Ok(Key { signer })
    }
}

fn parse_private(text: &str) -> PyResult<PrivateJwk> {
    PrivateJwk::from_json(text).map_err(|e| match EcPublicJwk::from_json(text) {
        Ok(_) => errors::key(
            "this JWK holds only a public key; signing needs the private one (d)",
            "public_only",
        ),
        Err(_) => errors::jwk(&e),
    })
}

/// A public JWK from a `Key`, or a JWK given as a dict or JSON text (of a
/// private JWK only the public half is used).
fn public_jwk(value: &Bound<'_, PyAny>) -> PyResult<EcPublicJwk> {
    if let Ok(key) = value.cast::<Key>() {
        return Ok(key.get().signer.public_jwk().clone());
    }
    let text = json_text(value)?;
    match PrivateJwk::from_json(&text) {
        Ok(private) => Ok(private.public),
        Err(_) => EcPublicJwk::from_json(&text).map_err(|e| errors::jwk(&e)),
    }
}

#[pymethods]
impl Key {
    /// A fresh P-256 key; its `kid` is `kid` or its RFC 7638 thumbprint.
    #[staticmethod]
    #[pyo3(signature = (kid=None))]
    fn generate(kid: Option<String>) -> PyResult<Self> {
        let signer = EcdsaP256Signer::generate().map_err(|e| errors::crypto(&e))?;
        match kid {
            None => Ok(Key { signer }),
            Some(kid) => {
                let mut jwk = signer.to_private_jwk().map_err(|e| errors::crypto(&e))?;
                jwk.public.kid = Some(kid);
                Key::from_private(&jwk)
            }
        }
    }

    /// Loads a private JWK given as a dict or JSON text.
    #[staticmethod]
    fn from_jwk(jwk: &Bound<'_, PyAny>) -> PyResult<Self> {
        Key::from_private(&parse_private(&json_text(jwk)?)?)
    }

    /// Loads a private JWK file (as written by `remit keys generate`).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let text = std::fs::read_to_string(&path)?;
        Key::from_private(&parse_private(&text)?)
    }

    /// Writes the private JWK to a new file readable by its owner only
    /// (mode 0600); an existing file is never overwritten.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        use std::io::Write as _;
        let jwk = self
            .signer
            .to_private_jwk()
            .map_err(|e| errors::crypto(&e))?;
        let text =
            serde_json::to_string_pretty(&jwk).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        Ok(())
    }

    /// The key id (`kid`).
    #[getter]
    fn kid(&self) -> &str {
        self.signer.key_id()
    }

    /// The RFC 7638 thumbprint: what a remit's `cnf.jkt` names.
    #[getter]
    fn thumbprint(&self) -> String {
        self.signer.thumbprint().to_string()
    }

    /// The public JWK with `kid`, `use` and `alg`, as a JWKS publishes it.
    #[getter]
    fn public_jwk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let jwk = self.signer.public_jwk().clone().published(self.kid());
        to_python(py, &jwk)
    }

    /// The private JWK (with `d`): handle it like a password.
    fn private_jwk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let jwk = self
            .signer
            .to_private_jwk()
            .map_err(|e| errors::crypto(&e))?;
        to_python(py, &jwk)
    }

    /// A JWKS holding this key's public half: `{"keys": [...]}`.
    fn jwks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let jwk = self.signer.public_jwk().clone().published(self.kid());
        to_python(py, &serde_json::json!({ "keys": [jwk] }))
    }

    /// Signs a DPoP proof (RFC 9449: `jti`, `htm`, `htu`, `iat`, `ath`) for
    /// one request with this key, bound to the chain's leaf remit. The query
    /// and fragment are cut from `url`, as RFC 9449 asks of `htu`.
    #[pyo3(signature = (chain, method, url, now=None))]
    fn sign_proof(
        &self,
        py: Python<'_>,
        chain: &Bound<'_, PyAny>,
        method: &str,
        url: &str,
        now: Option<u64>,
    ) -> PyResult<String> {
        let now = now_or(now)?;
        let leaf = leaf_compact(chain)?;
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let request = ProofRequest { htm: method, htu };
        py.detach(|| pop::create_proof(&self.signer, &leaf, request, now))
            .map_err(|e| errors::crypto(&e))
    }

    fn __repr__(&self) -> String {
        format!("Key(kid={:?}, private)", self.kid())
    }
}

/// The leaf's compact form from a `Chain` or chain text.
fn leaf_compact(chain: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(chain) = chain.cast::<Chain>() {
        return Ok(chain.get().inner.leaf().compact().to_owned());
    }
    let text: String = chain.extract()?;
    let text = text.trim();
    Ok(text.rsplit('~').next().unwrap_or(text).to_owned())
}

/// Issuer public keys by `kid` (for chains) and receipt keys (for audits).
#[pyclass(module = "remit", name = "Jwks", frozen)]
#[derive(Debug)]
pub struct Jwks {
    /// The strict issuer key set (every key with a unique `kid`, ES256).
    token: Result<remit_token::Jwks, String>,
    /// The receipt key set (a key without `kid` is known by its thumbprint).
    pub(crate) ledger: Result<remit_ledger::Jwks, String>,
}

impl Jwks {
    pub(crate) fn parse(text: &str) -> PyResult<Self> {
        let token = remit_token::Jwks::from_json(text).map_err(|e| e.to_string());
        let ledger = remit_ledger::Jwks::from_json(text).map_err(|e| e.to_string());
        if let (Err(e), Err(_)) = (&token, &ledger) {
            return Err(errors::key(format!("not a JWKS: {e}"), "malformed_jwks"));
        }
        Ok(Jwks { token, ledger })
    }

    pub(crate) fn issuer_keys(&self) -> PyResult<&remit_token::Jwks> {
        self.token
            .as_ref()
            .map_err(|e| errors::key(format!("not an issuer JWKS: {e}"), "malformed_jwks"))
    }

    /// The receipt keys, for the auditor functions.
    pub(crate) fn receipt_keys(&self) -> PyResult<&remit_ledger::Jwks> {
        self.ledger
            .as_ref()
            .map_err(|e| errors::key(format!("not a receipt JWKS: {e}"), "malformed_jwks"))
    }
}

#[pymethods]
impl Jwks {
    /// Parses `{"keys": [...]}` given as a dict or JSON text.
    #[staticmethod]
    fn from_json(jwks: &Bound<'_, PyAny>) -> PyResult<Self> {
        Jwks::parse(&json_text(jwks)?)
    }

    /// Reads a JWKS file (as written by `remit keys jwks`).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Jwks::parse(&std::fs::read_to_string(path)?)
    }

    fn __len__(&self) -> usize {
        self.token.as_ref().map_or(0, remit_token::Jwks::len)
    }
}

/// A `Jwks`, or anything `Jwks.from_json` takes.
pub(crate) fn with_jwks<T>(
    value: &Bound<'_, PyAny>,
    f: impl FnOnce(&Jwks) -> PyResult<T>,
) -> PyResult<T> {
    match value.cast::<Jwks>() {
        Ok(jwks) => f(jwks.get()),
        Err(_) => f(&Jwks::parse(&json_text(value)?)?),
    }
}

/// One grant of authority: tools, resource patterns, actions, argument
/// constraints (`*` matches any run of characters).
#[pyclass(module = "remit", name = "Grant", frozen, from_py_object)]
#[derive(Debug, Clone)]
pub struct Grant {
    inner: remit_token::Grant,
}

#[pymethods]
impl Grant {
    /// A grant over `tools`; `resources` and `actions` unrestricted when
    /// `None`; `args` maps an argument to one constraint, e.g.
    /// `{"path": {"prefix": "/tmp/"}}`.
    #[new]
    #[pyo3(signature = (tools, resources=None, actions=None, args=None))]
    fn new(
        tools: Vec<String>,
        resources: Option<Vec<String>>,
        actions: Option<Vec<String>>,
        args: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let args: serde_json::Value = match args {
            Some(args) => serde_json::from_str(&json_text(args)?)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            None => serde_json::json!({}),
        };
        let mut grant = serde_json::json!({"type": "remit_tool", "tools": tools, "args": args});
        if let Some(resources) = resources {
            grant["resources"] = resources.into();
        }
        if let Some(actions) = actions {
            grant["actions"] = actions.into();
        }
        let inner: remit_token::Grant = serde_json::from_value(grant)
            .map_err(|e| PyValueError::new_err(format!("invalid grant: {e}")))?;
        inner
            .check()
            .map_err(|e| PyValueError::new_err(format!("invalid grant: {e}")))?;
        Ok(Grant { inner })
    }

    /// Tool names or patterns.
    #[getter]
    fn tools(&self) -> Vec<String> {
        self.inner.tools.iter().map(|p| p.to_string()).collect()
    }

    /// Resource patterns; `None` when unrestricted.
    #[getter]
    fn resources(&self) -> Option<Vec<String>> {
        let patterns = self.inner.resources.as_ref()?;
        Some(patterns.iter().map(|p| p.to_string()).collect())
    }

    /// Allowed actions; `None` when unrestricted.
    #[getter]
    fn actions(&self) -> Option<Vec<String>> {
        self.inner.actions.clone()
    }

    /// Argument constraints, e.g. `{"path": {"prefix": "/tmp/"}}`.
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.args)
    }

    /// The grant as its RFC 9396 `authorization_details` entry.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner)
    }

    fn __eq__(&self, other: &Grant) -> bool {
        self.inner == other.inner
    }

    fn __repr__(&self) -> String {
        let json = serde_json::to_string(&self.inner).unwrap_or_default();
        format!("Grant({json})")
    }
}

/// One link of a chain, parsed but on its own not verified.
#[pyclass(module = "remit", name = "Link", frozen)]
#[derive(Debug)]
pub struct Link {
    inner: UnverifiedRemit,
}

#[pymethods]
impl Link {
    /// The compact JWS.
    #[getter]
    fn compact(&self) -> &str {
        self.inner.compact()
    }

    /// The header `kid`: an issuer key id (root) or the parent's holder
    /// thumbprint (child).
    #[getter]
    fn kid(&self) -> &str {
        self.inner.kid()
    }

    /// base64url SHA-256 of the compact form (a child's `prf`).
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash()
    }

    /// The token id.
    #[getter]
    fn jti(&self) -> &str {
        &self.inner.claims().jti
    }

    /// The agent holding this link (`act.sub`).
    #[getter]
    fn agent(&self) -> &str {
        &self.inner.claims().act.sub
    }

    /// Every claim, as a dict.
    #[getter]
    fn claims<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.inner.claims())
    }

    fn __str__(&self) -> &str {
        self.inner.compact()
    }

    fn __repr__(&self) -> String {
        format!("Link(agent={:?}, jti={:?})", self.agent(), self.jti())
    }
}

/// A delegation chain `root~child~...~leaf`, parsed (strictly) but not
/// verified: read it to display it, verify it (`verify`) to trust it.
/// The effective authority is the leaf's, since every child must lie
/// within its parent.
#[pyclass(module = "remit", name = "Chain", frozen, subclass)]
#[derive(Debug)]
pub struct Chain {
    pub(crate) inner: UnverifiedChain,
}

fn utc_datetime<'py>(py: Python<'py>, secs: u64) -> PyResult<Bound<'py, PyDateTime>> {
    let utc = PyTzInfo::utc(py)?;
    PyDateTime::from_timestamp(py, secs as f64, Some(&utc))
}

fn parse_class(name: &str) -> PyResult<Classification> {
    name.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "classification {name:?}: use PUBLIC, INTERNAL, CONFIDENTIAL or RESTRICTED"
        ))
    })
}

fn patterns(texts: &[String]) -> PyResult<Vec<Pattern>> {
    texts
        .iter()
        .map(|t| {
            Pattern::try_from(t.as_str())
                .map_err(|e| PyValueError::new_err(format!("pattern {t:?}: {e}")))
        })
        .collect()
}

impl Chain {
    fn leaf(&self) -> &RemitClaims {
        self.inner.leaf().claims()
    }
}

#[pymethods]
impl Chain {
    /// Parses chain text (refusing any malformed link, naming it).
    #[staticmethod]
    fn parse(text: &str) -> PyResult<Self> {
        let inner = UnverifiedChain::parse(text).map_err(|e| errors::chain(&e))?;
        Ok(Chain { inner })
    }

    /// Reads chain text from a file.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Chain::parse(&std::fs::read_to_string(path)?)
    }

    /// The chain text, links joined by `~`: what `Authorization` carries.
    #[getter]
    fn text(&self) -> String {
        self.inner.to_text()
    }

    /// The links, root first.
    #[getter]
    fn links(&self) -> Vec<Link> {
        let links = self.inner.links().iter().cloned();
        links.map(|inner| Link { inner }).collect()
    }

    /// The leaf's grants: the chain's effective authority.
    #[getter]
    fn grants(&self) -> Vec<Grant> {
        let grants = self.leaf().authorization_details.iter().cloned();
        grants.map(|inner| Grant { inner }).collect()
    }

    /// Tool calls the remit allows (`max_steps`); `None` when unlimited.
    #[getter]
    fn steps(&self) -> Option<u64> {
        self.leaf().max_steps
    }

    /// When the chain stops being valid (the leaf's `exp`, which no link
    /// may exceed), an aware UTC `datetime`.
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        utc_datetime(py, self.leaf().exp)
    }

    /// When the chain starts being valid (the leaf's `nbf`).
    #[getter]
    fn not_before<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        utc_datetime(py, self.leaf().nbf)
    }

    /// Whom the work is for (`sub`).
    #[getter]
    fn subject(&self) -> &str {
        &self.leaf().sub
    }

    /// The agent holding the leaf.
    #[getter]
    fn agent(&self) -> &str {
        &self.leaf().act.sub
    }

    /// Every agent, the root's first.
    #[getter]
    fn agents(&self) -> Vec<String> {
        let links = self.inner.links().iter();
        links.map(|l| l.claims().act.sub.clone()).collect()
    }

    /// The audience (the gateway).
    #[getter]
    fn audience(&self) -> &str {
        &self.leaf().aud
    }

    /// The highest classification the holder may receive.
    #[getter]
    fn classification(&self) -> &'static str {
        self.leaf().class.name()
    }

    /// The leaf's depth (0 for a root alone).
    #[getter]
    fn depth(&self) -> u32 {
        self.leaf().depth
    }

    /// The deepest depth a descendant may have.
    #[getter]
    fn max_depth(&self) -> u32 {
        self.leaf().max_depth
    }

    /// The thumbprint of the key proofs must be signed with.
    #[getter]
    fn holder(&self) -> String {
        self.leaf().cnf.jkt.to_string()
    }

    /// The leaf's token id.
    #[getter]
    fn jti(&self) -> &str {
        &self.leaf().jti
    }

    /// The root's token id (what revocation of the whole tree names).
    #[getter]
    fn root_jti(&self) -> &str {
        &self.leaf().root
    }

    /// The leaf's claims, as a dict.
    #[getter]
    fn claims<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.leaf())
    }

    /// Signs a narrower child for a sub-agent offline and returns the
    /// longer chain. Name `tools` (each within a parent grant, inheriting
    /// its actions and argument constraints, like `remit token delegate`)
    /// with optional `resources`, or give whole `grants`. Raises
    /// `DelegationRefused` naming the rule a widening would break.
    #[pyo3(signature = (key, to, agent, *, tools=None, resources=None, grants=None,
        ttl=30, classification=None, max_steps=None, max_depth=None, now=None))]
    #[allow(clippy::too_many_arguments)]
    fn delegate(
        &self,
        key: &Key,
        to: &Bound<'_, PyAny>,
        agent: String,
        tools: Option<Vec<String>>,
        resources: Option<Vec<String>>,
        grants: Option<Vec<Grant>>,
        ttl: u64,
        classification: Option<&str>,
        max_steps: Option<u64>,
        max_depth: Option<u32>,
        now: Option<u64>,
    ) -> PyResult<Chain> {
        let grants = match (tools, grants) {
            (Some(tools), None) => {
                let resources = resources.as_deref().map(patterns).transpose()?;
                let parent = &self.leaf().authorization_details;
                narrow_grants(parent, &patterns(&tools)?, resources.as_deref())
                    .map_err(|e| errors::issue(&e))?
            }
            (None, Some(grants)) if resources.is_none() => {
                grants.into_iter().map(|g| g.inner).collect()
            }
            _ => {
                return Err(PyValueError::new_err(
                    "give either tools (with optional resources) or grants",
                ))
            }
        };
        let mut request = DelegateRequest::new(agent, public_jwk(to)?, grants);
        request.ttl_secs = ttl;
        request.class = classification.map(parse_class).transpose()?;
        request.max_steps = max_steps;
        request.max_depth = max_depth;
        let child = delegate(&self.inner, &key.signer, &request, now_or(now)?)
            .map_err(|e| errors::issue(&e))?;
        let mut links = self.inner.links().to_vec();
        links.push(child);
        let inner = UnverifiedChain::from_links(links).map_err(|e| errors::chain(&e))?;
        Ok(Chain { inner })
    }

    /// Verifies every link against the issuer `jwks` and every chain rule
    /// at `now` (default: the clock); raises `ChainInvalid` naming the
    /// link and rule.
    #[pyo3(signature = (jwks, *, audience="remit", issuer=None, leeway=0, now=None))]
    fn verify(
        &self,
        py: Python<'_>,
        jwks: &Bound<'_, PyAny>,
        audience: &str,
        issuer: Option<String>,
        leeway: u64,
        now: Option<u64>,
    ) -> PyResult<Py<VerifiedChain>> {
        let opts = options(audience, issuer, leeway, now)?;
        let chain = self.inner.clone();
        with_jwks(jwks, |jwks| {
            let keys = jwks.issuer_keys()?;
            let verified = py.detach(|| remit_token::VerifiedChain::verify(chain, keys, &opts));
            VerifiedChain::wrap(py, verified)
        })
    }

    fn __str__(&self) -> String {
        self.text()
    }

    fn __len__(&self) -> usize {
        self.inner.links().len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Chain(agents={:?}, sub={:?}, exp={}, UNVERIFIED)",
            self.agents(),
            self.subject(),
            self.leaf().exp
        )
    }
}
