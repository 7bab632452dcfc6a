//! TLS for `remit serve`: rustls on the aws-lc-rs provider, the certificate
//! chain and private key read from PEM files.
//!
//! The files are read again when they change (polled every
//! [`RELOAD_POLL`]) or on SIGHUP. A new pair is checked (it parses, the key
//! matches the certificate) before it replaces the old one; a bad pair is
//! logged and the old one kept. Only new handshakes see the new
//! certificate: connections already open keep their session, so a reload
//! drops nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are checked for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes finished but not yet taken by the server.
const ACCEPT_QUEUE: usize = 128;

/// The certificate chain and private key files, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is unreadable.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM section of the kind expected.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key does not fit the certificate, or its type is unsupported.
    #[error("{key} does not fit {cert}: {detail} (give the key the certificate was issued for)")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

/// Serves the current certificate to every new handshake; [`Self::reload`]
/// swaps it.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last read.
    seen: RwLock<Option<FileStamps>>,
}

type FileStamps = [(Option<SystemTime>, u64); 2];

impl ReloadingCert {
    /// Reads the files; refuses a pair that does not load.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let stamps = stamps(&files);
        let key = read_pair(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(Some(stamps)),
        }))
    }

    /// The files this resolver reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again and, if they load, serves them from now on.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.files);
        *self.seen.write().unwrap_or_else(PoisonError::into_inner) = Some(stamps);
        let key = read_pair(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// Whether a file changed since it was last read.
    fn changed(&self) -> bool {
        let now = stamps(&self.files);
        *self.seen.read().unwrap_or_else(PoisonError::into_inner) != Some(now)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamps(files: &TlsFiles) -> FileStamps {
    let stamp = |path: &Path| match std::fs::metadata(path) {
        Ok(meta) => (meta.modified().ok(), meta.len()),
        Err(_) => (None, 0),
    };
    [stamp(&files.cert), stamp(&files.key)]
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path, detail: String| TlsError::Pem {
        path: path.to_owned(),
        detail,
    };
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem_error(
            &files.cert,
            "no CERTIFICATE section (give the certificate chain, leaf first)".into(),
        ));
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(&files.key, format!("no PEM private key: {e}")))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    })
}

/// The server configuration: TLS 1.2 and 1.3, HTTP/1.1, no client
/// certificates, the certificate from `resolver`.
pub fn server_config(resolver: Arc<ReloadingCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch {
            cert: resolver.files.cert.clone(),
            key: resolver.files.key.clone(),
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration for talking to a Remit server over HTTPS: the
/// certificates of `ca_file` (PEM) as the only roots when given, else the
/// system's roots (Mozilla's built-in list when the system has none).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = read(path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem {
                    path: path.to_owned(),
                    detail: format!("not a PEM certificate list: {e}"),
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::Pem {
                    path: path.to_owned(),
                    detail: "no usable CA certificate (give the PEM file of the CA that issued the server's certificate)".into(),
                });
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pem {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reloads `resolver` whenever its files change or the process gets
/// SIGHUP, until the returned task is aborted.
pub fn spawn_reload(resolver: Arc<ReloadingCert>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = hangup_signal();
        let mut poll = tokio::time::interval(RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = poll.tick() => false,
                () = next_hangup(&mut hangup) => true,
            };
            if !forced && !resolver.changed() {
                continue;
            }
            match resolver.reload() {
                Ok(()) => {
                    crate::metrics::tls_reload(true);
                    tracing::info!(cert = %resolver.files.cert.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    crate::metrics::tls_reload(false);
                    tracing::error!(%error, "TLS certificate not reloaded; the previous one is still served");
                }
            }
        }
    })
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(signal: &mut Hangup) {
    match signal {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}

/// A listener whose connections have finished a TLS handshake. Handshakes
/// run on their own tasks, so a slow client delays nobody else; one that
/// fails or takes longer than ten seconds is dropped.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts TCP connections on `listener` and shakes hands with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = sender.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::warn!(%error, "accepting a TCP connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            ready,
            acceptor: task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The acceptor only stops when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
