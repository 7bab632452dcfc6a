//! `remit serve` over TLS, as an operator runs it: the real binary, a
//! private CA (rcgen), the CLI trusting that CA, and the certificate
//! swapped under a running server (SIGHUP and file change) while a
//! keep-alive connection stays open.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use support::{remit_command, serve, stderr, Running};

/// A private CA and the means to issue leaf certificates for 127.0.0.1.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// Writes a fresh leaf for 127.0.0.1 and localhost to `cert`/`key`
    /// (each replaced by a rename, as a certificate manager does) and
    /// returns its DER.
    fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &self.issuer)
            .unwrap();
        replace(key, leaf_key.serialize_pem().as_bytes());
        replace(cert, leaf.pem().as_bytes());
        leaf.der().to_vec()
    }
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS client that trusts only `ca_pem`.
fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One TLS connection kept open across requests.
struct KeepAlive {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl KeepAlive {
    fn open(url: &str, config: Arc<rustls::ClientConfig>) -> Self {
        let addr = url.strip_prefix("https://").unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let session = rustls::ClientConnection::new(config, name).unwrap();
        let mut stream = rustls::StreamOwned::new(session, tcp);
        // Finish the handshake so the peer certificate is known.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        Self { stream }
    }

    /// The leaf certificate this connection was given.
    fn leaf(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// `GET /healthz` on this connection; the status.
    fn healthz(&mut self) -> u16 {
        self.stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).unwrap();
        head[9..12].parse().unwrap()
    }
}

/// Waits until a new connection to `url` is given the leaf `want`.
fn wait_for_leaf(url: &str, config: &Arc<rustls::ClientConfig>, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut fresh = KeepAlive::open(url, config.clone());
        if fresh.leaf() == want {
            assert_eq!(fresh.healthz(), 200);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve_tls(dir: &Path, cert: &Path, key: &Path) -> Running {
    serve(|c| {
        c.arg("--data")
            .arg(dir.join("data"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    })
}

fn hangup(server: &Running) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn plain_http_off_loopback_is_refused_unless_insecure_http_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = remit_command()
        .arg("serve")
        .env_remove("REMIT_LISTEN")
        .env_remove("REMIT_CONFIG")
        .env_remove("REMIT_INSECURE_HTTP")
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("--insecure-http"), "{err}");
    assert!(err.contains("--tls-cert"), "{err}");

    let allowed = serve(|c| {
        c.arg("--data").arg(dir.path().join("data")).args([
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
        ]);
    });
    assert!(
        allowed.url.starts_with("http://0.0.0.0:"),
        "{}",
        allowed.url
    );
}

#[test]
fn a_key_that_does_not_fit_the_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("remit test CA");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    ca.issue(&cert, &key);
    let other_key = dir.path().join("other.pem");
    ca.issue(&dir.path().join("other-cert.pem"), &other_key);
    let out = remit_command()
        .arg("serve")
        .env_remove("REMIT_LISTEN")
        .env_remove("REMIT_CONFIG")
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("does not fit"), "{err}");
}

#[test]
fn the_cli_speaks_https_trusting_only_the_ca_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("remit test CA");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    ca.issue(&cert, &key);
    let server = serve_tls(dir.path(), &cert, &key);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let token = server.token.clone().unwrap();
    let stranger = Ca::new("someone else's CA");
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.path().join("stranger.pem"), &stranger.pem).unwrap();
    let list = |ca_file: Option<&str>, url: &str| {
        let mut command = remit_command();
        command
            .env_remove("REMIT_CA_FILE")
            .args(["agent", "list", "--json", "--server", url, "--admin-token"])
            .arg(&token);
        if let Some(file) = ca_file {
            command.arg("--ca-file").arg(dir.path().join(file));
        }
        command.output().unwrap()
    };
    // Negative first: the wrong CA and the system roots both refuse it.
    let wrong = list(Some("stranger.pem"), &server.url);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).to_ascii_lowercase().contains("certificate"),
        "{}",
        stderr(&wrong)
    );
    let system = list(None, &server.url);
    assert!(
        !system.status.success(),
        "a private CA is not a system root"
    );
    // Plain HTTP to a TLS port gets no answer.
    let plain = list(None, &server.url.replace("https://", "http://"));
    assert!(!plain.status.success());

    let ok = list(Some("ca.pem"), &server.url);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let agents: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(agents.is_array() || agents.is_object(), "{agents}");
}

#[test]
fn a_swapped_certificate_reaches_new_connections_while_open_ones_survive() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("remit test CA");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = ca.issue(&cert, &key);
    let server = serve_tls(dir.path(), &cert, &key);
    let config = client_config(&ca.pem);

    let mut open = KeepAlive::open(&server.url, config.clone());
    assert_eq!(open.leaf(), first);
    assert_eq!(open.healthz(), 200);

    // SIGHUP: new connections get the new certificate at once.
    let second = ca.issue(&cert, &key);
    assert_ne!(first, second);
    hangup(&server);
    wait_for_leaf(&server.url, &config, &second);
    // The connection opened before the swap still works, on its session.
    assert_eq!(open.healthz(), 200);
    assert_eq!(open.leaf(), first);

    // A broken file is refused and the current certificate kept.
    replace(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n");
    hangup(&server);
    std::thread::sleep(Duration::from_millis(500));
    let mut after_bad = KeepAlive::open(&server.url, config.clone());
    assert_eq!(after_bad.leaf(), second);
    assert_eq!(after_bad.healthz(), 200);

    // No signal: a changed file is noticed by itself.
    let third = ca.issue(&cert, &key);
    wait_for_leaf(&server.url, &config, &third);
    assert_eq!(open.healthz(), 200);
    assert_eq!(after_bad.healthz(), 200);
}
