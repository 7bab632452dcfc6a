//! The egress proxy: the only way out of the sandbox.
//!
//! An HTTP `CONNECT` proxy on a loopback port. The sandbox lets the process
//! connect to that port only (Landlock TCP rules), and the proxy opens a
//! tunnel only to a granted `host:port` ([`NetGrant`], `--net
//! api.github.com:443`); anything else gets `403`. Every request, tunnelled
//! or refused, ends in one [`ConnectionRecord`] (host, port, bytes each way,
//! decision) handed to the caller's callback, which turns it into a receipt.
//!
//! A granted *name* must resolve to public addresses: a name that resolves
//! to loopback, private or link-local space is refused (DNS rebinding onto
//! the host's own services). To reach such an address, grant it as a
//! literal (`--net 127.0.0.1:8080`). The proxy resolves names itself, so the
//! process needs no DNS (its UDP sockets are refused by seccomp).

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long the proxy waits for a granted host to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// One granted destination: a host name or IP literal and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NetGrant {
    host: String,
    port: u16,
}

/// Why a `--net` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not host:port (e.g. api.github.com:443 or [::1]:8080)")]
pub struct NetGrantError(String);

impl FromStr for NetGrant {
    type Err = NetGrantError;

    fn from_str(text: &str) -> Result<Self, NetGrantError> {
        let bad = || NetGrantError(text.to_owned());
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let valid = !host.is_empty()
            && port != 0
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !valid {
            return Err(bad());
        }
        Ok(NetGrant {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for NetGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What the proxy did with one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Decision {
    /// Tunnelled to the granted destination.
    Allowed,
    /// Refused before any byte left the host.
    Refused(String),
    /// Granted, but the destination could not be reached.
    Failed(String),
}

/// One request through the proxy, for a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionRecord {
    /// The host asked for (lower case; empty when the request named none).
    pub host: String,
    /// The port asked for (0 when none).
    pub port: u16,
    /// Bytes from the sandboxed process to the destination.
    pub bytes_up: u64,
    /// Bytes from the destination to the sandboxed process.
    pub bytes_down: u64,
    /// What the proxy decided.
    #[serde(flatten)]
    pub decision: Decision,
}

/// The callback records go to.
pub type OnRecord = Arc<dyn Fn(ConnectionRecord) + Send + Sync>;

struct State {
    grants: Vec<NetGrant>,
    on_record: OnRecord,
}

/// A running egress proxy; stops when dropped.
#[derive(Debug)]
pub struct EgressProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EgressProxy {
    /// Starts a proxy on an ephemeral loopback port that tunnels to `grants` only.
    pub async fn start(grants: Vec<NetGrant>, on_record: OnRecord) -> std::io::Result<EgressProxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State { grants, on_record });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(req, Arc::clone(&state)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .max_buf_size(MAX_HEAD)
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(EgressProxy { addr, task })
    }

    /// The proxy's address (127.0.0.1 and its port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port: the one TCP port the sandbox may connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The proxy URL for `HTTPS_PROXY` and friends.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (host, port) = match req.uri().authority() {
        Some(a) => (
            a.host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            a.port_u16().unwrap_or(0),
        ),
        None => (String::new(), 0),
    };
    let refuse = |status: StatusCode, reason: String| {
        (state.on_record)(ConnectionRecord {
            host: host.clone(),
            port,
            bytes_up: 0,
            bytes_down: 0,
            decision: Decision::Refused(reason.clone()),
        });
        Ok(reply(status, &format!("remit egress proxy: {reason}")))
    };
    if req.method() != Method::CONNECT {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not proxied: only CONNECT tunnels to granted hosts",
                req.method()
            ),
        );
    }
    let granted = state
        .grants
        .iter()
        .any(|g| g.host == host && g.port == port);
    if !granted {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("{host}:{port} is not granted"),
        );
    }
    let addrs = match resolve(&host, port).await {
        Ok(addrs) => addrs,
        Err(reason) => return refuse(StatusCode::FORBIDDEN, reason),
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addrs[..])).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Ok(failed(&state, host, port, e.to_string())),
        Err(_) => return Ok(failed(&state, host, port, "connect timed out".into())),
    };
    tokio::spawn(tunnel(req, upstream, state, host, port));
    Ok(Response::new(Full::new(Bytes::new())))
}

fn failed(state: &State, host: String, port: u16, reason: String) -> Response<Full<Bytes>> {
    let text = format!("remit egress proxy: {host}:{port}: {reason}");
    (state.on_record)(ConnectionRecord {
        host,
        port,
        bytes_up: 0,
        bytes_down: 0,
        decision: Decision::Failed(reason),
    });
    reply(StatusCode::BAD_GATEWAY, &text)
}

/// Copies both ways until both sides close, then records the byte counts.
async fn tunnel(
    req: Request<Incoming>,
    upstream: TcpStream,
    state: Arc<State>,
    host: String,
    port: u16,
) {
    let decision;
    let (mut bytes_up, mut bytes_down) = (0, 0);
    match hyper::upgrade::on(req).await {
        Ok(upgraded) => {
            let (mut client_read, mut client_write) = tokio::io::split(TokioIo::new(upgraded));
            let (mut up_read, mut up_write) = upstream.into_split();
            let up = async {
                let n = tokio::io::copy(&mut client_read, &mut up_write).await;
                let _ = up_write.shutdown().await;
                n
            };
            let down = async {
                let n = tokio::io::copy(&mut up_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
                n
            };
            let (u, d) = tokio::join!(up, down);
            bytes_up = u.as_ref().copied().unwrap_or(0);
            bytes_down = d.as_ref().copied().unwrap_or(0);
            decision = Decision::Allowed;
        }
        Err(e) => decision = Decision::Failed(format!("upgrade: {e}")),
    }
    (state.on_record)(ConnectionRecord {
        host,
        port,
        bytes_up,
        bytes_down,
        decision,
    });
}

/// The addresses to dial: an IP literal as given; a name's public addresses only.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    let public: Vec<SocketAddr> = all.iter().copied().filter(|a| is_public(a.ip())).collect();
    if public.is_empty() {
        return Err(format!(
            "{host} resolves to a non-public address; grant the address itself to reach it"
        ));
    }
    Ok(public)
}

/// Whether `ip` is outside loopback, private, link-local, shared and
/// unspecified space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_grants_parse_names_and_literals() {
        let g: NetGrant = "API.github.com:443".parse().unwrap();
        assert_eq!(g.to_string(), "api.github.com:443");
        let g: NetGrant = "[::1]:8080".parse().unwrap();
        assert_eq!(g.to_string(), "[::1]:8080");
        for bad in ["github.com", "github.com:0", ":443", "a b:1", "x:99999"] {
            assert!(bad.parse::<NetGrant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rebinding_targets_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("140.82.112.3".parse().unwrap()));
    }
}
