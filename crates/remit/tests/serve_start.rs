//! `remit serve` as a user runs it: the real binary, no flags but a data
//! directory from the environment, then a restart, then a config file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use support::{remit_command, serve, Reply};

/// `GET path` of the server at `url`, without credentials.
fn get(url: &str, path: &str) -> Reply {
    support::http(url, "GET", path, &[], "")
}

#[test]
fn serve_with_no_flags_prepares_everything_and_reuses_it_on_restart() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("remit");
    let first = serve(|c| {
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
    assert_eq!(get(&first.url, "/healthz").status, 200);
    let ready = get(&first.url, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("sqlite"));
    let jwks_first = get(&first.url, "/.well-known/jwks.json");
    assert_eq!(jwks_first.status, 200);
    assert_eq!(get(&first.url, "/v1/agents").status, 401);
    drop(first);

    let second = serve(|c| {
        c.env("XDG_DATA_HOME", home.path())
            .args(["--listen", "127.0.0.1:0"]);
    });
    let text = second.lines.concat();
    assert!(text.contains("reused"), "{text}");
    assert!(!text.contains("remit_admin_"), "token shown again: {text}");
    let jwks_second = get(&second.url, "/.well-known/jwks.json");
    assert_eq!(
        jwks_first.body, jwks_second.body,
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
    let running = serve(|c| {
        c.env("REMIT_CONFIG", &config)
            .env("HOME", dir.path())
            .env_remove("XDG_DATA_HOME");
    });
    assert!(data.join("issuer.jwk").exists());
    assert!(running.lines.concat().contains("http://remit.test"));
    drop(running);

    let flagged = dir.path().join("from-flag");
    let running = serve(|c| {
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
    let out = remit_command()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
    let out = remit_command()
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
