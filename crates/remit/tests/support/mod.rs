//! What the integration tests of the `remit` binary share: running it,
//! reading what it printed, `remit serve` as a child process, a blocking
//! HTTP/1.1 client for it, and a receipt log to audit.
// Every test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The binary under test, as a command to add arguments to.
pub fn remit_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_remit"))
}

/// Runs `remit ARGS` to the end.
pub fn remit(args: &[&str]) -> Output {
    remit_command().args(args).output().unwrap()
}

/// Runs `remit ARGS` in `dir` to the end.
pub fn remit_in(dir: &Path, args: &[&str]) -> Output {
    remit_command()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// What it printed on standard output, which must be UTF-8.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// What it printed on standard error.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as JSON; panics with both streams when it is not.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// Generates signing key `key` with key id `kid` in `dir`, and writes its
/// JWKS to `jwks` there.
pub fn key_with_jwks(dir: &Path, key: &str, kid: &str, jwks: &str) {
    let generated = remit_in(dir, &["keys", "generate", "--out", key, "--kid", kid]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    let published = remit_in(dir, &["keys", "jwks", key]);
    assert!(published.status.success(), "{}", stderr(&published));
    std::fs::write(dir.join(jwks), published.stdout).unwrap();
}

/// `remit audit init` of the log `log` in `dir` for `origin`, its
/// checkpoint key written to `note.key`; returns the note verifier key it
/// printed.
pub fn init_log(dir: &Path, origin: &str) -> Vec<u8> {
    let init = remit_in(
        dir,
        &[
            "audit",
            "init",
            "--log",
            "log",
            "--origin",
            origin,
            "--note-key-out",
            "note.key",
        ],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    init.stdout
}

/// A `remit serve` process, killed when dropped.
pub struct Running {
    child: Child,
    /// What it printed, up to its suggested next command.
    pub lines: Vec<String>,
    /// The URL it announced as `listening on`.
    pub url: String,
    /// The admin token it printed (on a first start only).
    pub token: Option<String>,
}

impl Running {
    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `remit serve` as `configure` sets it up (flags, environment),
/// without the `REMIT_*` settings of the test's own environment, and reads
/// its announcement up to the suggested next command.
pub fn serve(configure: impl FnOnce(&mut Command)) -> Running {
    let mut command = remit_command();
    command
        .arg("serve")
        .env_remove("REMIT_DATA")
        .env_remove("REMIT_DATABASE")
        .env_remove("REMIT_LISTEN")
        .env_remove("REMIT_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    configure(&mut command);
    let mut child = command.spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut token, mut lines) = (None, None, Vec::new());
    for _ in 0..40 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("listening on") {
            url = Some(rest.trim().to_owned());
        }
        if trimmed.starts_with("remit_admin_") {
            token = Some(trimmed.to_owned());
        }
        let done = line.contains("remit server list");
        lines.push(line);
        if done {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no listen address announced: {lines:?}"));
    // Keep draining what the server prints, as a terminal would.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Running {
        child,
        lines,
        url,
        token,
    }
}

/// An HTTP answer as read off the wire: the status, the head (status line
/// and headers) and the body, de-chunked.
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// Sends `method path` with `headers` and `body` to the server at `url`
/// (`http://host:port`) and reads the answer to the end.
pub fn http(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let addr = url.strip_prefix("http://").unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers: head.to_owned(),
        body,
    }
}

/// The payload of a `transfer-encoding: chunked` body.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}
