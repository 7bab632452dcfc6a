//! HTTP scenarios against the real application, served on 127.0.0.1:0 in
//! this process, on SQLite and on PostgreSQL (own schema per test).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;

use remit_server::{ReceiptLog, ReceiptLogError};
use remit_token::{EcdsaP256Signer, Grant, Pattern, Signer as _, UnverifiedRemit};
use serde_json::{json, Value};
use support::{extend, jti, now, postgres_store, sqlite_with, start, Options, Reply, Server};

// ---------------------------------------------------------------- scenarios

async fn missing_or_wrong_admin_credentials_are_refused(s: Server) {
    let none = s.send("GET", "/v1/agents", None, None, "").await;
    assert_eq!(none.status, 401);
    assert!(none.is_problem());
    assert!(none
        .headers
        .to_ascii_lowercase()
        .contains("www-authenticate: bearer"));
    assert!(none.json()["detail"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));

    let wrong = s
        .send(
            "GET",
            "/v1/agents",
            Some("Bearer remit_admin_guess"),
            None,
            "",
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.contains("invalid_token"));

    let basic = s
        .send(
            "GET",
            "/v1/agents",
            Some(&format!("Basic {}", s.token)),
            None,
            "",
        )
        .await;
    assert_eq!(basic.status, 401);
    assert!(basic.json()["detail"]
        .as_str()
        .unwrap()
        .contains("Bearer scheme"));

    let introspect = s
        .send(
            "POST",
            "/oauth/introspect",
            None,
            Some("application/x-www-form-urlencoded"),
            "token=x",
        )
        .await;
    assert_eq!(introspect.status, 401);

    let ok = s.get("/v1/agents").await;
    assert_eq!(ok.status, 200);
}

async fn malformed_and_oversized_bodies_get_precise_problems(s: Server) {
    let auth = s.bearer();
    let broken = s
        .send(
            "POST",
            "/v1/agents",
            Some(&auth),
            Some("application/json"),
            "{\"id\": ",
        )
        .await;
    assert_eq!(broken.status, 400, "{}", broken.body);
    assert!(broken.is_problem());
    assert_eq!(broken.json()["type"], "urn:remit:problem:malformed-body");

    let unknown = s
        .post(
            "/v1/agents",
            &json!({"id": "a", "owner": "o", "risk_tier": "low", "public_jwk": {}, "admin": true}),
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert!(
        unknown.json()["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `admin`"),
        "{}",
        unknown.body
    );

    let tier = s
        .post(
            "/v1/agents",
            &json!({"id": "a", "owner": "o", "risk_tier": "extreme", "public_jwk": {}}),
        )
        .await;
    assert_eq!(tier.status, 422);
    assert!(tier.json()["detail"].as_str().unwrap().contains("extreme"));

    let no_type = s.send("POST", "/v1/agents", Some(&auth), None, "{}").await;
    assert_eq!(no_type.status, 415);
    assert!(no_type.is_problem());

    let huge = format!("{{\"id\": \"{}\"}}", "x".repeat(70 * 1024));
    let big = s
        .send(
            "POST",
            "/v1/agents",
            Some(&auth),
            Some("application/json"),
            &huge,
        )
        .await;
    assert_eq!(big.status, 413, "{}", big.body);
    assert!(big.is_problem());

    let key = EcdsaP256Signer::generate().unwrap();
    let private = serde_json::to_value(key.to_private_jwk().unwrap()).unwrap();
    let leaked = s
        .post(
            "/v1/agents",
            &json!({"id": "a", "owner": "o", "risk_tier": "low", "public_jwk": private}),
        )
        .await;
    assert_eq!(leaked.status, 400);
    assert!(leaked.json()["detail"]
        .as_str()
        .unwrap()
        .contains("private key"));

    let bad_id = s
        .post(
            "/v1/agents",
            &json!({"id": "a b", "owner": "o", "risk_tier": "low", "public_jwk": key.public_jwk()}),
        )
        .await;
    assert_eq!(bad_id.status, 400);
    assert!(bad_id.json()["detail"]
        .as_str()
        .unwrap()
        .contains("agent id"));

    let nowhere = s.get("/v1/nothing").await;
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.is_problem());
    let method = s.send("DELETE", "/healthz", None, None, "").await;
    assert_eq!(method.status, 405);
    assert!(method.is_problem());
}

async fn public_endpoints_answer_without_credentials(s: Server) {
    let health = s.send("GET", "/healthz", None, None, "").await;
    assert_eq!(health.json()["status"], "ok");
    let ready = s.send("GET", "/readyz", None, None, "").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
    let jwks = s
        .send("GET", "/.well-known/jwks.json", None, None, "")
        .await;
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].get("d").is_none());
    assert!(keys[0]["kid"].is_string());
    let meta = s
        .send(
            "GET",
            "/.well-known/oauth-authorization-server",
            None,
            None,
            "",
        )
        .await
        .json();
    assert_eq!(meta["issuer"], format!("http://{}", s.addr));
    assert_eq!(
        meta["jwks_uri"],
        format!("http://{}/.well-known/jwks.json", s.addr)
    );
}

async fn life_of_a_remit(s: Server) {
    let planner = s.register("planner", "alice").await;
    let reader = s.register("reader", "alice").await;
    let root = s.issue("planner", "alice", &["fs.*"]).await;

    let info = s.introspect(&root).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["act"]["sub"], "planner");
    assert_eq!(
        info["cnf"]["jkt"],
        planner.public_jwk().thumbprint().as_str()
    );

    let chain = extend(&root, &planner, "reader", &reader, "fs.read");
    let info = s.introspect(&chain).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["act"]["sub"], "reader");
    assert_eq!(info["act"]["act"]["sub"], "planner");
    assert_eq!(info["links"], 2);

    let revoked = s.form("/oauth/revoke", &chain).await;
    assert_eq!(revoked.status, 200);
    assert_eq!(s.introspect(&chain).await, json!({"active": false}));
    // RFC 7009 revocation kills the presented remit's subtree, not its parent.
    assert_eq!(s.introspect(&root).await["active"], true);

    let listed = s.get("/v1/revocations").await.json();
    assert_eq!(listed["revocations"][0]["kind"], "subtree");
    assert_eq!(listed["revocations"][0]["value"], jti(&chain));
}

async fn forged_and_foreign_remits_are_inactive(s: Server) {
    let planner = s.register("planner", "alice").await;
    let root = s.issue("planner", "alice", &["fs.*"]).await;
    // Signed by a key that is not this server's issuer key.
    let stranger = EcdsaP256Signer::generate().unwrap();
    let grants = vec![Grant::tools(vec![Pattern::try_from("fs.*").unwrap()])];
    let foreign = remit_token::mint(
        &stranger,
        &remit_token::MintRequest::new("alice", "planner", planner.public_jwk().clone(), grants),
        now(),
    )
    .unwrap();
    assert_eq!(
        s.introspect(foreign.compact()).await,
        json!({"active": false})
    );
    // One altered signature character and the remit does not verify.
    let mut tampered = root.clone();
    tampered.pop();
    tampered.push(if root.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(s.introspect(&tampered).await["active"], false);
    assert_eq!(s.introspect("not-a-token").await["active"], false);
    // Revoking garbage through RFC 7009 is a quiet 200 that revokes nothing.
    assert_eq!(s.form("/oauth/revoke", "not-a-token").await.status, 200);
    assert_eq!(
        s.get("/v1/revocations").await.json()["revocations"],
        json!([])
    );
}

/// A server holding only the issuer's public JWKS (what `remit wrap`
/// holds) verifies remits the issuer key mints elsewhere, and mints none.
#[tokio::test]
async fn a_server_with_only_the_public_issuer_jwks_verifies_remits_but_mints_none() {
    let s = sqlite_with(Options {
        verify_only: true,
        ..Options::default()
    })
    .await;
    let planner = s.register("planner", "alice").await;
    let reply = s
        .post(
            "/v1/remits",
            &json!({"agent": "planner", "sub": "alice", "ttl_secs": 300,
                    "grants": [{"type": "remit_tool", "tools": ["fs.*"]}]}),
        )
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.json()["type"], "urn:remit:problem:no-issuer-key");
    assert!(reply.body.contains("cannot mint"), "{}", reply.body);

    let issuer = EcdsaP256Signer::from_jwk(&s.issuer).unwrap();
    let grants = vec![Grant::tools(vec![Pattern::try_from("fs.*").unwrap()])];
    let mut request =
        remit_token::MintRequest::new("alice", "planner", planner.public_jwk().clone(), grants);
    request.issuer = s.url();
    let minted = remit_token::mint(&issuer, &request, now()).unwrap();
    assert!(s.active(minted.compact()).await);
    let stranger = EcdsaP256Signer::generate().unwrap();
    let foreign = remit_token::mint(&stranger, &request, now()).unwrap();
    assert!(!s.active(foreign.compact()).await);
}

async fn every_revocation_class_makes_the_remit_inactive(s: Server) {
    let agent_key = s.register("worker", "carol").await;
    let _bobs = s.register("worker-b", "bob").await;
    for (kind, value) in [
        ("jti", None),
        ("subtree", None),
        ("sub", Some("bob")),
        ("kid", Some("ISSUER")),
        ("agent", Some("worker")),
    ] {
        let (sub, agent) = if kind == "sub" {
            ("bob", "worker-b")
        } else {
            ("carol", "worker")
        };
        let remit = s.issue(agent, sub, &["db.query"]).await;
        assert_eq!(s.introspect(&remit).await["active"], true, "{kind} before");
        let value = match value {
            None => jti(&remit),
            Some("ISSUER") => UnverifiedRemit::parse(&remit).unwrap().kid().to_owned(),
            Some(v) => v.to_owned(),
        };
        let reply = s.revoke(kind, &value).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(reply.json()["newly_revoked"], true);
        assert_eq!(
            s.introspect(&remit).await,
            json!({"active": false}),
            "{kind} after"
        );
        if kind == "kid" {
            // Everything the issuer key signed is dead; nothing more can be
            // tested with this server's key, so stop the loop here.
            let again = s.revoke(kind, &value).await;
            assert_eq!(again.status, 200);
            assert_eq!(again.json()["newly_revoked"], false);
            break;
        }
    }
    let _ = agent_key;
    // Tool revocations are recorded and block calls at the gateway; a remit
    // is still a valid token for its other tools.
    let tool = s.revoke("tool", "db.query").await;
    assert_eq!(tool.status, 201);
    let bad = s.revoke("everything", "x").await;
    assert_eq!(bad.status, 422);
    assert!(bad.json()["detail"]
        .as_str()
        .unwrap()
        .contains("everything"));
}

async fn agent_revocation_and_disable_refuse_new_remits(s: Server) {
    let planner = s.register("planner", "alice").await;
    let helper = s.register("helper", "alice").await;
    let root = s.issue("planner", "alice", &["fs.*"]).await;
    let chain = extend(&root, &planner, "helper", &helper, "fs.read");
    assert_eq!(s.introspect(&chain).await["active"], true);
    // Disabling the intermediate agent kills what was delegated through it.
    let disabled = s.post("/v1/agents/planner/disable", &json!({})).await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(disabled.json()["status"], "disabled");
    assert_eq!(s.introspect(&chain).await["active"], false);
    let refused = s
        .post("/v1/remits", &json!({"agent": "planner", "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}))
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.json()["detail"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    let unknown = s
        .post("/v1/remits", &json!({"agent": "ghost", "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}))
        .await;
    assert_eq!(unknown.status, 404);
    let s_rev = s.revoke("sub", "mallory").await;
    assert_eq!(s_rev.status, 201);
    let for_revoked_user = s
        .post("/v1/remits", &json!({"agent": "helper", "sub": "mallory", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}))
        .await;
    assert_eq!(for_revoked_user.status, 403);
    let no_grants = s
        .post(
            "/v1/remits",
            &json!({"agent": "helper", "sub": "alice", "grants": []}),
        )
        .await;
    assert_eq!(no_grants.status, 400);
    assert!(no_grants.json()["detail"]
        .as_str()
        .unwrap()
        .contains("grant"));
}

async fn subtree_revocation_kills_grandchildren_not_siblings(s: Server) {
    let planner = s.register("planner", "alice").await;
    let left = s.register("left", "alice").await;
    let grand = s.register("grand", "alice").await;
    let right = s.register("right", "alice").await;
    let root = s.issue("planner", "alice", &["fs.*"]).await;
    let left_chain = extend(&root, &planner, "left", &left, "fs.*");
    let grand_chain = extend(&left_chain, &left, "grand", &grand, "fs.read");
    let right_chain = extend(&root, &planner, "right", &right, "fs.*");
    for chain in [&root, &left_chain, &grand_chain, &right_chain] {
        assert_eq!(s.introspect(chain).await["active"], true);
    }
    let reply = s.revoke("subtree", &jti(&left_chain)).await;
    assert_eq!(reply.status, 201);
    assert_eq!(s.introspect(&left_chain).await["active"], false);
    assert_eq!(s.introspect(&grand_chain).await["active"], false);
    assert_eq!(s.introspect(&right_chain).await["active"], true);
    assert_eq!(s.introspect(&root).await["active"], true);
}

async fn servers_and_tools_are_pinned(s: Server) {
    let added = s
        .post(
            "/v1/servers",
            &json!({"id": "github", "url": "https://mcp.example/github", "clearance": "internal"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let dup = s
        .post(
            "/v1/servers",
            &json!({"id": "github", "url": "https://mcp.example/github", "clearance": "internal"}),
        )
        .await;
    assert_eq!(dup.status, 409);
    let bad_url = s
        .post(
            "/v1/servers",
            &json!({"id": "x", "url": "file:///etc", "clearance": "public"}),
        )
        .await;
    assert_eq!(bad_url.status, 400);
    let tool = s
        .post("/v1/servers/github/tools", &json!({"name": "create_issue", "risk": "medium", "clearance": "internal", "description": "Create an issue"}))
        .await;
    assert_eq!(tool.status, 201, "{}", tool.body);
    assert_eq!(
        tool.json()["description_sha256"],
        hex::encode(remit_server::setup::sha256(b"Create an issue"))
    );
    let both = s
        .post(
            "/v1/servers/github/tools",
            &json!({"name": "t2", "risk": "low", "clearance": "public"}),
        )
        .await;
    assert_eq!(both.status, 400);
    let orphan = s
        .post(
            "/v1/servers/nope/tools",
            &json!({"name": "t", "risk": "low", "clearance": "public", "description": "d"}),
        )
        .await;
    assert!(
        orphan.status == 404 || orphan.status == 400,
        "{}",
        orphan.body
    );
    let tools = s.get("/v1/servers/github/tools").await.json();
    assert_eq!(tools["tools"][0]["name"], "create_issue");
    let servers = s.get("/v1/servers").await.json();
    assert_eq!(servers["servers"][0]["clearance"], "internal");
    let agents = s.get("/v1/agents").await.json();
    assert_eq!(agents["agents"], json!([]));
}

/// Asserts that the last request added exactly one receipt, at `id`, of
/// `kind`, naming `action`; returns it.
async fn one_new_receipt(s: &Server, before: usize, id: &Value, kind: &str, action: &str) -> Value {
    let all = s.signed_receipts().await;
    assert_eq!(all.len(), before + 1, "exactly one receipt: {all:?}");
    let receipt = all[before]["receipt"].clone();
    assert_eq!(id, &json!(before), "receipt_id is the log index");
    assert_eq!(receipt["index"], json!(before));
    assert_eq!(receipt["kind"], kind, "{receipt}");
    if !action.is_empty() {
        assert_eq!(receipt["tool"], action, "{receipt}");
    }
    receipt
}

async fn every_mutation_yields_exactly_one_receipt_of_its_kind(s: Server) {
    // Receipts are admin-only; the checkpoint is public.
    let anonymous = s.send("GET", "/v1/receipts", None, None, "").await;
    assert_eq!(anonymous.status, 401);
    let bad_page = s.get("/v1/receipts?limit=0").await;
    assert_eq!(bad_page.status, 400);
    assert!(bad_page.is_problem());
    assert!(s.signed_receipts().await.is_empty());

    let key = EcdsaP256Signer::generate().unwrap();
    let r = s
        .post(
            "/v1/agents",
            &json!({"id": "planner", "public_jwk": key.public_jwk(), "owner": "alice", "risk_tier": "low"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let receipt = one_new_receipt(
        &s,
        0,
        &r.json()["receipt_id"],
        "register",
        "agent.register:planner",
    )
    .await;
    assert_eq!(receipt["actors"][1]["id"], "planner");

    let refused = s
        .post(
            "/v1/agents",
            &json!({"id": "planner", "public_jwk": key.public_jwk(), "owner": "alice", "risk_tier": "low"}),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        s.signed_receipts().await.len(),
        1,
        "a refused mutation records nothing"
    );

    let r = s
        .post(
            "/v1/servers",
            &json!({"id": "github", "url": "https://mcp.example/github", "clearance": "internal"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    one_new_receipt(
        &s,
        1,
        &r.json()["receipt_id"],
        "register",
        "server.add:github",
    )
    .await;
    let r = s
        .post("/v1/servers/github/tools", &json!({"name": "create_issue", "risk": "medium", "clearance": "internal", "description": "d"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    one_new_receipt(
        &s,
        2,
        &r.json()["receipt_id"],
        "register",
        "tool.add:github/create_issue",
    )
    .await;

    let r = s
        .post(
            "/v1/remits",
            &json!({"agent": "planner", "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["github.*"]}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = r.json()["remit"].as_str().unwrap().to_owned();
    let receipt = one_new_receipt(&s, 3, &r.json()["receipt_id"], "issue", "").await;
    assert_eq!(receipt["leaf_jti"], json!(jti(&first)));
    assert_eq!(receipt["actors"][0], json!({"id": "alice", "kind": "user"}));

    let r = s.revoke("jti", &jti(&first)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let action = format!("revoke.jti:{}", jti(&first));
    one_new_receipt(&s, 4, &r.json()["receipt_id"], "revoke", &action).await;
    let again = s.revoke("jti", &jti(&first)).await;
    assert_eq!(again.status, 200);
    assert!(again.json().get("receipt_id").is_none());
    assert_eq!(
        s.signed_receipts().await.len(),
        5,
        "a repeated revocation changes nothing"
    );

    for (n, (kind, value)) in [
        ("subtree", "j1"),
        ("sub", "bob"),
        ("tool", "github.delete"),
        ("kid", "k1"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s.revoke(kind, value).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let action = format!("revoke.{kind}:{value}");
        one_new_receipt(&s, 5 + n, &r.json()["receipt_id"], "revoke", &action).await;
    }

    let second = s.issue("planner", "alice", &["github.*"]).await;
    assert_eq!(s.signed_receipts().await.len(), 10);
    let r = s.form("/oauth/revoke", &second).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let action = format!("revoke.subtree:{}", jti(&second));
    one_new_receipt(&s, 10, &r.json()["receipt_id"], "revoke", &action).await;
    let r = s.form("/oauth/revoke", &second).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.signed_receipts().await.len(),
        11,
        "revoking an inactive token records nothing"
    );

    let r = s.post("/v1/agents/planner/disable", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    one_new_receipt(
        &s,
        11,
        &r.json()["receipt_id"],
        "revoke",
        "agent.disable:planner",
    )
    .await;

    // The log the server wrote passes an offline audit against the
    // published receipt key and checkpoint, covering every receipt.
    let head = s
        .send("GET", "/v1/checkpoints/latest", None, None, "")
        .await;
    assert_eq!(head.status, 200, "{}", head.body);
    let head = head.json();
    let jwks = remit_ledger::Jwks::from_json(&head["receipt_jwks"].to_string()).unwrap();
    let verifier =
        remit_ledger::NoteVerifier::from_vkey(head["note_verifier"].as_str().unwrap()).unwrap();
    let page = s.get("/v1/receipts?from=0&limit=1000").await.json();
    let leaves: Vec<String> = page["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    let report = remit_ledger::audit(
        &leaves,
        &jwks,
        head["checkpoint"].as_str().unwrap(),
        &verifier,
        None,
    )
    .unwrap();
    assert_eq!(report.size, 12);
    assert_eq!(
        report.unsealed, 0,
        "a checkpoint is written after every append"
    );
    // A page in the middle is the same bytes.
    let middle = s.get("/v1/receipts?from=4&limit=2").await.json();
    assert_eq!(middle["leaves"], json!(leaves[4..6]));
    assert_eq!(middle["size"], 12);
}

/// A receipt log whose disk is gone.
#[derive(Debug)]
struct BrokenLog;

impl ReceiptLog for BrokenLog {
    fn append(&self, _: remit_ledger::Event) -> Result<u64, ReceiptLogError> {
        Err(ReceiptLogError::Task("disk full".into()))
    }
    fn leaves(&self, _: u64, _: u64) -> Result<Vec<Vec<u8>>, ReceiptLogError> {
        Err(ReceiptLogError::Task("disk full".into()))
    }
    fn latest_checkpoint(&self) -> Result<String, ReceiptLogError> {
        Err(ReceiptLogError::Task("disk full".into()))
    }
    fn size(&self) -> u64 {
        0
    }
    fn receipt_jwks(&self) -> Value {
        json!({"keys": []})
    }
    fn note_verifier_key(&self) -> String {
        String::new()
    }
}

#[tokio::test]
async fn a_mutation_whose_receipt_cannot_be_recorded_never_answers_success() {
    let s = sqlite_with(Options {
        receipts: Some(Arc::new(BrokenLog)),
        ..Options::default()
    })
    .await;
    let key = EcdsaP256Signer::generate().unwrap();
    let r = s
        .post(
            "/v1/agents",
            &json!({"id": "planner", "public_jwk": key.public_jwk(), "owner": "alice", "risk_tier": "low"}),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.is_problem());
    assert!(r.body.contains("receipt"), "{}", r.body);
    let r = s
        .post(
            "/v1/remits",
            &json!({"agent": "planner", "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["x"]}]}),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        !r.body.contains("\"remit\""),
        "no token without its receipt: {}",
        r.body
    );
    let r = s.revoke("sub", "alice").await;
    assert_eq!(r.status, 500, "{}", r.body);
    let r = s
        .post(
            "/v1/servers",
            &json!({"id": "github", "url": "https://mcp.example/github", "clearance": "internal"}),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    let head = s
        .send("GET", "/v1/checkpoints/latest", None, None, "")
        .await;
    assert_eq!(head.status, 500);
    assert!(head.is_problem());
}

/// POSTs an MCP `tools/list` for server `x` with a DPoP chain and proof.
async fn mcp_with_proof(s: &Server, chain: &str, proof: &str) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    s.raw(format!(
        "POST /mcp/x HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         authorization: DPoP {chain}\r\ndpop: {proof}\r\ncontent-length: {}\r\n\r\n{body}",
        s.addr,
        body.len()
    ))
    .await
}

/// Two replicas on one PostgreSQL schema with one issuer key and one
/// public URL (behind one load balancer): each has its own in-memory replay
/// cache, so only the shared store can refuse a proof replayed at the other.
#[tokio::test]
async fn a_dpop_proof_accepted_by_one_replica_is_refused_by_another() {
    let Some((store, db)) = postgres_store().await else {
        return;
    };
    let issuer = EcdsaP256Signer::generate()
        .unwrap()
        .to_private_jwk()
        .unwrap();
    let public = "http://gateway.test";
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let options = Options {
            issuer: Some(EcdsaP256Signer::from_jwk(&issuer).unwrap()),
            public_url: Some(public.to_owned()),
            ..Options::default()
        };
        let dir = tempfile::tempdir().unwrap();
        replicas.push(start(store.clone(), db.clone(), dir, options).await);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let planner = a.register("planner", "alice").await;
    let chain = a.issue("planner", "alice", &["x/*"]).await;
    let proof = |()| {
        remit_token::pop::create_proof(
            &planner,
            &chain,
            remit_token::ProofRequest {
                htm: "POST",
                htu: "http://gateway.test/mcp/x",
            },
            remit_server::state::now(),
        )
        .unwrap()
    };
    let used = proof(());
    // Authenticated at A (then refused for the unregistered server, 404).
    let first = mcp_with_proof(a, &chain, &used).await;
    assert_eq!(first.status, 404, "{}", first.body);
    // The same proof at B: B never saw it, the shared store did.
    let replayed = mcp_with_proof(b, &chain, &used).await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(
        replayed.headers.contains("invalid_dpop_proof"),
        "{}",
        replayed.headers
    );
    assert!(
        replayed.body.contains("another replica"),
        "{}",
        replayed.body
    );
    // A fresh proof is accepted at B.
    let fresh = mcp_with_proof(b, &chain, &proof(())).await;
    assert_eq!(fresh.status, 404, "{}", fresh.body);
}

support::on_both_backends!(
    missing_or_wrong_admin_credentials_are_refused,
    malformed_and_oversized_bodies_get_precise_problems,
    public_endpoints_answer_without_credentials,
    life_of_a_remit,
    forged_and_foreign_remits_are_inactive,
    every_revocation_class_makes_the_remit_inactive,
    agent_revocation_and_disable_refuse_new_remits,
    subtree_revocation_kills_grandchildren_not_siblings,
    servers_and_tools_are_pinned,
    every_mutation_yields_exactly_one_receipt_of_its_kind,
);
