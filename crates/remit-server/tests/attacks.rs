//! Issue 22's attacks on the control plane, each driven through HTTP
//! against the real application, on SQLite and PostgreSQL: every test is
//! named after the attack it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use remit_server::anonymous::Limits;
use remit_token::{b64, mint, EcdsaP256Signer, Grant, MintRequest, Signer as _};
use serde_json::{json, Value};
use support::{jti, now, postgres_with, sqlite_with, Options, Server};

fn valid_jwk() -> Value {
    serde_json::to_value(EcdsaP256Signer::generate().unwrap().public_jwk()).unwrap()
}

async fn register_with_key(s: &Server, id: &str, key: Value) -> support::Reply {
    s.post(
        "/v1/agents",
        &json!({"id": id, "public_jwk": key, "owner": "alice", "risk_tier": "low"}),
    )
    .await
}

/// Item 7: every malformed JWK is a 400 naming the check, and nothing
/// that follows answers 500.
async fn an_off_curve_truncated_private_or_non_canonical_jwk_is_refused(s: Server) {
    let good = valid_jwk();
    let x = good["x"].as_str().unwrap().to_owned();
    let y = good["y"].as_str().unwrap().to_owned();
    let with = |member: &str, value: Value| {
        let mut key = good.clone();
        key[member] = value;
        key
    };
    let mut flipped = b64::decode(&y).unwrap();
    flipped[31] ^= 1;
    let cases = [
        (
            "off-curve",
            with("y", json!(b64::encode(&flipped))),
            "curve",
        ),
        ("x for y", with("y", json!(x)), "curve"),
        (
            "short",
            with("x", json!(b64::encode([1u8; 31]))),
            "32 bytes",
        ),
        ("long", with("x", json!(b64::encode([1u8; 33]))), "32 bytes"),
        (
            "private",
            with("d", json!(b64::encode([1u8; 32]))),
            "private",
        ),
        ("rsa private", with("p", json!("AQAB")), "private"),
        ("p-384", with("crv", json!("P-384")), "P-256"),
        ("rsa", with("kty", json!("RSA")), "P-256"),
        ("padded", with("x", json!(format!("{x}="))), "canonical"),
        (
            "std alphabet",
            with("x", json!(x.replace('-', "+").replace('_', "/") + "+")),
            "canonical",
        ),
        ("hs256", with("alg", json!("HS256")), "ES256"),
        ("not an object", json!("EC P-256"), "object"),
    ];
    for (i, (what, key, mentions)) in cases.into_iter().enumerate() {
        let reply = register_with_key(&s, &format!("bad-{i}"), key).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        let detail = reply.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(mentions), "{what}: {detail}");
    }
    // A later token request naming an agent that was refused is never 500.
    let form = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x&subject_token_type=urn%3Aremit%3Aparams%3Aoauth%3Atoken-type%3Aremit&actor_token=e30.e30.AA&actor_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&authorization_details=%5B%5D";
    let reply = s
        .send(
            "POST",
            "/oauth/token",
            None,
            Some("application/x-www-form-urlencoded"),
            form,
        )
        .await;
    assert!(reply.status < 500, "{}", reply.body);
    // A key stored before keys were checked: a 409 / invalid_grant, not 500.
    let ok = register_with_key(&s, "legacy", valid_jwk()).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let off_curve = with("y", json!(x)).to_string().replace('\'', "''");
    s.db.execute(&format!(
        "UPDATE agents SET public_jwk = '{off_curve}' WHERE id = 'legacy'"
    ))
    .await;
    let issue = s
        .post(
            "/v1/remits",
            &json!({"agent": "legacy", "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["fs/read"]}]}),
        )
        .await;
    assert_eq!(issue.status, 409, "{}", issue.body);
    assert!(issue.body.contains("register it again"), "{}", issue.body);
}

/// Item 10: names and owners with control or bidi characters are 400s.
async fn control_characters_in_names_and_owners_are_refused(s: Server) {
    for (field, value) in [
        ("owner", "alice\u{1b}[2J"),
        ("owner", "bob\nroot"),
        ("name", "helper\u{202e}txt.exe"),
        ("name", "nul\u{0}"),
        ("owner", "   "),
    ] {
        let mut body =
            json!({"id": "a1", "public_jwk": valid_jwk(), "owner": "alice", "risk_tier": "low"});
        body[field] = json!(value);
        let reply = s.post("/v1/agents", &body).await;
        assert_eq!(reply.status, 400, "{field} {value:?}: {}", reply.body);
        assert!(reply.body.contains(field), "{}", reply.body);
    }
    let reply = s
        .post(
            "/v1/servers",
            &json!({"id": "files", "name": "Files\u{7}", "url": "https://mcp.example/f", "clearance": "internal"}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("U+0007"), "{}", reply.body);
}

/// Item 3: a server id that would nest under another's grants (`evil/admin`
/// under `evil/*`) or look like another (`Files`) is refused; one stored
/// before the rule still lists but is not served.
async fn a_server_id_that_overlaps_another_is_refused(s: Server) {
    for id in [
        "evil/admin",
        "Files",
        "-x",
        ".",
        "a b",
        "x:y",
        &"a".repeat(64),
        "",
    ] {
        let reply = s
            .post(
                "/v1/servers",
                &json!({"id": id, "url": "https://mcp.example/x", "clearance": "internal"}),
            )
            .await;
        assert_eq!(reply.status, 400, "{id:?}: {}", reply.body);
        assert!(reply.body.contains("server id"), "{}", reply.body);
    }
    for id in ["evil", "files-2", "a.b_c", "0"] {
        let reply = s
            .post(
                "/v1/servers",
                &json!({"id": id, "url": "https://mcp.example/x", "clearance": "internal"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{id:?}: {}", reply.body);
    }
    s.db.execute(
        "INSERT INTO mcp_servers (id, name, url, clearance, status, created_at, updated_at) \
             VALUES ('evil/admin', 'old', 'https://mcp.example/old', 'internal', 'active', 1, 1)",
    )
    .await;
    let listed = s.get("/v1/servers").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains("evil/admin"));
    // The gateway refuses it with the reason, for a caller with a remit.
    s.register("agent-1", "alice").await;
    let remit = s.issue("agent-1", "alice", &["evil/*"]).await;
    let reply = s
        .send_headers(
            "POST",
            "/mcp/evil%2Fadmin",
            &[("authorization", &format!("Bearer {remit}"))],
            Some("application/json"),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("registered before server ids were restricted"),
        "{}",
        reply.body
    );
}

/// A remit minted by this server's issuer for one MCP server's resource URL.
fn server_scoped(s: &Server, agent: &EcdsaP256Signer, server: &str) -> String {
    let issuer = EcdsaP256Signer::from_jwk(&s.issuer).unwrap();
    let grant: Grant =
        serde_json::from_value(json!({"type": "remit_tool", "tools": [format!("{server}/*")]}))
            .unwrap();
    let mut request = MintRequest::new("alice", "agent-1", agent.public_jwk().clone(), vec![grant]);
    request.issuer = s.url();
    request.audience = format!("{}/mcp/{server}", s.url());
    request.ttl_secs = 300;
    mint(&issuer, &request, now()).unwrap().to_string()
}

/// Item 6: introspection and RFC 7009 revocation see a server-scoped remit
/// (the audience the gateway accepts for that server).
async fn a_server_scoped_remit_is_introspected_and_revoked(s: Server) {
    let agent = s.register("agent-1", "alice").await;
    let remit = server_scoped(&s, &agent, "files");
    let seen = s.introspect(&remit).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["aud"], format!("{}/mcp/files", s.url()));
    let call = || async {
        s.send_headers(
            "POST",
            "/mcp/files",
            &[("authorization", &format!("Bearer {remit}"))],
            Some("application/json"),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await
    };
    assert_ne!(call().await.status, 401);
    let revoked = s.form("/oauth/revoke", &remit).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.json()["receipt_id"].is_number(), "{}", revoked.body);
    assert_eq!(s.introspect(&remit).await["active"], false);
    let after = call().await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(after.body.contains("revoked"), "{}", after.body);
    // A remit for an audience Remit does not serve stays inactive.
    let issuer = EcdsaP256Signer::from_jwk(&s.issuer).unwrap();
    let grant: Grant =
        serde_json::from_value(json!({"type": "remit_tool", "tools": ["x/*"]})).unwrap();
    let mut request = MintRequest::new("alice", "agent-1", agent.public_jwk().clone(), vec![grant]);
    request.issuer = s.url();
    request.audience = "https://elsewhere.example/mcp/files".into();
    let elsewhere = mint(&issuer, &request, now()).unwrap().to_string();
    assert_eq!(s.introspect(&elsewhere).await["active"], false);
    assert!(!jti(&elsewhere).is_empty());
}

/// Item 8: anonymous requests with long paths do not grow the signed log,
/// and what is echoed is bounded.
async fn an_anonymous_flood_does_not_grow_the_receipt_log(s: Server) {
    let before = s.receipts().await.len();
    let long = "p".repeat(8 * 1024);
    for i in 0..300 {
        let path = if i % 2 == 0 {
            format!("/mcp/{long}")
        } else {
            format!("/v1/agents/{long}")
        };
        let reply = s
            .send(
                "POST",
                &path,
                Some("Bearer nonsense"),
                Some("application/json"),
                "{}",
            )
            .await;
        assert!(
            reply.status == 401 || reply.status == 405,
            "{} {}",
            reply.status,
            reply.body
        );
        assert!(reply.headers.len() < 2048, "{}", reply.headers.len());
        assert!(reply.body.len() < 2048, "{}", reply.body.len());
    }
    let after = s.receipts().await.len();
    assert!(after <= before + 1, "{before} -> {after}");
    let metrics = s.send("GET", "/metrics", None, None, "").await;
    assert!(
        metrics
            .body
            .contains("remit_unauthenticated_refusals_total"),
        "{}",
        metrics.body
    );
}

/// Item 8: a 900 KB tool name from an authenticated caller becomes a
/// bounded receipt and a bounded header.
async fn a_huge_tool_name_is_bounded_in_receipt_and_header(s: Server) {
    let reply = s
        .post(
            "/v1/servers",
            &json!({"id": "files", "url": "https://127.0.0.1:9/none", "clearance": "internal"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    s.register("agent-1", "alice").await;
    let remit = s.issue("agent-1", "alice", &["files/read"]).await;
    let name = "T".repeat(900 * 1024);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": name, "arguments": {}}})
    .to_string();
    let reply = s
        .send_headers(
            "POST",
            "/mcp/files",
            &[("authorization", &format!("Bearer {remit}"))],
            Some("application/json"),
            &body,
        )
        .await;
    assert!(reply.status < 500, "{}", reply.status);
    assert!(
        reply.headers.len() < 4096,
        "header of {} bytes",
        reply.headers.len()
    );
    assert!(
        reply.body.len() < 8192,
        "body of {} bytes",
        reply.body.len()
    );
    let biggest = s
        .signed_receipts()
        .await
        .iter()
        .map(|r| r.to_string().len())
        .max()
        .unwrap();
    assert!(biggest < 8192, "a receipt of {biggest} bytes");
}

/// Item 8: a peer that keeps failing authentication is answered 429.
async fn a_peer_flooding_without_credentials_is_rate_limited(s: Server) {
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = s.send("GET", "/v1/agents", None, None, "").await;
        statuses.push(reply.status);
        if reply.status == 429 {
            assert!(
                reply.headers.to_ascii_lowercase().contains("retry-after: "),
                "{}",
                reply.headers
            );
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // An authenticated caller is not charged and is still served.
    assert_eq!(s.get("/v1/agents").await.status, 200);
}

fn limits(burst: u32) -> Options {
    Options {
        unauthenticated: Some(Limits {
            burst,
            per_second: 0.001,
        }),
        ..Options::default()
    }
}

macro_rules! attacks {
    ($($name:ident: $burst:expr),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                super::$name(super::sqlite_with(super::limits($burst)).await).await
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(s) = super::postgres_with(super::limits($burst)).await {
                    super::$name(s).await
                }
            })*
        }
    };
}

attacks!(
    an_off_curve_truncated_private_or_non_canonical_jwk_is_refused: 1000,
    control_characters_in_names_and_owners_are_refused: 1000,
    a_server_id_that_overlaps_another_is_refused: 1000,
    a_server_scoped_remit_is_introspected_and_revoked: 1000,
    an_anonymous_flood_does_not_grow_the_receipt_log: 1000,
    a_huge_tool_name_is_bounded_in_receipt_and_header: 1000,
    a_peer_flooding_without_credentials_is_rate_limited: 3,
);
