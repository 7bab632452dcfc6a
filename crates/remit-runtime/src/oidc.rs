//! OpenID Connect identities: ID tokens from configured issuers, verified
//! with the issuer's published keys, become users of Remit.
//!
//! Two places accept them:
//!
//! - `/oauth/token` with `subject_token_type =
//!   urn:ietf:params:oauth:token-type:id_token` ([`ID_TOKEN_TYPE`]): the
//!   ID token's user is the subject; the actor agent gets a root remit for
//!   that user, decided by the policy `issue` action (the control plane's token exchange).
//! - The admin API: `Authorization: Bearer <ID token>` whose admin claim
//!   matches (for example `groups` contains `remit-admins`) is accepted
//!   beside the admin token, and the receipts of what it does name the
//!   identity instead of `admin` (the control plane's admin authentication).
//!
//! # Verification
//!
//! Verification is done by `jsonwebtoken` (aws-lc-rs backend); this module
//! only chooses the issuer and the key and sets the rules:
//!
//! 1. the unverified `iss` selects one configured issuer (exact string
//!    match), nothing else read before the signature is trusted;
//! 2. the header `alg` must be one the issuer allows: RS256 and/or ES256
//!    only (`none`, HS* and every other algorithm are refused by
//!    configuration and by the verifier);
//! 3. the key is the issuer's JWK with the header's `kid` whose type fits
//!    the algorithm (an RSA key never verifies ES256 and the reverse, and
//!    a JWK's own `alg`, when present, must be the header's); an unknown
//!    `kid` makes a remote key set refetch once (at most every
//!    `min_refresh_secs`), then is refused;
//! 4. signature, `iss`, `aud` (must contain the configured audience),
//!    `exp`, `nbf` and `iat` (both with the configured clock skew), `sub`
//!    present.
//!
//! # Keys
//!
//! A key set comes from a static `jwks_file`, an explicit `jwks_uri`, or
//! OpenID discovery (`<issuer>/.well-known/openid-configuration`, whose
//! `issuer` must equal the configured one, then its `jwks_uri`). Remote
//! documents are fetched over HTTPS (rustls on aws-lc-rs, the system's
//! roots); plain `http://` is accepted only for loopback hosts (a local
//! test IdP), never across a network. Fetched keys are cached for
//! [`KEYS_MAX_AGE`] and refetched on an unknown `kid`.
//!
//! # Users
//!
//! The user is the token's `sub`, prefixed `<subject_prefix>:` when the
//! issuer has a prefix. With one issuer the prefix is optional; with
//! several, each must have its own, so two issuers' subjects can never
//! name the same user. The result must be a valid Remit id (letters,
//! digits, `. _ : - @ /`, at most 200 bytes); other subjects are refused.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// RFC 8693 token type of an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// How long fetched keys are used before they are fetched again.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Largest discovery or JWKS document read, bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Time allowed for one discovery or JWKS fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest clock skew an issuer may be configured with, seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// One trusted OpenID Connect issuer (a `[[oidc]]` table of the
/// configuration file, or the `REMIT_OIDC_*` environment variables).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// The audience (the client id Remit is registered under); an ID
    /// token's `aud` must contain it.
    pub audience: String,
    /// Where the keys are, when not found by discovery.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A static JWKS file instead of fetching keys.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The claim that grants admin, e.g. `groups`.
    #[serde(default)]
    pub admin_claim: Option<String>,
    /// The value the admin claim must be or contain, e.g. `remit-admins`.
    #[serde(default)]
    pub admin_value: Option<String>,
    /// Signature algorithms accepted: `RS256`, `ES256` (both by default).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (60 by default, at most 300).
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// Prefix of this issuer's users (`<prefix>:<sub>`); required and
    /// distinct when several issuers are configured.
    #[serde(default)]
    pub subject_prefix: Option<String>,
    /// Shortest time between two key fetches caused by unknown `kid`s, seconds (10 by default).
    #[serde(default = "default_min_refresh")]
    pub min_refresh_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

fn default_skew() -> u64 {
    60
}

fn default_min_refresh() -> u64 {
    10
}

impl OidcIssuerConfig {
    /// An issuer with the defaults: keys by discovery, RS256 and ES256,
    /// 60 s skew, no admin claim, no prefix.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: None,
            jwks_file: None,
            admin_claim: None,
            admin_value: None,
            algorithms: default_algorithms(),
            clock_skew_secs: default_skew(),
            subject_prefix: None,
            min_refresh_secs: default_min_refresh(),
        }
    }
}

/// A configuration that cannot be used, or a static key file that does
/// not load.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    /// One issuer's settings are wrong.
    #[error("OIDC issuer {issuer:?}: {detail}")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// No issuer is configured.
    #[error("no OpenID Connect issuer is configured on this server")]
    NotConfigured,
    /// Not a compact JWS with a JSON header and payload.
    #[error("not a JWT: {detail}")]
    Malformed {
        /// What is wrong.
        detail: String,
    },
    /// `iss` names no configured issuer.
    #[error("issuer {iss:?} is not trusted here")]
    UnknownIssuer {
        /// The token's issuer.
        iss: String,
    },
    /// The header's algorithm is not accepted for this issuer.
    #[error("algorithm {alg} is not accepted (allowed: {allowed})")]
    Algorithm {
        /// The header's algorithm.
        alg: String,
        /// What the issuer allows.
        allowed: String,
    },
    /// No key of the issuer has this `kid` (after a refetch).
    #[error("no key of issuer {iss:?} has kid {kid:?}")]
    UnknownKey {
        /// The issuer.
        iss: String,
        /// The header's key id (empty when absent).
        kid: String,
    },
    /// Signature or a claim check failed.
    #[error("{detail}")]
    Invalid {
        /// Which check failed.
        detail: String,
    },
    /// The issuer's keys could not be obtained (fail closed: refused).
    #[error("the keys of issuer {iss:?} are unavailable: {detail}")]
    Keys {
        /// The issuer.
        iss: String,
        /// Why.
        detail: String,
    },
}

/// A verified ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The issuer it came from.
    pub issuer: String,
    /// The token's `sub`.
    pub sub: String,
    /// The Remit user: `sub`, or `<subject_prefix>:<sub>`.
    pub user: String,
    /// Whether the issuer's admin claim matched.
    pub admin: bool,
    /// Authentication methods (`amr`), when the token has them.
    pub amr: Vec<String>,
    /// Authentication context class (`acr`), when present.
    pub acr: Option<String>,
    /// When the token expires, Unix seconds.
    pub exp: u64,
}

/// The configured issuers and their key caches. Cheap to share.
#[derive(Debug, Default)]
pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
}

#[derive(Debug)]
struct TrustedIssuer {
    config: OidcIssuerConfig,
    algorithms: Vec<Algorithm>,
    keys: KeySource,
}

#[derive(Debug)]
enum KeySource {
    Static(Arc<KeySet>),
    Remote(tokio::sync::Mutex<RemoteKeys>),
}

#[derive(Debug, Default)]
struct RemoteKeys {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
}

/// The usable keys of one issuer.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the RSA and P-256 keys and skipping
    /// the rest (an IdP may publish key types this server does not use).
    fn parse(document: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let doc: Document = serde_json::from_slice(document)
            .map_err(|e| format!("not a JWKS document ({{\"keys\": [...]}}): {e}"))?;
        let keys = doc
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter(|k| {
                matches!(
                    &k.algorithm,
                    AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)
                )
            })
            .collect();
        Ok(Self { keys })
    }

    /// The key for `kid` (or the only fitting key when the token names
    /// none) that can verify `alg`.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Jwk> {
        let fits = |k: &&Jwk| key_fits(k, alg);
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(fits)
                .find(|k| k.common.key_id.as_deref() == Some(kid)),
            None => {
                let mut fitting = self.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

/// Whether `key` may verify `alg`: the key type matches the algorithm and
/// a key's own `alg`, when it states one, is `alg`.
fn key_fits(key: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match (&key.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        _ => false,
    };
    let stated_fits = match key.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    type_fits && stated_fits
}

/// The claims this module reads; the rest are checked by the verifier or ignored.
#[derive(Debug, Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(default)]
    amr: Vec<String>,
    #[serde(default)]
    acr: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl OidcVerifier {
    /// Checks the configuration and loads static key files. Remote keys
    /// are fetched on first use, so a start does not depend on the IdP.
    pub fn new(configs: Vec<OidcIssuerConfig>) -> Result<Self, OidcConfigError> {
        let several = configs.len() > 1;
        let mut prefixes = HashSet::new();
        let mut names = HashSet::new();
        let mut issuers = Vec::with_capacity(configs.len());
        for config in configs {
            let bad = |detail: String| OidcConfigError::Issuer {
                issuer: config.issuer.clone(),
                detail,
            };
            check_url(&config.issuer).map_err(|e| bad(format!("issuer: {e}")))?;
            if !names.insert(config.issuer.clone()) {
                return Err(bad("configured twice".into()));
            }
            if config.audience.trim().is_empty() {
                return Err(bad("audience (the client id) is required".into()));
            }
            if let Some(uri) = &config.jwks_uri {
                check_url(uri).map_err(|e| bad(format!("jwks_uri: {e}")))?;
            }
            if config.jwks_uri.is_some() && config.jwks_file.is_some() {
                return Err(bad("give jwks_uri or jwks_file, not both".into()));
            }
            if config.admin_claim.is_some() != config.admin_value.is_some() {
                return Err(bad(
                    "admin_claim and admin_value go together (e.g. groups / remit-admins)".into(),
                ));
            }
            if config.clock_skew_secs > MAX_CLOCK_SKEW_SECS {
                return Err(bad(format!(
                    "clock_skew_secs {} is above the limit of {MAX_CLOCK_SKEW_SECS}",
                    config.clock_skew_secs
                )));
            }
            let mut algorithms = Vec::new();
            for name in &config.algorithms {
                let alg = match name.as_str() {
                    "RS256" => Algorithm::RS256,
                    "ES256" => Algorithm::ES256,
                    other => {
                        return Err(bad(format!(
                            "algorithm {other:?} is not accepted; use RS256 and/or ES256"
                        )))
                    }
                };
                if !algorithms.contains(&alg) {
                    algorithms.push(alg);
                }
            }
            if algorithms.is_empty() {
                return Err(bad("algorithms must name RS256 and/or ES256".into()));
            }
            match config.subject_prefix.as_deref() {
                Some(prefix) => {
                    let valid = !prefix.is_empty()
                        && prefix.len() <= 64
                        && prefix
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-@/".contains(&b));
                    if !valid {
                        return Err(bad(format!(
                            "subject_prefix {prefix:?} must be 1 to 64 of letters, digits, . _ - @ /"
                        )));
                    }
                    if !prefixes.insert(prefix.to_owned()) {
                        return Err(bad(format!(
                            "subject_prefix {prefix:?} is used by another issuer"
                        )));
                    }
                }
                None if several => {
                    return Err(bad(
                        "with several issuers each needs its own subject_prefix, so their users cannot collide".into(),
                    ))
                }
                None => {}
            }
            let keys = match &config.jwks_file {
                Some(path) => {
                    let text = std::fs::read(path)
                        .map_err(|e| bad(format!("jwks_file {}: {e}", path.display())))?;
                    let set = KeySet::parse(&text)
                        .map_err(|e| bad(format!("jwks_file {}: {e}", path.display())))?;
                    if set.keys.is_empty() {
                        return Err(bad(format!(
                            "jwks_file {} has no RSA or P-256 key",
                            path.display()
                        )));
                    }
                    KeySource::Static(Arc::new(set))
                }
                None => KeySource::Remote(tokio::sync::Mutex::new(RemoteKeys::default())),
            };
            issuers.push(TrustedIssuer {
                config,
                algorithms,
                keys,
            });
        }
        Ok(Self { issuers })
    }

    /// Whether any issuer is configured.
    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// The configured issuer URLs.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|i| i.config.issuer.as_str())
    }

    /// Verifies an ID token at `now` (Unix seconds) and returns who it names.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Identity, OidcError> {
        if self.issuers.is_empty() {
            return Err(OidcError::NotConfigured);
        }
        let malformed = |detail: String| OidcError::Malformed { detail };
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            malformed(format!(
                "header: {e} (alg none and unknown algorithms are refused)"
            ))
        })?;
        let iss = unverified_issuer(token).map_err(malformed)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| OidcError::UnknownIssuer { iss: iss.clone() })?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(OidcError::Algorithm {
                alg: format!("{:?}", header.alg),
                allowed: issuer.config.algorithms.join(", "),
            });
        }
        let kid = header.kid.as_deref();
        let key = issuer.key(kid, header.alg).await?;
        let decoding = DecodingKey::from_jwk(&key).map_err(|e| OidcError::Keys {
            iss: iss.clone(),
            detail: format!("key {kid:?}: {e}"),
        })?;
        let skew = issuer.config.clock_skew_secs;
        let mut validation = Validation::new(header.alg);
        validation.leeway = skew;
        validation.validate_nbf = true;
        validation.set_audience(&[issuer.config.audience.as_str()]);
        validation.set_issuer(&[issuer.config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<IdClaims>(token, &decoding, &validation)
            .map_err(|e| invalid(&e, &issuer.config))?;
        let claims = data.claims;
        if claims.iat > now.saturating_add(skew) {
            return Err(OidcError::Invalid {
                detail: format!(
                    "iat {} is in the future (now {now}, skew {skew} s)",
                    claims.iat
                ),
            });
        }
        if claims.sub.is_empty() {
            return Err(OidcError::Invalid {
                detail: "sub is empty".into(),
            });
        }
        let user = match &issuer.config.subject_prefix {
            Some(prefix) => format!("{prefix}:{}", claims.sub),
            None => claims.sub.clone(),
        };
        if user.len() > 200
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_-@/".contains(&b))
        {
            return Err(OidcError::Invalid {
                detail: format!(
                    "sub {:?} cannot name a Remit user (letters, digits, . _ : - @ /, at most 200 bytes)",
                    claims.sub
                ),
            });
        }
        let admin = match (&issuer.config.admin_claim, &issuer.config.admin_value) {
            (Some(claim), Some(value)) => claim_has(&claims.other, claim, value),
            _ => false,
        };
        Ok(Identity {
            issuer: claims.iss,
            sub: claims.sub,
            user,
            admin,
            amr: claims.amr,
            acr: claims.acr,
            exp: claims.exp,
        })
    }
}

/// Whether `claims[name]` is `value`, or a list containing it.
fn claim_has(claims: &Map<String, Value>, name: &str, value: &str) -> bool {
    match claims.get(name) {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
        _ => false,
    }
}

fn invalid(error: &jsonwebtoken::errors::Error, config: &OidcIssuerConfig) -> OidcError {
    use jsonwebtoken::errors::ErrorKind;
    let detail = match error.kind() {
        ErrorKind::InvalidSignature => "the signature does not verify with the issuer's key".into(),
        ErrorKind::ExpiredSignature => {
            format!("the token has expired (skew {} s)", config.clock_skew_secs)
        }
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => format!("aud does not contain {:?}", config.audience),
        ErrorKind::InvalidIssuer => format!("iss is not {:?}", config.issuer),
        ErrorKind::MissingRequiredClaim(claim) => format!("claim {claim:?} is required"),
        ErrorKind::InvalidAlgorithm => "the algorithm does not fit the key".into(),
        other => format!("{other:?}"),
    };
    OidcError::Invalid { detail }
}

/// The payload's `iss`, read before verification only to choose the issuer.
fn unverified_issuer(token: &str) -> Result<String, String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected three dot-separated parts".into());
    };
    let bytes = remit_token::b64::decode(payload).map_err(|e| format!("payload: {e}"))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|e| format!("payload: {e}"))?;
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        _ => Err("iss is missing or not a string".into()),
    }
}

impl TrustedIssuer {
    /// The key for `kid`; a remote set is fetched when missing or old, and
    /// once more on an unknown `kid` (rate-limited).
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, OidcError> {
        let iss = &self.config.issuer;
        let unknown = || OidcError::UnknownKey {
            iss: iss.clone(),
            kid: kid.unwrap_or_default().to_owned(),
        };
        let remote = match &self.keys {
            KeySource::Static(set) => return set.find(kid, alg).cloned().ok_or_else(unknown),
            KeySource::Remote(remote) => remote,
        };
        // One fetch at a time; readers of a fresh set only hold the lock to
        // clone an Arc.
        let mut cache = remote.lock().await;
        let age = cache.fetched_at.map(|t| t.elapsed());
        let stale = cache.keys.is_none() || age.is_none_or(|a| a > KEYS_MAX_AGE);
        if !stale {
            if let Some(key) = cache.keys.as_ref().and_then(|s| s.find(kid, alg)) {
                return Ok(key.clone());
            }
        }
        let may_refetch =
            stale || age.is_none_or(|a| a >= Duration::from_secs(self.config.min_refresh_secs));
        if !may_refetch {
            return Err(unknown());
        }
        let fetched = fetch_keys(&self.config).await;
        cache.fetched_at = Some(Instant::now());
        match fetched {
            Ok(set) => {
                let set = Arc::new(set);
                cache.keys = Some(Arc::clone(&set));
                set.find(kid, alg).cloned().ok_or_else(unknown)
            }
            Err(detail) => {
                tracing::warn!(issuer = %iss, %detail, "fetching OIDC keys failed");
                Err(OidcError::Keys {
                    iss: iss.clone(),
                    detail,
                })
            }
        }
    }
}

/// Discovery (unless `jwks_uri` is configured), then the JWKS.
async fn fetch_keys(config: &OidcIssuerConfig) -> Result<KeySet, String> {
    let jwks_uri = match &config.jwks_uri {
        Some(uri) => uri.clone(),
        None => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                config.issuer.trim_end_matches('/')
            );
            let document = fetch(&url).await?;
            let meta: Map<String, Value> =
                serde_json::from_slice(&document).map_err(|e| format!("{url}: not JSON: {e}"))?;
            if meta.get("issuer").and_then(Value::as_str) != Some(config.issuer.as_str()) {
                return Err(format!(
                    "{url}: its issuer is not {:?} (OpenID discovery requires them equal)",
                    config.issuer
                ));
            }
            let uri = meta
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{url}: no jwks_uri"))?;
            check_url(uri).map_err(|e| format!("{url}: jwks_uri: {e}"))?;
            uri.to_owned()
        }
    };
    let document = fetch(&jwks_uri).await?;
    let set = KeySet::parse(&document).map_err(|e| format!("{jwks_uri}: {e}"))?;
    if set.keys.is_empty() {
        return Err(format!("{jwks_uri}: no RSA or P-256 key"));
    }
    Ok(set)
}

/// `https://` anywhere, `http://` only to a loopback host.
fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Ok(());
        }
        return Err(format!(
            "{url:?} is plain http to a non-loopback host; use https"
        ));
    }
    Err(format!("{url:?} is not an https:// URL"))
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// An HTTP and HTTPS connector: rustls on aws-lc-rs with the system's
/// roots (the only TLS stack of the server; the OTLP exporter uses it too).
pub(crate) fn https_connector(
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, String>
{
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("loading the system's TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build())
}

/// The HTTP(S) client for key fetches, built once.
fn client() -> Result<&'static HttpsClient, String> {
    static CLIENT: OnceLock<Result<HttpsClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let connector = https_connector()?;
            Ok(
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(connector),
            )
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// GET `url`: 200 and at most [`MAX_DOCUMENT_BYTES`], within [`FETCH_TIMEOUT`].
async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    check_url(url)?;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let client = client()?;
    let work = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{url}: reading the body: {e}"))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| format!("{url}: no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

tokio::task_local! {
    /// The Remit user of the OIDC identity an admin request was
    /// authenticated as; unset for the admin token.
    static ADMIN_IDENTITY: String;
}

/// Runs `work` (an admin request) as `user`: the receipts it writes name
/// `user` instead of `admin` ([`attribute_to_admin_identity`]).
pub async fn as_admin_identity<F: std::future::Future>(user: String, work: F) -> F::Output {
    ADMIN_IDENTITY.scope(user, work).await
}

/// The OIDC user the current admin request was authenticated as (inside
/// [`as_admin_identity`]); `None` for the admin token.
pub fn admin_identity() -> Option<String> {
    ADMIN_IDENTITY.try_with(Clone::clone).ok()
}

/// Who the current admin request acts as, for records that name a person
/// (`revoked_by`): the OIDC user, or `admin` for the admin token.
pub fn admin_name() -> String {
    admin_identity().unwrap_or_else(|| "admin".into())
}

/// Inside [`as_admin_identity`], replaces the generic `admin` actor of
/// `event` with the identity's user; elsewhere leaves it as it is.
pub fn attribute_to_admin_identity(event: &mut remit_ledger::Event) {
    let Some(user) = admin_identity() else {
        return;
    };
    for actor in &mut event.actors {
        if actor.kind == remit_ledger::ActorKind::User && actor.id == "admin" {
            actor.id.clone_from(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        assert!(check_url("http://idp.example.com").is_err());
        assert!(check_url("http://127.0.0.1.evil.example/x").is_err());
        assert!(check_url("ftp://idp").is_err());
        assert!(check_url("http://127.0.0.1:8080/realms/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        assert!(check_url("https://idp.example.com").is_ok());
    }

    #[test]
    fn configurations_that_would_weaken_verification_are_refused() {
        let base = OidcIssuerConfig::new("https://idp.example.com", "remit");
        let refused = |mutate: &dyn Fn(&mut OidcIssuerConfig)| {
            let mut c = base.clone();
            mutate(&mut c);
            OidcVerifier::new(vec![c]).is_err()
        };
        assert!(refused(&|c| c.algorithms = vec!["HS256".into()]));
        assert!(refused(&|c| c.algorithms = vec!["none".into()]));
        assert!(refused(&|c| c.algorithms = vec![]));
        assert!(refused(&|c| c.audience = " ".into()));
        assert!(refused(&|c| c.issuer = "http://idp.example.com".into()));
        assert!(refused(&|c| c.admin_claim = Some("groups".into())));
        assert!(refused(&|c| c.clock_skew_secs = 3600));
        assert!(refused(&|c| {
            c.jwks_uri = Some("https://idp.example.com/k".into());
            c.jwks_file = Some("/nonexistent".into());
        }));
        assert!(OidcVerifier::new(vec![base.clone()]).is_ok());
        // Two issuers need distinct prefixes.
        let mut other = OidcIssuerConfig::new("https://other.example.com", "remit");
        assert!(OidcVerifier::new(vec![base.clone(), other.clone()]).is_err());
        let mut first = base.clone();
        first.subject_prefix = Some("corp".into());
        other.subject_prefix = Some("corp".into());
        assert!(OidcVerifier::new(vec![first.clone(), other.clone()]).is_err());
        other.subject_prefix = Some("partner".into());
        assert!(OidcVerifier::new(vec![first, other]).is_ok());
    }

    #[test]
    fn admin_claims_match_a_value_or_a_member() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "groups": ["dev", "remit-admins"], "role": "remit-admins", "n": 1
        }))
        .unwrap();
        assert!(claim_has(&claims, "groups", "remit-admins"));
        assert!(claim_has(&claims, "role", "remit-admins"));
        assert!(!claim_has(&claims, "groups", "remit"));
        assert!(!claim_has(&claims, "n", "1"));
        assert!(!claim_has(&claims, "missing", "remit-admins"));
    }
}
