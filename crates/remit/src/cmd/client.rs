//! The control-plane API client (`reqwest` over rustls: `http://` and
//! `https://`), and the options every command that talks to a server
//! shares.
//!
//! Answers are read into the `remit_api` types the server writes them
//! from ([`Reply::body`]), and kept as the JSON they came as
//! ([`Reply::raw`]) for `--json`. Problem+json answers become
//! [`ApiError::Problem`], shown as `error: <title>: <detail>` with exit 1;
//! an unreachable server is an error naming the URL and asking whether
//! `remit serve` runs there (exit 2).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use remit_api::problem::PROBLEM_JSON;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read, so a misbehaving server cannot exhaust memory.
const MAX_RESPONSE: usize = 64 << 20;
/// Most characters of a non-problem error body shown.
const MAX_SHOWN: usize = 500;

/// Where the server is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Base URL of the control plane.
    #[arg(
        long,
        env = "REMIT_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin API token (printed once by the first `remit serve`).
    #[arg(long, env = "REMIT_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<String>,
    /// Print the server's JSON answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// For an https:// server: trust only the CA certificates in this PEM
    /// file [default: the system's roots].
    #[arg(long, env = "REMIT_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error (problem+json or another status).
    #[error("{title}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's title.
        title: String,
        /// The problem's detail.
        detail: String,
    },
    /// Anything else: unreachable server, broken answer.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Turns a command's result into an exit code: a server refusal is printed
/// as `error: <title>: <detail>` and exits 1; other errors go to `main`
/// (exit 2).
pub fn finish(result: Result<(), ApiError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ApiError::Problem { title, detail, .. }) => {
            eprintln!("error: {title}: {detail}");
            Ok(ExitCode::from(1))
        }
        Err(ApiError::Other(error)) => Err(error),
    }
}

/// A successful answer: as typed, and as sent.
#[derive(Debug)]
pub struct Reply<T> {
    /// The answer read into its `remit_api` type.
    pub body: T,
    /// The answer's JSON as the server wrote it (members the type does not
    /// name included), for `--json`.
    pub raw: Value,
}

impl<T> Reply<T> {
    /// Prints the server's JSON for `--json`, else `text` of the typed answer.
    pub fn print(&self, json: bool, text: impl FnOnce(&T)) -> Result<(), ApiError> {
        if json {
            crate::io::print_json(&self.raw)?;
        } else {
            text(&self.body);
        }
        Ok(())
    }
}

/// A client for one server.
#[derive(Debug)]
pub struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    /// A client for `args.server` (`http://` or `https://`, with an
    /// optional path prefix).
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let base = args.server.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .with_context(|| format!("--server {:?} is not a URL", args.server))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "--server {:?}: only http:// and https:// URLs are supported",
                args.server
            );
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("--server {:?} names no host", args.server);
        }
        let mut builder = reqwest::Client::builder();
        if url.scheme() == "https" {
            // The system's roots, or only the CA given with --ca-file.
            let config = remit_server::tls::client_config(args.ca_file.as_deref())?;
            builder = builder.tls_backend_preconfigured((*config).clone());
        }
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(IO_TIMEOUT)
            // The admin token goes to the server named, never elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("setting up the HTTP client")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the HTTP client's runtime")?;
        Ok(Self {
            base,
            token: args.admin_token.clone(),
            client,
            runtime,
        })
    }

    /// `GET path`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Reply<T>, ApiError> {
        self.call(reqwest::Method::GET, path, None::<&()>)
    }

    /// `POST path` with a JSON body.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Reply<T>, ApiError> {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Reply<T>, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .client
            .request(method, &url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let (status, problem_json, bytes) = self
            .runtime
            .block_on(send(request))
            .map_err(|e| self.unreachable(&url, e))?;
        if !status.is_success() {
            return Err(problem(status.as_u16(), problem_json, &bytes));
        }
        let raw: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{url}: the answer is not JSON"))?
        };
        let body = T::deserialize(&raw)
            .with_context(|| format!("{url}: the answer is not the shape this client knows"))?;
        Ok(Reply { body, raw })
    }

    /// What went wrong reaching the server, said so a person can act.
    fn unreachable(&self, url: &str, error: Fetch) -> ApiError {
        let error = match error {
            Fetch::TooLarge => anyhow!("{url}: the answer is larger than {MAX_RESPONSE} bytes"),
            Fetch::Http(e) if e.is_connect() => anyhow!(e).context(format!(
                "cannot reach the Remit server at {url}: is `remit serve` running at {}?",
                self.base
            )),
            Fetch::Http(e) if e.is_timeout() => anyhow!(e).context(format!(
                "the Remit server at {url} did not answer within {} s",
                IO_TIMEOUT.as_secs()
            )),
            Fetch::Http(e) => anyhow!(e).context(format!("cannot reach the Remit server at {url}")),
        };
        ApiError::Other(error)
    }
}

/// A request that did not produce a whole answer.
#[derive(Debug)]
enum Fetch {
    Http(reqwest::Error),
    TooLarge,
}

/// Sends `request` and reads the whole answer (at most [`MAX_RESPONSE`]
/// bytes): its status, whether it is a problem document, its body.
async fn send(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, bool, Vec<u8>), Fetch> {
    let mut response = request.send().await.map_err(Fetch::Http)?;
    let status = response.status();
    let problem_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Fetch::Http)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(Fetch::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, problem_json, body))
}

/// The error of a non-2xx answer: a problem document's title and detail,
/// else `HTTP <status>` and the start of the body.
fn problem(status: u16, problem_json: bool, body: &[u8]) -> ApiError {
    if let Some(p) = problem_json
        .then(|| serde_json::from_slice::<remit_api::Problem>(body).ok())
        .flatten()
    {
        return ApiError::Problem {
            status,
            title: p.title,
            detail: p.detail,
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    ApiError::Problem {
        status,
        title: format!("HTTP {status}"),
        detail: if text.is_empty() {
            "the server gave no detail".into()
        } else {
            text.chars().take(MAX_SHOWN).collect()
        },
    }
}

/// Percent-encodes one path segment.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str) -> ServerArgs {
        ServerArgs {
            server: server.into(),
            admin_token: None,
            json: false,
            ca_file: None,
        }
    }

    #[test]
    fn problems_show_title_and_detail_and_other_errors_show_the_status() {
        let e = problem(
            409,
            true,
            br#"{"type":"urn:remit:problem:conflict","title":"Conflict","status":409,"detail":"agent \"a\" exists"}"#,
        );
        assert_eq!(e.to_string(), "Conflict: agent \"a\" exists");
        let e = problem(502, false, b"upstream down");
        assert_eq!(e.to_string(), "HTTP 502: upstream down");
        let e = problem(500, true, b"not json");
        assert_eq!(e.to_string(), "HTTP 500: not json");
        let e = problem(503, false, b"  ");
        assert_eq!(e.to_string(), "HTTP 503: the server gave no detail");
    }

    #[test]
    fn path_segments_cannot_escape_their_place() {
        assert_eq!(segment("a/../b c"), "a%2F..%2Fb%20c");
        assert_eq!(segment("planner-1.v2"), "planner-1.v2");
    }

    #[test]
    fn only_http_and_https_servers_are_accepted() {
        for bad in ["ftp://x", "127.0.0.1:8080", "http://", "file:///tmp/x"] {
            assert!(Api::new(&args(bad)).is_err(), "{bad}");
        }
        let api = Api::new(&args("https://remit.example/base/")).map(|a| a.base);
        assert_eq!(api.ok().as_deref(), Some("https://remit.example/base"));
        assert!(Api::new(&args("http://127.0.0.1:9")).is_ok());
    }

    #[test]
    fn a_server_that_is_not_running_is_named_with_the_question_to_ask() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let api = Api::new(&args("http://127.0.0.1:1/x")).unwrap_or_else(|e| panic!("{e}"));
        let error = api
            .get::<Value>("/v1/agents")
            .err()
            .map(|e| format!("{:#}", anyhow::Error::from(e)))
            .unwrap_or_default();
        assert!(
            error.contains("cannot reach the Remit server at http://127.0.0.1:1/x/v1/agents"),
            "{error}"
        );
        assert!(
            error.contains("is `remit serve` running at http://127.0.0.1:1/x?"),
            "{error}"
        );
    }
}
