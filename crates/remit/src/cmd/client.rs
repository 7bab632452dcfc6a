//! A small HTTP/1.1 client for the control-plane API (`http://`, or
//! `https://` trusting the system's roots or `--ca-file`), and the options
//! every command that talks to a server shares.
//!
//! One request per connection (`connection: close`), JSON in and out.
//! Problem+json answers become [`ApiError::Problem`], shown as
//! `error: <title>: <detail>` with exit 1; an unreachable server is an
//! error naming the URL (exit 2).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read, so a misbehaving server cannot exhaust memory.
const MAX_RESPONSE: u64 = 64 << 20;

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

/// A client for one server.
#[derive(Debug)]
pub struct Api {
    base: String,
    authority: String,
    prefix: String,
    token: Option<String>,
    /// For https://: the client configuration and the server's name.
    tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Api {
    /// A client for `args.server`.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let base = args.server.trim_end_matches('/').to_owned();
        let (https, rest) = match (base.strip_prefix("https://"), base.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => bail!(
                "--server {:?}: give an http:// or https:// URL",
                args.server
            ),
        };
        let (mut authority, prefix) = match rest.find('/') {
            Some(at) => (rest[..at].to_owned(), rest[at..].to_owned()),
            None => (rest.to_owned(), String::new()),
        };
        if authority.is_empty() {
            bail!("--server {:?} names no host", args.server);
        }
        let tls = if https {
            let host = authority_host(&authority);
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .with_context(|| format!("--server {:?}: not a TLS server name", args.server))?;
            if !authority.contains(']') && !authority.contains(':') {
                authority.push_str(":443");
            }
            let config = remit_server::tls::client_config(args.ca_file.as_deref())?;
            Some((config, name))
        } else {
            None
        };
        Ok(Self {
            base,
            authority,
            prefix,
            token: args.admin_token.clone(),
            tls,
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call("POST", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {}{path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\naccept: application/json\r\ncontent-length: {}\r\n",
            self.prefix,
            self.authority,
            body.len()
        );
        if !body.is_empty() {
            request.push_str("content-type: application/json\r\n");
        }
        if let Some(token) = &self.token {
            request.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let raw = self
            .exchange(request.as_bytes())
            .with_context(|| format!("cannot reach the Remit server at {url}"))?;
        let (status, head, body) =
            parse_response(&raw).with_context(|| format!("{url}: not an HTTP answer"))?;
        if (200..300).contains(&status) {
            if body.trim().is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            return serde_json::from_str(&body)
                .with_context(|| format!("{url}: the answer is not JSON"))
                .map_err(ApiError::from);
        }
        Err(problem(status, &head, &body))
    }

    fn exchange(&self, request: &[u8]) -> anyhow::Result<Vec<u8>> {
        let addrs = self
            .authority
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.authority))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(mut stream) => {
                    stream.set_read_timeout(Some(IO_TIMEOUT))?;
                    stream.set_write_timeout(Some(IO_TIMEOUT))?;
                    let Some((config, name)) = &self.tls else {
                        stream.write_all(request)?;
                        let mut out = Vec::new();
                        (&mut stream).take(MAX_RESPONSE).read_to_end(&mut out)?;
                        return Ok(out);
                    };
                    let session = rustls::ClientConnection::new(config.clone(), name.clone())?;
                    let mut tls = rustls::StreamOwned::new(session, stream);
                    tls.write_all(request)?;
                    tls.flush()?;
                    let mut out = Vec::new();
                    match (&mut tls).take(MAX_RESPONSE).read_to_end(&mut out) {
                        // A server that closes without close_notify after a
                        // complete `connection: close` answer.
                        Err(e)
                            if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                        }
                        other => {
                            other?;
                        }
                    }
                    return Ok(out);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => e.into(),
            None => anyhow!("{} resolves to no address", self.authority),
        })
    }
}

/// The host of `host[:port]` or `[v6][:port]`, brackets removed.
fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Splits an HTTP/1.1 answer into status, lowercased head and body text.
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("no status line"))?;
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, head, body))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("truncated chunk"))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("bad chunk size"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or_else(|| anyhow!("truncated chunk"))?;
        out.push_str(chunk);
        body = rest
            .get(size + 2..)
            .ok_or_else(|| anyhow!("truncated chunk"))?;
    }
}

fn problem(status: u16, head: &str, body: &str) -> ApiError {
    let parsed: Option<Value> = head
        .contains("content-type: application/problem+json")
        .then(|| serde_json::from_str(body).ok())
        .flatten();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ApiError::Problem {
        status,
        title: field("title").unwrap_or_else(|| format!("HTTP {status}")),
        detail: field("detail").unwrap_or_else(|| {
            let text = body.trim();
            if text.is_empty() {
                "the server gave no detail".into()
            } else {
                text.chars().take(500).collect()
            }
        }),
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

    #[test]
    fn problems_show_title_and_detail_and_other_errors_show_the_status() {
        let head = "http/1.1 409 conflict\r\ncontent-type: application/problem+json";
        let e = problem(
            409,
            head,
            r#"{"title":"Conflict","detail":"agent \"a\" exists"}"#,
        );
        assert_eq!(e.to_string(), "Conflict: agent \"a\" exists");
        let e = problem(502, "http/1.1 502 bad gateway", "upstream down");
        assert_eq!(e.to_string(), "HTTP 502: upstream down");
    }

    #[test]
    fn chunked_answers_are_reassembled_and_truncated_ones_refused() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let (status, _, body) = parse_response(raw).unwrap();
        assert_eq!((status, body.as_str()), (200, "{\"a\":1}"));
        let torn = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{\"a";
        assert!(parse_response(torn).is_err());
    }

    #[test]
    fn path_segments_cannot_escape_their_place() {
        assert_eq!(segment("a/../b c"), "a%2F..%2Fb%20c");
        assert_eq!(segment("planner-1.v2"), "planner-1.v2");
    }

    #[test]
    fn http_and_https_servers_are_accepted_and_nothing_else() {
        let args = |s: &str| ServerArgs {
            server: s.into(),
            admin_token: None,
            json: false,
            ca_file: None,
        };
        assert!(Api::new(&args("ftp://x")).is_err());
        assert!(Api::new(&args("x:8080")).is_err());
        let api = Api::new(&args("https://remit.example")).unwrap();
        assert_eq!(api.authority, "remit.example:443");
        assert!(api.tls.is_some());
        let api = Api::new(&args("https://[::1]:8443/x")).unwrap();
        assert_eq!(authority_host(&api.authority), "::1");
        let api = Api::new(&args("http://127.0.0.1:9/base/")).unwrap();
        assert_eq!(
            (api.authority.as_str(), api.prefix.as_str()),
            ("127.0.0.1:9", "/base")
        );
    }
}
