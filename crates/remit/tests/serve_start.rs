//! `remit serve` as a user runs it: the real binary, no flags but a data
//! directory from the environment, then a restart, then a config file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Running {
    child: Child,
    lines: Vec<String>,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(configure: impl FnOnce(&mut Command)) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_remit"));
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
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let mut url = None;
    // Read the announcement up to the suggested next command.
    for _ in 0..40 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("listening on") {
            url = Some(rest.trim().to_owned());
        }
        let done = line.contains("remit keys generate");
        lines.push(line);
        if done {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no listen address announced: {lines:?}"));
    // Keep draining what the server prints, as a terminal would.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Running { child, lines, url }
}

fn get(url: &str, path: &str) -> (u16, String) {
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

#[test]
fn serve_with_no_flags_prepares_everything_and_reuses_it_on_restart() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("remit");
    let first = start(|c| {
        c.env("XDG_DATA_HOME", home.path())
            .args(["--listen", "127.0.0.1:0"]);
    });
    let text = first.lines.concat();
    assert!(text.contains("generated"), "{text}");
    let token_line = first
        .lines
        .iter()
        .position(|l| l.starts_with("Admin token"))
        .expect("admin token announced");
    let token = first.lines[token_line + 1].trim().to_owned();
    assert!(token.starts_with("remit_admin_"), "{token}");
    for file in ["issuer.jwk", "receipt.jwk", "admin-token.sha256"] {
        let meta = std::fs::metadata(data.join(file)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
        let _ = meta;
    }
    let stored = std::fs::read_to_string(data.join("admin-token.sha256")).unwrap();
    assert!(
        !stored.contains(&token),
        "the token itself must not be stored"
    );
    assert!(data.join("remit.db").exists());
    assert_eq!(get(&first.url, "/healthz").0, 200);
    let (ready, body) = get(&first.url, "/readyz");
    assert_eq!(ready, 200, "{body}");
    assert!(body.contains("sqlite"));
    let (status, jwks_first) = get(&first.url, "/.well-known/jwks.json");
    assert_eq!(status, 200);
    assert_eq!(get(&first.url, "/v1/agents").0, 401);
    drop(first);

    let second = start(|c| {
        c.env("XDG_DATA_HOME", home.path())
            .args(["--listen", "127.0.0.1:0"]);
    });
    let text = second.lines.concat();
    assert!(text.contains("reused"), "{text}");
    assert!(!text.contains("remit_admin_"), "token shown again: {text}");
    let (_, jwks_second) = get(&second.url, "/.well-known/jwks.json");
    let keys = |t: &str| t.split("\r\n\r\n").nth(1).unwrap().to_owned();
    assert_eq!(
        keys(&jwks_first),
        keys(&jwks_second),
        "issuer key changed on restart"
    );
}

#[test]
fn config_file_sets_defaults_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remit.toml");
    let data = dir.path().join("from-config");
    std::fs::write(
        &config,
        format!(
            "data = {:?}\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://remit.test\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let running = start(|c| {
        c.env("REMIT_CONFIG", &config)
            .env("HOME", dir.path())
            .env_remove("XDG_DATA_HOME");
    });
    assert!(data.join("issuer.jwk").exists());
    assert!(running.lines.concat().contains("http://remit.test"));
    drop(running);

    let flagged = dir.path().join("from-flag");
    let running = start(|c| {
        c.env("REMIT_CONFIG", &config).arg("--data").arg(&flagged);
    });
    assert!(flagged.join("issuer.jwk").exists());
    drop(running);
}

#[test]
fn a_bad_config_or_database_url_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remit.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_remit"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
    let out = Command::new(env!("CARGO_BIN_EXE_remit"))
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--database", "mysql://root:hunter2@db/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sqlite://"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
