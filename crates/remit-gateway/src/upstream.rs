//! Upstream MCP servers: where an allowed call goes.
//!
//! A server's registered `url` picks the transport:
//!
//! - `https://host/path` or `http://host:port/path`: MCP streamable HTTP.
//!   The gateway opens its own session (`initialize`, then
//!   `notifications/initialized`), keeps the upstream's `Mcp-Session-Id`,
//!   reads answers as JSON or as an SSE stream, and opens a new session when
//!   the upstream forgets it (404). TLS is rustls on the aws-lc-rs provider,
//!   trusting the built-in Mozilla roots or, when the server's settings name
//!   a `ca_file`, only the authorities in it.
//! - `stdio:<command line>`: a child process the gateway spawns (the command
//!   line is split with POSIX shell quoting rules, `"a b"` and `'a b'` stay
//!   one argument, but no shell runs: no expansion, no pipes), initializes
//!   and keeps alive; when it exits, calls in flight fail and the next call
//!   starts a new one. One JSON-RPC id space: the gateway numbers its own
//!   requests, so ids from different clients never collide on the child's
//!   stdin.
//!
//! The client's remit is never forwarded: upstreams see only the gateway and
//! the gateway's own credentials for them ([`UpstreamSettings`]: headers for
//! HTTP, environment for stdio), which are never sent over plain `http://`
//! to a host other than loopback.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use rmcp::model::{ErrorData, RequestId};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use super::jsonrpc::{self, UpstreamReply};
use super::settings::UpstreamSettings;
use crate::pins::tool_hash;

/// The protocol version the gateway speaks to upstreams.
pub const UPSTREAM_PROTOCOL_VERSION: &str = "2025-06-18";
/// Longest line accepted from a stdio upstream.
pub const MAX_STDIO_LINE: usize = 8 * 1024 * 1024;
/// Most `tools/list` pages followed.
const MAX_TOOL_PAGES: usize = 32;

/// Where the `params` of an upstream's progress notifications go.
pub type Progress = tokio::sync::mpsc::UnboundedSender<Value>;

/// Progress tokens handed to upstreams, unique in this process.
static PROGRESS_TOKENS: AtomicU64 = AtomicU64::new(1);

/// The progress token of a `notifications/progress` message's params.
fn progress_token(params: Option<&Value>) -> Option<&str> {
    params?.get("progressToken")?.as_str()
}

/// Why an upstream call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The url names no transport the gateway supports.
    #[error("upstream url {0:?} is not supported: use https://…, http://… or stdio:<command>")]
    Unsupported(String),
    /// Credentials would travel in clear text to a remote host.
    #[error("refusing to send the configured credentials for {0} over plain http:// to a host that is not loopback; use https://")]
    CleartextCredentials(String),
    /// The TLS client could not be built from the settings.
    #[error("TLS settings for the upstream are unusable: {0}")]
    Tls(String),
    /// The child process could not be started.
    #[error("could not start the upstream command {command:?}: {detail}")]
    Spawn {
        /// The command.
        command: String,
        /// The OS error.
        detail: String,
    },
    /// The upstream went away (process exit, connection closed).
    #[error("the upstream closed the connection")]
    Closed,
    /// No answer within the time limit.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The upstream answered something that is not a usable JSON-RPC answer.
    #[error("the upstream answered an invalid message: {0}")]
    Protocol(String),
    /// The upstream answered with a JSON-RPC error. Its words are not in
    /// the display: they reach a client only through the scanner
    /// (`pipeline::release::upstream_error`).
    #[error("the upstream answered error {}", .0.code.0)]
    Remote(ErrorData),
    /// The HTTP exchange failed.
    #[error("HTTP to the upstream failed: {0}")]
    Http(String),
}

/// The upstreams this process talks to, one per registered server, and the
/// gateway's settings (credentials, trust) for each.
#[derive(Debug, Default)]
pub struct UpstreamPool {
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    settings: Mutex<BTreeMap<String, Arc<UpstreamSettings>>>,
    /// The settings of a server with none configured: one shared value, so
    /// an unconfigured upstream is reused rather than rebuilt per call.
    unconfigured: Arc<UpstreamSettings>,
}

impl UpstreamPool {
    /// A pool using `settings` per server id.
    pub fn new(settings: BTreeMap<String, Arc<UpstreamSettings>>) -> Self {
        Self {
            upstreams: Mutex::default(),
            settings: Mutex::new(settings),
            unconfigured: Arc::default(),
        }
    }

    /// Replaces the per-server settings; an upstream whose settings changed
    /// is rebuilt on its next use.
    pub fn configure(&self, settings: BTreeMap<String, Arc<UpstreamSettings>>) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }

    /// The upstream for `server` at `url`, created on first use (and again
    /// when the registered url or the server's settings changed).
    pub fn get(&self, server: &str, url: &str) -> Result<Arc<Upstream>, UpstreamError> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(server)
            .cloned()
            .unwrap_or_else(|| Arc::clone(&self.unconfigured));
        let mut map = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = map.get(server) {
            if existing.url == url && Arc::ptr_eq(&existing.settings, &settings) {
                return Ok(Arc::clone(existing));
            }
        }
        let upstream = Arc::new(Upstream::with_settings(url, settings)?);
        map.insert(server.to_owned(), Arc::clone(&upstream));
        Ok(upstream)
    }
}

/// One upstream server and a cache of its tool list.
#[derive(Debug)]
pub struct Upstream {
    url: String,
    settings: Arc<UpstreamSettings>,
    transport: Transport,
    tools: Mutex<Option<CachedTools>>,
    /// Bumped when the upstream announces `notifications/tools/list_changed`.
    generation: Arc<AtomicU64>,
}

#[derive(Debug, Clone)]
struct CachedTools {
    at: Instant,
    generation: u64,
    tools: Arc<ToolList>,
}

/// The tools one listing of the upstream returned, each with the hash its
/// pin is compared with ([`tool_hash`]), computed once per listing instead
/// of on every call.
#[derive(Debug)]
pub struct ToolList {
    tools: Vec<Value>,
    /// Tool name → (index in `tools`, current hash); a name listed twice
    /// is judged by its last entry.
    by_name: HashMap<String, (usize, String)>,
}

impl ToolList {
    /// Indexes `tools` by name and hashes each named one.
    pub fn new(tools: Vec<Value>) -> Self {
        let by_name = tools
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let name = t.get("name")?.as_str()?;
                Some((name.to_owned(), (i, tool_hash(t))))
            })
            .collect();
        Self { tools, by_name }
    }

    /// The tool listed as `name` and its current hash.
    pub fn get(&self, name: &str) -> Option<(&Value, &str)> {
        let (i, hash) = self.by_name.get(name)?;
        Some((self.tools.get(*i)?, hash.as_str()))
    }

    /// Every listed tool, in the upstream's order.
    pub fn iter(&self) -> std::slice::Iter<'_, Value> {
        self.tools.iter()
    }
}

#[derive(Debug)]
enum Transport {
    Stdio(StdioUpstream),
    Http(Box<HttpUpstream>),
}

impl Upstream {
    /// Parses the url into a transport, with no credentials and the
    /// built-in trust roots; nothing is started yet.
    pub fn new(url: &str) -> Result<Self, UpstreamError> {
        Self::with_settings(url, Arc::default())
    }

    /// Parses the url into a transport using the gateway's `settings` for
    /// this upstream; nothing is started yet.
    pub fn with_settings(
        url: &str,
        settings: Arc<UpstreamSettings>,
    ) -> Result<Self, UpstreamError> {
        let transport = if let Some(command) = url.strip_prefix("stdio:") {
            let argv = shlex::split(command)
                .filter(|argv| !argv.is_empty())
                .ok_or_else(|| UpstreamError::Unsupported(url.to_owned()))?;
            Transport::Stdio(StdioUpstream {
                argv,
                env: settings.env.clone(),
                conn: tokio::sync::Mutex::new(None),
                next_id: AtomicI64::new(1),
            })
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|_| UpstreamError::Unsupported(url.to_owned()))?;
            if uri.host().is_none() {
                return Err(UpstreamError::Unsupported(url.to_owned()));
            }
            if uri.scheme() == Some(&hyper::http::uri::Scheme::HTTP)
                && !settings.headers.is_empty()
                && !is_loopback(&uri)
            {
                return Err(UpstreamError::CleartextCredentials(url.to_owned()));
            }
            Transport::Http(Box::new(HttpUpstream {
                uri,
                client: http_client(&settings)?,
                headers: settings.headers.clone(),
                session: tokio::sync::Mutex::new(None),
                next_id: AtomicI64::new(1),
            }))
        } else {
            return Err(UpstreamError::Unsupported(url.to_owned()));
        };
        Ok(Self {
            url: url.to_owned(),
            settings,
            transport,
            tools: Mutex::new(None),
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The registered url.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request and waits for its result, at most `timeout`.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, UpstreamError> {
        self.call_with_progress(method, params, timeout, None).await
    }

    /// [`Self::call`], asking the upstream for progress when `progress` is
    /// given: the request carries a progress token of the gateway's own
    /// (the upstream session is shared, so a client's token could collide
    /// with another's), and the `params` of every `notifications/progress`
    /// for it are sent to `progress` until the answer arrives. The caller
    /// scans them before they reach a client.
    pub async fn call_with_progress(
        &self,
        method: &str,
        mut params: Value,
        timeout: Duration,
        progress: Option<Progress>,
    ) -> Result<Value, UpstreamError> {
        let progress = progress.map(|sender| {
            let token = format!(
                "remit-progress-{}",
                PROGRESS_TOKENS.fetch_add(1, Ordering::Relaxed)
            );
            if let Some(object) = params.as_object_mut() {
                let meta = object.entry("_meta").or_insert_with(|| json!({}));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert("progressToken".into(), json!(token));
                }
            }
            (token, sender)
        });
        let work = async {
            match &self.transport {
                Transport::Stdio(s) => s.call(method, params, &self.generation, progress).await,
                Transport::Http(h) => h.call(method, params, progress).await,
            }
        };
        let answered = tokio::time::timeout(timeout, work).await;
        answered.map_err(|_| UpstreamError::Timeout(timeout))?
    }

    /// Every item of a paginated list method (`tools/list` under `tools`,
    /// `prompts/list` under `prompts`), following `nextCursor` for at most
    /// `max_pages` pages.
    pub async fn list_all(
        &self,
        method: &str,
        key: &str,
        max_pages: usize,
        timeout: Duration,
    ) -> Result<Vec<Value>, UpstreamError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..max_pages {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = self.call(method, params, timeout).await?;
            let list = page
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| UpstreamError::Protocol(format!("{method} without {key}")))?;
            items.extend(list.iter().cloned());
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// The upstream's tools (every page), from a cache younger than `ttl`
    /// that no `tools/list_changed` made stale.
    pub async fn tools(
        &self,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Arc<ToolList>, UpstreamError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(cached) = self
            .tools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            if cached.generation == generation && cached.at.elapsed() < ttl {
                return Ok(cached.tools);
            }
        }
        let tools = self
            .list_all("tools/list", "tools", MAX_TOOL_PAGES, timeout)
            .await?;
        let tools = Arc::new(ToolList::new(tools));
        *self.tools.lock().unwrap_or_else(PoisonError::into_inner) = Some(CachedTools {
            at: Instant::now(),
            generation,
            tools: Arc::clone(&tools),
        });
        Ok(tools)
    }
}

fn initialize_params() -> Value {
    json!({
        "protocolVersion": UPSTREAM_PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": { "name": "remit-gateway", "version": env!("CARGO_PKG_VERSION") },
    })
}

fn reply_result(reply: UpstreamReply) -> Result<Value, UpstreamError> {
    match (reply.result, reply.error) {
        (_, Some(error)) => Err(UpstreamError::Remote(error)),
        (Some(result), None) => Ok(result),
        (None, None) => Err(UpstreamError::Protocol(
            "an answer with neither result nor error".into(),
        )),
    }
}

// ---- stdio ----------------------------------------------------------------

#[derive(Debug)]
struct StdioUpstream {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    conn: tokio::sync::Mutex<Option<Arc<StdioConn>>>,
    next_id: AtomicI64,
}

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<UpstreamReply>>>>;
type Watchers = Arc<Mutex<HashMap<String, Progress>>>;

#[derive(Debug)]
struct StdioConn {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Pending,
    /// Progress tokens of requests in flight and where their updates go.
    watchers: Watchers,
    alive: Arc<AtomicBool>,
    /// The write end of the reaper's stdin ([`spawn_reaper`]): closed when
    /// this connection is dropped or this process dies, however it dies.
    _reaper: Option<std::process::ChildStdin>,
    _child: Child,
}

/// The shell script of a reaper: waits for its stdin to close, then kills
/// its own process group (the upstream's, which it joined).
const REAPER_SCRIPT: &str = "trap '' HUP INT TERM; while read -r _; do :; done; kill -KILL 0";

/// Starts a reaper in the upstream's process `group`: a `/bin/sh` that
/// blocks reading a pipe only this process holds the write end of. When the
/// gateway drops the connection, exits, or is killed with SIGKILL (no
/// destructor runs), the kernel closes that end, the read sees end of file
/// and the reaper kills the whole group, itself last. Being a member keeps
/// the group id from being reused while it waits. This does what
/// `PR_SET_PDEATHSIG` would for the whole tree (which it cannot: it covers
/// only the direct child) without `unsafe` in a `pre_exec` hook, which the
/// workspace forbids.
fn spawn_reaper(group: u32) -> std::io::Result<std::process::ChildStdin> {
    use std::os::unix::process::CommandExt as _;
    let group = i32::try_from(group).map_err(std::io::Error::other)?;
    let mut reaper = std::process::Command::new("/bin/sh")
        .args(["-c", REAPER_SCRIPT, "remit-upstream-reaper"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(group)
        .spawn()?;
    let stdin = reaper
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the reaper has no stdin"))?;
    // Reaped when it exits: std's Child does not wait on drop, so a thread
    // does, or the reaper would stay a zombie of a long-running gateway.
    std::thread::spawn(move || reaper.wait());
    Ok(stdin)
}

impl StdioConn {
    async fn send(&self, message: &Value) -> Result<(), UpstreamError> {
        let mut line =
            serde_json::to_vec(message).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(&line)
            .await
            .map_err(|_| UpstreamError::Closed)?;
        stdin.flush().await.map_err(|_| UpstreamError::Closed)
    }

    async fn request(
        &self,
        id: i64,
        method: &str,
        params: Value,
        progress: Option<(String, Progress)>,
    ) -> Result<Value, UpstreamError> {
        let _watching = progress.map(|(token, sender)| {
            self.watchers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(token.clone(), sender);
            WatchGuard {
                watchers: &self.watchers,
                token,
            }
        });
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        let sent = self.send(&jsonrpc::request(id, method, params)).await;
        if let Err(e) = sent {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return Err(e);
        }
        let guard = PendingGuard {
            pending: &self.pending,
            id,
        };
        let reply = rx.await.map_err(|_| UpstreamError::Closed)?;
        drop(guard);
        reply_result(reply)
    }
}

/// Forgets a progress token when its request ends, which closes the
/// caller's progress channel.
struct WatchGuard<'a> {
    watchers: &'a Watchers,
    token: String,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.token);
    }
}

/// Forgets a pending id when its caller stops waiting (timeout).
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: i64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl StdioUpstream {
    async fn conn(&self, generation: &Arc<AtomicU64>) -> Result<Arc<StdioConn>, UpstreamError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            if conn.alive.load(Ordering::Acquire) {
                return Ok(Arc::clone(conn));
            }
            tracing::warn!(command = %self.argv.join(" "), "stdio upstream exited; restarting");
        }
        let conn = Arc::new(self.spawn(generation)?);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        conn.request(id, "initialize", initialize_params(), None)
            .await?;
        conn.send(&jsonrpc::notification("notifications/initialized"))
            .await?;
        // The tool list of a new process may differ from the old one's.
        generation.fetch_add(1, Ordering::AcqRel);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    fn spawn(&self, generation: &Arc<AtomicU64>) -> Result<StdioConn, UpstreamError> {
        let spawn_error = |detail: String| UpstreamError::Spawn {
            command: self.argv.join(" "),
            detail,
        };
        // Its own process group, so the whole tree (`npm exec` spawns node
        // children) can be killed at once, and a terminal's Ctrl-C reaches
        // the gateway, which then ends the group, not the upstream directly.
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(e.to_string()))?;
        let reaper = child.id().and_then(|group| match spawn_reaper(group) {
            Ok(stdin) => Some(stdin),
            Err(e) => {
                tracing::warn!(%e, group, "no reaper for the stdio upstream's process group");
                None
            }
        });
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| spawn_error("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| spawn_error("no stdout".into()))?;
        let pending: Pending = Arc::default();
        let watchers: Watchers = Arc::default();
        let reader_watchers = Arc::clone(&watchers);
        let alive = Arc::new(AtomicBool::new(true));
        let (stdin, reader_pending, reader_alive) = (
            tokio::sync::Mutex::new(stdin),
            Arc::clone(&pending),
            Arc::clone(&alive),
        );
        let generation = Arc::clone(generation);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.len() > MAX_STDIO_LINE => break,
                    Ok(_) => {}
                }
                let Ok(reply) = serde_json::from_slice::<UpstreamReply>(&line) else {
                    tracing::warn!("stdio upstream wrote a line that is not JSON-RPC");
                    continue;
                };
                match (&reply.id, &reply.method) {
                    (Some(RequestId::Number(id)), None) => {
                        let waiter = reader_pending
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(reply);
                        }
                    }
                    (None, Some(method)) if method == "notifications/tools/list_changed" => {
                        generation.fetch_add(1, Ordering::AcqRel);
                    }
                    (None, Some(method)) if method == "notifications/progress" => {
                        let watcher = progress_token(reply.params.as_ref()).and_then(|token| {
                            reader_watchers
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get(token)
                                .cloned()
                        });
                        if let (Some(watcher), Some(params)) = (watcher, reply.params) {
                            let _ = watcher.send(params);
                        }
                    }
                    _ => {}
                }
            }
            reader_alive.store(false, Ordering::Release);
            // Dropping the senders fails every call still waiting.
            reader_pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        });
        Ok(StdioConn {
            stdin,
            pending,
            watchers,
            alive,
            _reaper: reaper,
            _child: child,
        })
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        generation: &Arc<AtomicU64>,
        progress: Option<(String, Progress)>,
    ) -> Result<Value, UpstreamError> {
        let conn = self.conn(generation).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        conn.request(id, method, params, progress).await
    }
}

// ---- streamable HTTP ------------------------------------------------------

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A pooled HTTP/1.1 client that speaks TLS for `https://`, trusting the
/// settings' CA file or else the built-in Mozilla roots.
fn http_client(settings: &UpstreamSettings) -> Result<HttpClient, UpstreamError> {
    let tls_error = |e: &dyn std::fmt::Display| UpstreamError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_certificates {
        Some(certs) => {
            for cert in certs {
                roots.add(cert.clone()).map_err(|e| tls_error(&e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

fn is_loopback(uri: &hyper::Uri) -> bool {
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An error with its sources, so a TLS failure says which certificate
/// problem it was rather than only "client error (Connect)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[derive(Debug)]
struct HttpUpstream {
    uri: hyper::Uri,
    client: HttpClient,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    session: tokio::sync::Mutex<Option<Option<String>>>,
    next_id: AtomicI64,
}

struct HttpAnswer {
    status: hyper::StatusCode,
    session: Option<String>,
    reply: Option<UpstreamReply>,
}

impl HttpUpstream {
    async fn post(
        &self,
        message: &Value,
        session: Option<&str>,
        want: Option<i64>,
        progress: Option<&(String, Progress)>,
    ) -> Result<HttpAnswer, UpstreamError> {
        let body =
            serde_json::to_vec(message).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let mut request = hyper::Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", UPSTREAM_PROTOCOL_VERSION);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UpstreamError::Http(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| UpstreamError::Http(error_chain(&e)))?;
        let status = response.status();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let sse = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| UpstreamError::Http(e.to_string()))?
            .to_bytes();
        let Some(want) = want else {
            return Ok(HttpAnswer {
                status,
                session,
                reply: None,
            });
        };
        if !status.is_success() {
            return Ok(HttpAnswer {
                status,
                session,
                reply: None,
            });
        }
        let matches =
            |r: &UpstreamReply| r.id == Some(RequestId::Number(want)) && r.method.is_none();
        let reply = if sse {
            let mut messages = sse_messages(&bytes)
                .filter_map(|data| serde_json::from_str::<UpstreamReply>(&data).ok());
            // Progress sent before the answer is relayed before it.
            messages.find(|r| {
                if let (Some((token, sender)), Some("notifications/progress")) =
                    (progress, r.method.as_deref())
                {
                    if progress_token(r.params.as_ref()) == Some(token.as_str()) {
                        if let Some(params) = &r.params {
                            let _ = sender.send(params.clone());
                        }
                    }
                }
                matches(r)
            })
        } else {
            serde_json::from_slice::<UpstreamReply>(&bytes)
                .ok()
                .filter(matches)
        };
        match reply {
            Some(reply) => Ok(HttpAnswer {
                status,
                session,
                reply: Some(reply),
            }),
            None => Err(UpstreamError::Protocol(format!(
                "no answer to request {want} in the {} response",
                if sse { "SSE" } else { "JSON" }
            ))),
        }
    }

    async fn session(&self, fresh: bool) -> Result<Option<String>, UpstreamError> {
        let mut slot = self.session.lock().await;
        if !fresh {
            if let Some(session) = slot.as_ref() {
                return Ok(session.clone());
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .post(
                &jsonrpc::request(id, "initialize", initialize_params()),
                None,
                Some(id),
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(UpstreamError::Http(format!(
                "initialize answered HTTP {}",
                answer.status
            )));
        }
        reply_result(answer.reply.ok_or(UpstreamError::Closed)?)?;
        self.post(
            &jsonrpc::notification("notifications/initialized"),
            answer.session.as_deref(),
            None,
            None,
        )
        .await?;
        *slot = Some(answer.session.clone());
        Ok(answer.session)
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        progress: Option<(String, Progress)>,
    ) -> Result<Value, UpstreamError> {
        let mut fresh = false;
        loop {
            let session = self.session(fresh).await?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let answer = self
                .post(
                    &jsonrpc::request(id, method, params.clone()),
                    session.as_deref(),
                    Some(id),
                    progress.as_ref(),
                )
                .await?;
            if answer.status == hyper::StatusCode::NOT_FOUND && session.is_some() && !fresh {
                fresh = true;
                continue;
            }
            if !answer.status.is_success() {
                return Err(UpstreamError::Http(format!("HTTP {}", answer.status)));
            }
            return reply_result(answer.reply.ok_or(UpstreamError::Closed)?);
        }
    }
}

/// The `data` of each event in an SSE body.
fn sse_messages(body: &[u8]) -> impl Iterator<Item = String> + '_ {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let events: Vec<String> = text
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect();
    events.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_yield_their_data() {
        let body = b"event: message\ndata: {\"a\":1}\n\n: comment\n\ndata: {\"b\":\ndata: 2}\n\n";
        let got: Vec<String> = sse_messages(body).collect();
        assert_eq!(got, vec!["{\"a\":1}".to_owned(), "{\"b\":\n2}".to_owned()]);
    }

    #[test]
    fn unsupported_urls_are_refused() {
        assert!(matches!(
            Upstream::new("ftp://x"),
            Err(UpstreamError::Unsupported(_))
        ));
        assert!(matches!(
            Upstream::new("stdio:   "),
            Err(UpstreamError::Unsupported(_))
        ));
        assert!(Upstream::new("stdio:python3 server.py").is_ok());
        assert!(matches!(
            Upstream::new("stdio:python3 'unclosed"),
            Err(UpstreamError::Unsupported(_))
        ));
        assert!(matches!(
            Upstream::new("https:///no-host"),
            Err(UpstreamError::Unsupported(_))
        ));
        assert!(Upstream::new("https://mcp.example.com/mcp").is_ok());
    }

    #[test]
    fn stdio_command_lines_keep_quoted_arguments_whole() {
        let upstream = Upstream::new(r#"stdio:npx -y server "/data/My Files" 'a b' c\ d"#).unwrap();
        let Transport::Stdio(stdio) = &upstream.transport else {
            panic!("not stdio")
        };
        assert_eq!(
            stdio.argv,
            vec!["npx", "-y", "server", "/data/My Files", "a b", "c d"]
        );
    }

    #[test]
    fn credentials_never_go_over_cleartext_to_a_remote_host() {
        let mut settings = UpstreamSettings::default();
        let mut value = hyper::header::HeaderValue::from_static("Bearer x");
        value.set_sensitive(true);
        settings.headers.push((hyper::header::AUTHORIZATION, value));
        let settings = Arc::new(settings);
        for url in ["http://mcp.example.com/mcp", "http://10.0.0.5:8080/mcp"] {
            assert!(
                matches!(
                    Upstream::with_settings(url, Arc::clone(&settings)),
                    Err(UpstreamError::CleartextCredentials(_))
                ),
                "{url}"
            );
        }
        for url in [
            "https://mcp.example.com/mcp",
            "http://127.0.0.1:8080/mcp",
            "http://[::1]:8080/mcp",
            "http://localhost:8080/mcp",
        ] {
            assert!(
                Upstream::with_settings(url, Arc::clone(&settings)).is_ok(),
                "{url}"
            );
        }
        // Without credentials, plain http to a remote host is the operator's call.
        assert!(Upstream::new("http://mcp.example.com/mcp").is_ok());
    }

    #[test]
    fn an_upstream_is_rebuilt_when_its_settings_change() {
        let pool = UpstreamPool::default();
        let a = pool.get("s", "http://127.0.0.1:1/mcp").unwrap();
        let b = pool.get("s", "http://127.0.0.1:1/mcp").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut settings = BTreeMap::new();
        settings.insert("s".to_owned(), Arc::new(UpstreamSettings::default()));
        pool.configure(settings);
        let c = pool.get("s", "http://127.0.0.1:1/mcp").unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
