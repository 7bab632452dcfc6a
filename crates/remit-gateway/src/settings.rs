//! The `[gateway]` table of the configuration file: limits, shadow mode,
//! budgets, and per-upstream credentials and trust.
//!
//! ```toml
//! [gateway]
//! max_body_bytes = 1048576       # largest request body
//! max_json_depth = 32            # deepest nesting of a request
//! upstream_timeout_secs = 30     # one upstream answer
//! cache_ttl_ms = 1000            # registry rows and usage counters reused
//! allow_bearer = true            # accept `Bearer <chain>` without a DPoP proof
//! risk_budget = 20               # risk points per agent per window
//! risk_window_secs = 3600
//! approval_ttl_secs = 3600
//! shadow_agents = ["new-agent"]  # calls observed and let through
//! shadow_servers = []
//! allowed_origins = ["https://app.example.com"]  # browser origins besides the public URL's
//!
//! [gateway.upstreams.github]
//! headers = { Authorization = "env:GITHUB_MCP_TOKEN" }
//! ca_file = "/etc/remit/github-ca.pem"
//!
//! [gateway.upstreams.files]
//! env = { FILES_TOKEN = "file:/run/secrets/files" }
//! ```
//!
//! Upstream credentials are the gateway's own: the client's remit never goes
//! upstream. A credential value is `env:NAME` (read from the environment at
//! start), `file:PATH` (read from a file, trailing newline cut) or, not
//! recommended, the literal value. Every value is resolved when the
//! configuration is loaded, so a missing secret stops the start with its
//! name instead of failing calls later. Credentials are never sent over
//! plain `http://` to a host other than loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::GatewayConfig;

/// Largest request body an operator may allow, bytes.
pub const MAX_BODY_CAP: usize = 64 * 1024 * 1024;
/// Deepest JSON nesting an operator may allow.
pub const MAX_DEPTH_CAP: usize = 512;
/// Longest upstream timeout an operator may set, seconds.
pub const MAX_TIMEOUT_SECS: u64 = 600;

/// Headers the gateway sets itself on upstream requests; configuration may
/// not override them.
const GATEWAY_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "mcp-protocol-version",
    "mcp-session-id",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Why the `[gateway]` table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A limit is outside what the gateway accepts.
    #[error("gateway.{field} = {value}: {expected}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: u64,
        /// What is accepted.
        expected: &'static str,
    },
    /// An `allowed_origins` entry is not `http(s)://host[:port]`.
    #[error("gateway.allowed_origins: {0:?} is not an origin; write scheme://host[:port], e.g. https://app.example.com")]
    Origin(String),
    /// A secret reference names an environment variable that is not set.
    #[error(
        "gateway.upstreams.{server}.{field}: environment variable {name} is not set (or empty)"
    )]
    MissingEnv {
        /// The upstream server id.
        server: String,
        /// Which setting (`headers.X` or `env.X`).
        field: String,
        /// The variable.
        name: String,
    },
    /// A secret file could not be read.
    #[error("gateway.upstreams.{server}.{field}: cannot read {path}: {detail}")]
    SecretFile {
        /// The upstream server id.
        server: String,
        /// Which setting.
        field: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        detail: String,
    },
    /// A header name or value is not valid HTTP, or is one the gateway owns.
    #[error("gateway.upstreams.{server}.headers.{name}: {detail}")]
    Header {
        /// The upstream server id.
        server: String,
        /// The header name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// An environment variable name for a stdio upstream is not usable.
    #[error("gateway.upstreams.{server}.env.{name}: {detail}")]
    Env {
        /// The upstream server id.
        server: String,
        /// The variable name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The CA file holds no usable certificate.
    #[error("gateway.upstreams.{server}.ca_file {path}: {detail}")]
    CaFile {
        /// The upstream server id.
        server: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// The `[gateway]` table as written; every field optional, defaults from
/// [`GatewayConfig::default`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Largest request body, bytes (1 ..= 64 MiB).
    pub max_body_bytes: Option<usize>,
    /// Deepest nesting of a request (1 ..= 512).
    pub max_json_depth: Option<usize>,
    /// How long an upstream may take to answer, seconds (1 ..= 600).
    pub upstream_timeout_secs: Option<u64>,
    /// How long an upstream's tool list is reused, seconds.
    pub tools_cache_ttl_secs: Option<u64>,
    /// How long registry rows and usage counters are reused, milliseconds
    /// (0 ..= 60000; 0 reads the store on every call).
    pub cache_ttl_ms: Option<u64>,
    /// Allowed clock skew of a DPoP proof, seconds (0 ..= 300).
    pub proof_max_skew_secs: Option<u64>,
    /// Whether `Authorization: Bearer <chain>` is accepted at all.
    pub allow_bearer: Option<bool>,
    /// Risk points an agent may spend per window.
    pub risk_budget: Option<u32>,
    /// The risk window, seconds (at least 1).
    pub risk_window_secs: Option<u64>,
    /// How long a held call waits for a human, seconds (at least 1).
    pub approval_ttl_secs: Option<u64>,
    /// Agents whose calls run in shadow mode.
    pub shadow_agents: Option<Vec<String>>,
    /// Servers whose calls run in shadow mode.
    pub shadow_servers: Option<Vec<String>>,
    /// Browser origins allowed to call the MCP endpoint besides the public
    /// URL's (and loopback ones when it is on loopback).
    pub allowed_origins: Option<Vec<String>>,
    /// Credentials and trust per upstream server id.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamFileSettings>,
}

/// One `[gateway.upstreams.<server>]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFileSettings {
    /// Headers sent on every request to an HTTP upstream (`env:`/`file:`
    /// references resolved at load).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Environment given to a stdio upstream's process (`env:`/`file:`
    /// references resolved at load).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// PEM file of the certificate authorities trusted for an `https://`
    /// upstream, instead of the built-in Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// What the gateway uses to reach one upstream, secrets resolved.
#[derive(Clone, Default)]
pub struct UpstreamSettings {
    /// Headers added to every HTTP request (values marked sensitive).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Environment variables for a stdio upstream.
    pub env: Vec<(String, String)>,
    /// Trust anchors replacing the built-in roots for `https://`.
    pub ca_certificates: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
}

impl std::fmt::Debug for UpstreamSettings {
    /// Names only: values are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("env", &self.env.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field(
                "ca_certificates",
                &self.ca_certificates.as_ref().map(Vec::len),
            )
            .finish()
    }
}

impl UpstreamSettings {
    /// Whether these settings carry credentials (headers or environment).
    pub fn has_credentials(&self) -> bool {
        !self.headers.is_empty() || !self.env.is_empty()
    }
}

fn range<T: Copy + Into<u64>>(
    field: &'static str,
    value: Option<T>,
    ok: impl Fn(u64) -> bool,
    expected: &'static str,
) -> Result<Option<T>, SettingsError> {
    match value {
        Some(v) if !ok(v.into()) => Err(SettingsError::OutOfRange {
            field,
            value: v.into(),
            expected,
        }),
        other => Ok(other),
    }
}

impl GatewaySettings {
    /// Applies these settings over the defaults, checking every limit and
    /// resolving every secret; `lookup_env` reads the environment (a
    /// parameter so tests need not touch the process environment).
    pub fn resolve(
        self,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, SettingsError> {
        let mut config = GatewayConfig::default();
        let as_u64 = |v: Option<usize>| v.map(|v| u64::try_from(v).unwrap_or(u64::MAX));
        if let Some(v) = range(
            "max_body_bytes",
            as_u64(self.max_body_bytes),
            |v| (1..=MAX_BODY_CAP as u64).contains(&v),
            "between 1 and 67108864 bytes",
        )? {
            config.max_body_bytes = usize::try_from(v).unwrap_or(MAX_BODY_CAP);
        }
        if let Some(v) = range(
            "max_json_depth",
            as_u64(self.max_json_depth),
            |v| (1..=MAX_DEPTH_CAP as u64).contains(&v),
            "between 1 and 512",
        )? {
            config.max_json_depth = usize::try_from(v).unwrap_or(MAX_DEPTH_CAP);
        }
        if let Some(v) = range(
            "upstream_timeout_secs",
            self.upstream_timeout_secs,
            |v| (1..=MAX_TIMEOUT_SECS).contains(&v),
            "between 1 and 600 seconds",
        )? {
            config.upstream_timeout = Duration::from_secs(v);
        }
        if let Some(v) = range(
            "tools_cache_ttl_secs",
            self.tools_cache_ttl_secs,
            |v| v <= 3600,
            "at most 3600 seconds",
        )? {
            config.tools_cache_ttl = Duration::from_secs(v);
        }
        if let Some(v) = range(
            "cache_ttl_ms",
            self.cache_ttl_ms,
            |v| v <= 60_000,
            "at most 60000 milliseconds",
        )? {
            config.cache_ttl = Duration::from_millis(v);
        }
        if let Some(v) = range(
            "proof_max_skew_secs",
            self.proof_max_skew_secs,
            |v| v <= 300,
            "at most 300 seconds",
        )? {
            config.proof_max_skew_secs = v;
        }
        if let Some(v) = self.allow_bearer {
            config.allow_bearer = v;
        }
        if let Some(v) = self.risk_budget {
            config.risk_budget = v;
        }
        if let Some(v) = range(
            "risk_window_secs",
            self.risk_window_secs,
            |v| v >= 1,
            "at least 1 second",
        )? {
            config.risk_window_secs = v;
        }
        if let Some(v) = range(
            "approval_ttl_secs",
            self.approval_ttl_secs,
            |v| v >= 1,
            "at least 1 second",
        )? {
            config.approval_ttl_secs = v;
        }
        if let Some(agents) = self.shadow_agents {
            config.shadow_agents = agents.into_iter().collect::<BTreeSet<_>>();
        }
        if let Some(servers) = self.shadow_servers {
            config.shadow_servers = servers.into_iter().collect::<BTreeSet<_>>();
        }
        if let Some(origins) = self.allowed_origins {
            for origin in &origins {
                let uri = origin.parse::<hyper::Uri>().ok();
                let usable = uri.as_ref().is_some_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https"))
                        && u.host().is_some()
                        && u.path_and_query().is_none_or(|p| p.as_str() == "/")
                });
                if !usable {
                    return Err(SettingsError::Origin(origin.clone()));
                }
            }
            config.allowed_origins = origins;
        }
        for (server, upstream) in self.upstreams {
            let resolved = upstream.resolve(&server, lookup_env)?;
            config.upstreams.insert(server, Arc::new(resolved));
        }
        Ok(config)
    }
}

impl UpstreamFileSettings {
    fn resolve(
        self,
        server: &str,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<UpstreamSettings, SettingsError> {
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in self.headers {
            let bad = |detail: String| SettingsError::Header {
                server: server.to_owned(),
                name: name.clone(),
                detail,
            };
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("not a valid HTTP header name".into()))?;
            if GATEWAY_HEADERS.contains(&header.as_str()) {
                return Err(bad(
                    "the gateway sets this header itself; it cannot be configured".into(),
                ));
            }
            let secret = secret(server, &format!("headers.{name}"), &value, lookup_env)?;
            let mut value = HeaderValue::from_str(&secret)
                .map_err(|_| bad("the value is not a valid HTTP header value".into()))?;
            value.set_sensitive(true);
            headers.push((header, value));
        }
        let mut env = Vec::with_capacity(self.env.len());
        for (name, value) in self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(SettingsError::Env {
                    server: server.to_owned(),
                    name,
                    detail: "not a usable environment variable name".into(),
                });
            }
            let secret = secret(server, &format!("env.{name}"), &value, lookup_env)?;
            env.push((name, secret));
        }
        let ca_certificates = match self.ca_file {
            Some(path) => Some(load_ca_file(server, &path)?),
            None => None,
        };
        Ok(UpstreamSettings {
            headers,
            env,
            ca_certificates,
        })
    }
}

/// Resolves `env:NAME`, `file:PATH` or a literal value.
fn secret(
    server: &str,
    field: &str,
    value: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SettingsError> {
    if let Some(name) = value.strip_prefix("env:") {
        return lookup_env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            SettingsError::MissingEnv {
                server: server.to_owned(),
                field: field.to_owned(),
                name: name.to_owned(),
            }
        });
    }
    if let Some(path) = value.strip_prefix("file:") {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|e| SettingsError::SecretFile {
            server: server.to_owned(),
            field: field.to_owned(),
            path: path.clone(),
            detail: e.to_string(),
        })?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(value.to_owned())
}

fn load_ca_file(
    server: &str,
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, SettingsError> {
    use rustls_pki_types::pem::PemObject as _;
    let bad = |detail: String| SettingsError::CaFile {
        server: server.to_owned(),
        path: path.to_owned(),
        detail,
    };
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    fn parse(text: &str) -> Result<GatewayConfig, String> {
        let settings: GatewaySettings = toml::from_str(text).map_err(|e| e.to_string())?;
        settings.resolve(&env).map_err(|e| e.to_string())
    }

    #[test]
    fn limits_outside_their_range_are_refused_with_the_range() {
        for (text, needle) in [
            ("max_body_bytes = 0", "between 1 and 67108864"),
            ("max_body_bytes = 100000000", "between 1 and 67108864"),
            ("max_json_depth = 0", "between 1 and 512"),
            ("max_json_depth = 10000", "between 1 and 512"),
            ("upstream_timeout_secs = 0", "between 1 and 600"),
            ("proof_max_skew_secs = 3600", "at most 300"),
            ("risk_window_secs = 0", "at least 1"),
            ("approval_ttl_secs = 0", "at least 1"),
            ("cache_ttl_ms = 60001", "at most 60000"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("max_body = 3").unwrap_err();
        assert!(err.contains("max_body"), "{err}");
        let err = parse("[upstreams.a]\nheader = {}").unwrap_err();
        assert!(err.contains("header"), "{err}");
    }

    #[test]
    fn secrets_that_cannot_be_resolved_stop_the_load_with_their_name() {
        let err = parse("[upstreams.gh]\nheaders = { Authorization = \"env:NOPE\" }").unwrap_err();
        assert!(err.contains("NOPE") && err.contains("gh"), "{err}");
        let err = parse("[upstreams.gh]\nenv = { T = \"file:/nonexistent/secret\" }").unwrap_err();
        assert!(err.contains("/nonexistent/secret"), "{err}");
        let err = parse("[upstreams.gh]\nca_file = \"/nonexistent/ca.pem\"").unwrap_err();
        assert!(err.contains("ca_file"), "{err}");
    }

    #[test]
    fn gateway_owned_and_invalid_headers_are_refused() {
        for text in [
            "[upstreams.a]\nheaders = { Mcp-Session-Id = \"x\" }",
            "[upstreams.a]\nheaders = { Host = \"evil\" }",
            "[upstreams.a]\nheaders = { \"bad name\" = \"x\" }",
            "[upstreams.a]\nheaders = { X-A = \"line\\nbreak\" }",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        let err = parse("[upstreams.a]\nenv = { \"A=B\" = \"x\" }").unwrap_err();
        assert!(err.contains("A=B"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = parse(&format!(
            "[upstreams.a]\nca_file = {:?}",
            path.display().to_string()
        ))
        .unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn settings_apply_over_defaults_and_secrets_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "from-file\n").unwrap();
        let config = parse(&format!(
            "max_body_bytes = 2048\nallow_bearer = false\nshadow_agents = [\"new\"]\nupstream_timeout_secs = 5\ncache_ttl_ms = 0\n\
             [upstreams.gh]\nheaders = {{ Authorization = \"env:TOKEN\", X-Literal = \"lit\" }}\n\
             env = {{ T = \"file:{}\" }}\n",
            file.display()
        ))
        .unwrap();
        assert_eq!(config.max_body_bytes, 2048);
        assert!(!config.allow_bearer);
        assert!(config.shadow("new", "any"));
        assert!(!config.shadow("old", "any"));
        assert_eq!(config.upstream_timeout, Duration::from_secs(5));
        assert_eq!(config.cache_ttl, Duration::ZERO);
        assert_eq!(
            config.max_json_depth,
            GatewayConfig::default().max_json_depth
        );
        let gh = config.upstreams.get("gh").unwrap();
        let headers: Vec<(String, String)> = gh
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert!(headers.contains(&("authorization".into(), "s3cret".into())));
        assert!(headers.contains(&("x-literal".into(), "lit".into())));
        assert_eq!(gh.env, vec![("T".to_owned(), "from-file".to_owned())]);
        // Secrets never show in debug output.
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("from-file"),
            "{shown}"
        );
    }
}
