//! Token exchange (RFC 8693) and policy on issuance, against the real
//! application on 127.0.0.1:0, on SQLite and PostgreSQL (own schema).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;

use remit_server::oidc::{OidcIssuerConfig, OidcVerifier};
use remit_token::{
    b64, delegate, DelegateRequest, EcdsaP256Signer, Grant, Jwks, Pattern, Signer as _,
    UnverifiedChain, UnverifiedRemit, VerifiedChain, VerifyOptions,
};
use serde_json::{json, Value};
use support::{extend, jti, leaf, now, postgres_with, sqlite_with, Options, Reply, Server};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const REMIT_TYPE: &str = "urn:remit:params:oauth:token-type:remit";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

impl Server {
    /// An RFC 7523-style assertion signed by `key` for agent `id`.
    fn assertion(&self, id: &str, key: &EcdsaP256Signer, claims: Value) -> String {
        let mut body = json!({
            "iss": id, "sub": id, "aud": self.url(), "exp": now() + 60,
            "iat": now(), "jti": fresh(),
        });
        for (k, v) in claims.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        sign(key, &body)
    }

    /// Exchanges `subject` with a DPoP proof signed by its leaf holder's
    /// key (when the subject parses and the holder was registered here).
    async fn exchange(&self, subject: &str, actor: &str, tools: &[&str]) -> Reply {
        let proof = self.subject_proof(subject);
        self.exchange_with_proof(subject, actor, tools, proof.as_deref())
            .await
    }

    /// A DPoP proof for `POST /oauth/token` by `subject`'s leaf holder key.
    fn subject_proof(&self, subject: &str) -> Option<String> {
        let chain = UnverifiedChain::parse(subject).ok()?;
        let leaf = chain.leaf();
        let key = self.key_of(&leaf.claims().act.sub)?;
        let htu = format!("{}/oauth/token", self.url());
        let request = remit_token::ProofRequest {
            htm: "POST",
            htu: &htu,
        };
        Some(remit_token::pop::create_proof(&key, leaf.compact(), request, now()).unwrap())
    }

    async fn exchange_with_proof(
        &self,
        subject: &str,
        actor: &str,
        tools: &[&str],
        proof: Option<&str>,
    ) -> Reply {
        let details = json!([{"type": "remit_tool", "tools": tools}]).to_string();
        let params = [
            ("grant_type", GRANT),
            ("subject_token", subject),
            ("subject_token_type", REMIT_TYPE),
            ("actor_token", actor),
            ("actor_token_type", JWT_TYPE),
            ("authorization_details", &details),
        ];
        let headers: Vec<(&str, &str)> = proof.map(|p| ("dpop", p)).into_iter().collect();
        self.form_with("/oauth/token", &params, &headers).await
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Reply {
        self.form_with("/oauth/token", params, &[]).await
    }

    async fn form_with(
        &self,
        path: &str,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = params
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send_headers(
            "POST",
            path,
            headers,
            Some("application/x-www-form-urlencoded"),
            &body,
        )
        .await
    }

    async fn jwks(&self) -> Jwks {
        let reply = self
            .send(
                "GET",
                "/.well-known/jwks.json",
                None,
                Some("text/plain"),
                "",
            )
            .await;
        let doc = reply.json();
        let mut jwks = Jwks::new();
        for key in doc["keys"].as_array().unwrap() {
            let jwk = remit_token::EcPublicJwk::from_json(&key.to_string()).unwrap();
            jwks.insert(key["kid"].as_str().unwrap(), &jwk).unwrap();
        }
        jwks
    }
}

fn fresh() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

use support::{sign_jwt as sign, urlencode};

fn assert_oauth_error(reply: &Reply, error: &str, mentions: &str) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(mentions), "{description}");
    assert!(reply
        .headers
        .to_ascii_lowercase()
        .contains("cache-control: no-store"));
}

// ------------------------------------------------------------ negatives first

/// Issue 22 item 5: a copy of a chain cannot be rebound by exchange. The
/// exchange needs a DPoP proof signed by the subject leaf's holder key,
/// for this endpoint, used once.
async fn an_exchange_without_proof_of_the_subject_key_is_refused(s: Server) {
    let planner = s.register("planner", "alice").await;
    let reader = s.register("reader", "alice").await;
    let subject = s.issue("planner", "alice", &["fs.read"]).await;
    let htu = format!("{}/oauth/token", s.url());
    let leaf = support::leaf(&subject);
    let proof_by = |key: &EcdsaP256Signer, htu: &str| {
        let request = remit_token::ProofRequest { htm: "POST", htu };
        remit_token::pop::create_proof(key, leaf.compact(), request, now()).unwrap()
    };
    let cases = [
        (None, "exactly one DPoP header"),
        (Some(proof_by(&reader, &htu)), "holder key"),
        (
            Some(proof_by(&planner, &format!("{}/mcp/x", s.url()))),
            "htu",
        ),
    ];
    for (proof, mentions) in cases {
        let actor = s.assertion("reader", &reader, json!({}));
        let reply = s
            .exchange_with_proof(&subject, &actor, &["fs.read"], proof.as_deref())
            .await;
        assert_oauth_error(&reply, "invalid_dpop_proof", mentions);
    }
    // The right proof works once; replaying it is refused.
    let proof = proof_by(&planner, &htu);
    let actor = s.assertion("reader", &reader, json!({}));
    let ok = s
        .exchange_with_proof(&subject, &actor, &["fs.read"], Some(&proof))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let actor = s.assertion("reader", &reader, json!({}));
    let again = s
        .exchange_with_proof(&subject, &actor, &["fs.read"], Some(&proof))
        .await;
    assert_oauth_error(&again, "invalid_dpop_proof", "already used");
}

async fn an_exchange_wider_than_the_subject_is_refused(s: Server) {
    let _planner = s.register("planner", "alice").await;
    let reader = s.register("reader", "alice").await;
    let subject = s.issue("planner", "alice", &["fs.read"]).await;
    for tools in [&["fs.write"][..], &["fs.*"], &["fs.read", "db.query"]] {
        let actor = s.assertion("reader", &reader, json!({}));
        let reply = s.exchange(&subject, &actor, tools).await;
        assert_oauth_error(&reply, "invalid_authorization_details", "wider");
    }
    // Each refusal of an authenticated actor is a deny receipt.
    let denies = s
        .receipts()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "deny" && r["tool"] == "oauth.token_exchange")
        .count();
    assert_eq!(denies, 3);
}

async fn forged_replayed_or_loose_actor_assertions_are_refused(s: Server) {
    let _planner = s.register("planner", "alice").await;
    let reader = s.register("reader", "alice").await;
    let subject = s.issue("planner", "alice", &["fs.*"]).await;
    let stranger = EcdsaP256Signer::generate().unwrap();
    let cases = [
        (s.assertion("reader", &stranger, json!({})), "signature"),
        (
            s.assertion("ghost", &stranger, json!({})),
            "not a registered agent",
        ),
        (
            s.assertion("reader", &reader, json!({"sub": "planner"})),
            "iss and sub",
        ),
        (
            s.assertion("reader", &reader, json!({"aud": "http://elsewhere"})),
            "aud",
        ),
        (
            s.assertion("reader", &reader, json!({"exp": now() - 1})),
            "expired",
        ),
        (
            s.assertion("reader", &reader, json!({"exp": now() + 3600})),
            "short-lived",
        ),
        (s.assertion("reader", &reader, json!({"jti": null})), "jti"),
        (
            s.assertion("reader", &reader, json!({"scope": "admin"})),
            "unknown field",
        ),
        ("not-a-jwt".to_owned(), "compact"),
    ];
    for (actor, mentions) in cases {
        let reply = s.exchange(&subject, &actor, &["fs.read"]).await;
        assert_oauth_error(&reply, "invalid_grant", mentions);
    }
    // One assertion, used twice: the second is a replay.
    let actor = s.assertion("reader", &reader, json!({}));
    let first = s.exchange(&subject, &actor, &["fs.read"]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = s.exchange(&subject, &actor, &["fs.read"]).await;
    assert_oauth_error(&again, "invalid_grant", "replay");
}

async fn malformed_requests_get_rfc6749_errors(s: Server) {
    let reader = s.register("reader", "alice").await;
    let _planner = s.register("planner", "alice").await;
    let subject = s.issue("planner", "alice", &["fs.*"]).await;
    let actor = s.assertion("reader", &reader, json!({}));
    let reply = s
        .token_request(&[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(&reply, "unsupported_grant_type", "client_credentials");
    let reply = s.token_request(&[("grant_type", GRANT)]).await;
    assert_oauth_error(&reply, "invalid_request", "subject_token");
    let details = json!([{"type": "remit_tool", "tools": ["fs.read"]}]).to_string();
    let reply = s
        .token_request(&[
            ("grant_type", GRANT),
            ("subject_token", &subject),
            ("subject_token_type", REMIT_TYPE),
            ("actor_token", &actor),
            ("actor_token_type", JWT_TYPE),
            ("authorization_details", &details),
            ("audience", "someone-else"),
        ])
        .await;
    assert_oauth_error(&reply, "invalid_target", "someone-else");
    let reply = s.exchange(&subject, &actor, &[]).await;
    assert_oauth_error(&reply, "invalid_authorization_details", "");
    // A subject that does not verify, or is revoked, is an invalid grant.
    let actor = s.assertion("reader", &reader, json!({}));
    let reply = s.exchange("garbage", &actor, &["fs.read"]).await;
    assert_oauth_error(&reply, "invalid_grant", "subject_token");
    let r = s.revoke("jti", &jti(&subject)).await;
    assert_eq!(r.status, 201);
    let actor = s.assertion("reader", &reader, json!({}));
    let reply = s.exchange(&subject, &actor, &["fs.read"]).await;
    assert_oauth_error(&reply, "invalid_grant", "revoked");
}

async fn an_exchange_the_policy_escalates_is_refused(s: Server) {
    let _planner = s.register("planner", "alice").await;
    let bobs = s.register("bobs-agent", "bob").await;
    let subject = s.issue("planner", "alice", &["fs.*"]).await;
    let actor = s.assertion("bobs-agent", &bobs, json!({}));
    let reply = s.exchange(&subject, &actor, &["fs.read"]).await;
    assert_oauth_error(&reply, "invalid_grant", "policy");
    let body = reply.json();
    assert_eq!(body["remit_reason"], "policy-escalated");
    assert_eq!(body["policy_ids"], json!(["std-delegate-other-owner"]));
}

async fn issuance_the_policy_refuses_is_403_with_reasons_and_a_receipt(s: Server) {
    let _bobs = s.register("bobs-agent", "bob").await;
    let reply = s
        .post(
            "/v1/remits",
            &json!({"agent": "bobs-agent", "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply
        .headers
        .to_ascii_lowercase()
        .contains("application/problem+json"));
    let body = reply.json();
    assert_eq!(body["type"], "urn:remit:problem:policy-denied");
    assert!(body["policy_version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let receipts = s.receipts().await;
    let deny = &receipts[body["receipt_id"].as_u64().unwrap() as usize];
    assert_eq!(deny["kind"], "deny");
    assert_eq!(deny["decision"]["effect"], "deny");
    // A user the registry does not know is refused too (unknown principal).
    let reply = s
        .post(
            "/v1/remits",
            &json!({"agent": "bobs-agent", "sub": "mallory", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["reason"], "invalid-request");
    // The owner may: a newly registered agent is known to the policy at once,
    // and the remit carries the deciding policy version, signed.
    let reply = s
        .post(
            "/v1/remits",
            &json!({"agent": "bobs-agent", "sub": "bob", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let remit = leaf(reply.json()["remit"].as_str().unwrap());
    assert_eq!(
        remit.claims().policy.as_deref(),
        Some(body["policy_version"].as_str().unwrap())
    );
    let receipts = s.receipts().await;
    let issued = &receipts[reply.json()["receipt_id"].as_u64().unwrap() as usize];
    assert_eq!(issued["decision"]["effect"], "allow");
    assert_eq!(
        issued["decision"]["policy_ids"],
        json!(["std-issue-own-agent"])
    );
}

// ------------------------------------------------------------------ positive

async fn an_exchanged_remit_is_narrower_nested_and_verifies_offline(s: Server) {
    let planner = s.register("planner", "alice").await;
    let reader = s.register("reader", "alice").await;
    let helper = s.register("helper", "alice").await;
    let root = s.issue("planner", "alice", &["fs.*", "db.query"]).await;
    // The subject is a chain: planner delegated offline to helper.
    let subject = extend(&root, &planner, "helper", &helper, "fs.*");
    let actor = s.assertion("reader", &reader, json!({}));
    let reply = s.exchange(&subject, &actor, &["fs.read"]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["issued_token_type"], REMIT_TYPE);
    assert_eq!(body["token_type"], "N_A");
    let text = body["access_token"].as_str().unwrap();
    // Offline: the JWKS alone verifies it, and it holds exactly fs.read.
    let jwks = s.jwks().await;
    let mut options = VerifyOptions::new(now());
    options.audience = "remit".into();
    let chain = VerifiedChain::verify_text(text, &jwks, &options).unwrap();
    let leaf = chain.leaf_claims();
    assert_eq!(leaf.sub, "alice");
    assert_eq!(leaf.act.sub, "reader");
    assert_eq!(leaf.act.act.as_ref().unwrap().sub, "helper");
    assert_eq!(leaf.cnf.jkt, reader.public_jwk().thumbprint());
    assert!(leaf.exp <= leaf_of(&subject).exp);
    assert!(leaf.policy.as_deref().unwrap().starts_with("sha256:"));
    assert!(remit_token::authorize(&chain, "fs.read", &json!({})).is_ok());
    assert!(remit_token::authorize(&chain, "fs.write", &json!({})).is_err());
    assert!(remit_token::authorize(&chain, "db.query", &json!({})).is_err());
    assert!(s.active(text).await);
    // The actor holds the leaf key: it can delegate further offline.
    let more = delegate(
        &UnverifiedChain::parse(text).unwrap(),
        &reader,
        &DelegateRequest::new(
            "planner-2",
            EcdsaP256Signer::generate().unwrap().public_jwk().clone(),
            vec![Grant::tools(vec![Pattern::try_from("fs.read").unwrap()])],
        ),
        now(),
    );
    assert!(more.is_ok(), "{more:?}");
    // The exchange is a receipt naming both chains.
    let receipts = s.receipts().await;
    let r = &receipts[body["receipt_id"].as_u64().unwrap() as usize];
    assert_eq!(r["kind"], "delegate");
    assert_eq!(r["leaf_jti"], json!(leaf.jti));
    assert_eq!(
        r["tool"],
        json!(format!("oauth.token_exchange:{}", leaf_of(&subject).jti))
    );
    assert_eq!(
        r["decision"]["policy_ids"],
        json!(["std-delegate-same-owner"])
    );
    // The metadata advertises the endpoint.
    let meta = s
        .send(
            "GET",
            "/.well-known/oauth-authorization-server",
            None,
            Some("text/plain"),
            "",
        )
        .await
        .json();
    assert_eq!(meta["token_endpoint"], format!("{}/oauth/token", s.url()));
    assert_eq!(meta["grant_types_supported"], json!([GRANT]));
}

fn leaf_of(chain: &str) -> remit_token::RemitClaims {
    leaf(chain).claims().clone()
}

async fn revoking_the_subject_reaches_the_exchanged_remit(s: Server) {
    let _planner = s.register("planner", "alice").await;
    let reader = s.register("reader", "alice").await;
    let writer = s.register("writer", "alice").await;
    let sibling = s.issue("planner", "alice", &["fs.*"]).await;
    for kind in ["subtree", "oauth", "agent"] {
        let subject = s.issue("planner", "alice", &["fs.*"]).await;
        let actor = s.assertion("reader", &reader, json!({}));
        let reply = s.exchange(&subject, &actor, &["fs.*"]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let exchanged = reply.json()["access_token"].as_str().unwrap().to_owned();
        // Exchanged again from the exchanged remit: propagation is transitive.
        let actor = s.assertion("writer", &writer, json!({}));
        let reply = s.exchange(&exchanged, &actor, &["fs.read"]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let twice = reply.json()["access_token"].as_str().unwrap().to_owned();
        assert!(s.active(&exchanged).await && s.active(&twice).await);
        let reply = match kind {
            "subtree" => s.revoke("subtree", &jti(&subject)).await,
            "agent" => s.revoke("agent", "planner").await,
            _ => s.form("/oauth/revoke", &subject).await,
        };
        assert!(reply.status == 201 || reply.status == 200, "{}", reply.body);
        assert!(!s.active(&subject).await, "{kind}: subject");
        assert!(!s.active(&exchanged).await, "{kind}: exchanged");
        assert!(!s.active(&twice).await, "{kind}: exchanged twice");
        if kind == "agent" {
            // Agent revocation also killed the sibling; stop here.
            assert!(!s.active(&sibling).await);
            return;
        }
        assert!(s.active(&sibling).await, "{kind}: a sibling is untouched");
    }
}

/// planner's root remit delegated offline (signed by planner's key) to
/// helper, exchanged by reader, and exchanged again by writer.
struct Exchanged {
    subject: String,
    exchanged: String,
    twice: String,
    sibling: String,
}

async fn exchange_twice(s: &Server) -> Exchanged {
    let planner = s.register("planner", "alice").await;
    let helper = s.register("helper", "alice").await;
    let reader = s.register("reader", "alice").await;
    let writer = s.register("writer", "alice").await;
    let sibling = s.issue("planner", "alice", &["fs.*"]).await;
    let root = s.issue("planner", "alice", &["fs.*"]).await;
    let subject = extend(&root, &planner, "helper", &helper, "fs.*");
    let actor = s.assertion("reader", &reader, json!({}));
    let reply = s.exchange(&subject, &actor, &["fs.*"]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let exchanged = reply.json()["access_token"].as_str().unwrap().to_owned();
    let actor = s.assertion("writer", &writer, json!({}));
    let reply = s.exchange(&exchanged, &actor, &["fs.read"]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let twice = reply.json()["access_token"].as_str().unwrap().to_owned();
    for chain in [&subject, &exchanged, &twice, &sibling] {
        assert!(s.active(chain).await);
    }
    Exchanged {
        subject,
        exchanged,
        twice,
        sibling,
    }
}

impl Server {
    /// The gateway's verdict on `chain` as a bearer credential: 404 when it
    /// authenticates (no MCP server is registered), 401 when it does not.
    async fn gateway_status(&self, chain: &str) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
        self.send(
            "POST",
            "/mcp/nowhere",
            Some(&format!("Bearer {chain}")),
            Some("application/json"),
            &body,
        )
        .await
    }
}

async fn revoking_a_key_that_signed_a_subject_link_reaches_the_exchanged_remit(s: Server) {
    let e = exchange_twice(&s).await;
    // The second link of the subject was signed by planner's key.
    let kid = leaf(&e.subject).kid().to_owned();
    assert_eq!(
        kid,
        UnverifiedRemit::parse(e.sibling.as_str())
            .unwrap()
            .claims()
            .cnf
            .jkt
            .as_str(),
        "the child's kid is its parent holder's thumbprint"
    );
    assert_eq!(s.gateway_status(&e.exchanged).await.status, 404);
    let revokes_before = s
        .receipts()
        .await
        .iter()
        .filter(|r| r["kind"] == "revoke")
        .count();
    let reply = s.revoke("kid", &kid).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["propagated"], 2, "{}", reply.body);
    assert!(!s.active(&e.subject).await, "subject");
    assert!(!s.active(&e.exchanged).await, "exchanged");
    assert!(!s.active(&e.twice).await, "exchanged twice");
    // The gateway refuses it too, naming the revocation.
    for chain in [&e.exchanged, &e.twice] {
        let reply = s.gateway_status(chain).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(reply.body.contains("revoked"), "{}", reply.body);
    }
    // The sibling was signed by the issuer, not by planner's key.
    assert!(s.active(&e.sibling).await, "a sibling is untouched");
    assert_eq!(s.gateway_status(&e.sibling).await.status, 404);
    // One receipt for the kid, one per propagated subtree.
    let revokes = s
        .receipts()
        .await
        .iter()
        .filter(|r| r["kind"] == "revoke")
        .count();
    assert_eq!(revokes, revokes_before + 3);
}

async fn a_revocation_left_unpropagated_by_a_crash_is_repaired_at_start(s: Server) {
    let e = exchange_twice(&s).await;
    let subject_jti = leaf(&e.subject).claims().jti.clone();
    // What an older Remit left when it crashed between writing the
    // revocation and propagating it: the row, and nothing else.
    s.db.execute(&format!(
        "UPDATE revocation_epoch SET epoch = epoch + 1 WHERE id = 1; \
         INSERT INTO revocations (kind, value, epoch, reason, revoked_by, revoked_at) \
         SELECT 'subtree', '{subject_jti}', epoch, 'crashed', 'admin', 1 FROM revocation_epoch WHERE id = 1;"
    ))
    .await;
    // A process started now repairs it before it serves.
    let b = s.restart().await;
    assert!(!b.active(&e.subject).await, "subject");
    assert!(!b.active(&e.exchanged).await, "exchanged");
    assert!(!b.active(&e.twice).await, "exchanged twice");
    assert_eq!(b.gateway_status(&e.exchanged).await.status, 401);
    assert!(b.active(&e.sibling).await, "a sibling is untouched");
    let repaired: Vec<Value> = b
        .receipts()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "revoke")
        .collect();
    assert_eq!(repaired.len(), 2, "{repaired:?}");
    // A second start finds nothing left to repair.
    let c = s.restart().await;
    assert!(c.receipts().await.iter().all(|r| r["kind"] != "revoke"));
    assert!(!c.active(&e.exchanged).await);
}

// ---- OpenID Connect: ID tokens as subjects and as admin identities ----------

/// A test identity provider: OpenID discovery and a JWKS over real HTTP on
/// 127.0.0.1, with keys generated here. `fetches` counts JWKS reads.
struct Idp {
    issuer: String,
    keys: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
    rsa: RsaKey,
    ec: EcKey,
}

struct RsaKey {
    kid: String,
    pair: aws_lc_rs::rsa::KeyPair,
}

impl RsaKey {
    fn generate(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        Self {
            kid: kid.into(),
            pair,
        }
    }

    fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair as _;
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
               "n": b64::encode(&public.n), "e": b64::encode(&public.e)})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64::encode(sig))
    }
}

struct EcKey {
    kid: String,
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl EcKey {
    fn generate(kid: &str) -> Self {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        Self {
            kid: kid.into(),
            pair,
        }
    }

    fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair as _;
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
               "x": b64::encode(&point[1..33]), "y": b64::encode(&point[33..65])})
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64::encode(sig.as_ref()))
    }
}

const CLIENT_ID: &str = "remit-test-client";

impl Idp {
    async fn start() -> Self {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/realms/test", listener.local_addr().unwrap());
        let rsa = RsaKey::generate("rsa-1");
        let ec = EcKey::generate("ec-1");
        let keys = Arc::new(std::sync::Mutex::new(vec![rsa.jwk(), ec.jwk()]));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
        let (k, f) = (Arc::clone(&keys), Arc::clone(&fetches));
        let app = axum::Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/realms/test/keys",
                get(move || async move {
                    f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let keys = k.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            issuer,
            keys,
            fetches,
            rsa,
            ec,
        }
    }

    /// The verifier `remit serve` would build for this IdP: discovery,
    /// admin claim `groups` ∋ `remit-admins`, refetch on any unknown kid.
    fn verifier(&self) -> Arc<OidcVerifier> {
        let mut config = OidcIssuerConfig::new(self.issuer.clone(), CLIENT_ID);
        config.admin_claim = Some("groups".into());
        config.admin_value = Some("remit-admins".into());
        config.min_refresh_secs = 0;
        Arc::new(OidcVerifier::new(vec![config]).unwrap())
    }

    /// Claims of a valid ID token for `sub`, with `extra` merged (null removes).
    fn claims(&self, sub: &str, extra: Value) -> Value {
        let mut claims = json!({
            "iss": self.issuer, "sub": sub, "aud": CLIENT_ID,
            "iat": now(), "exp": now() + 300, "amr": ["pwd", "mfa"],
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn rs256(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.rsa.kid});
        self.rsa.sign(&header, claims)
    }

    fn fetched(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64::encode(tag.as_ref()))
}

impl Server {
    async fn admin_as(&self, bearer: &str) -> Reply {
        self.send(
            "GET",
            "/v1/agents",
            Some(&format!("Bearer {bearer}")),
            Some("application/json"),
            "",
        )
        .await
    }

    async fn exchange_id_token(&self, id_token: &str, actor: &str, tools: &[&str]) -> Reply {
        let details = json!([{"type": "remit_tool", "tools": tools}]).to_string();
        self.token_request(&[
            ("grant_type", GRANT),
            ("subject_token", id_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            ("actor_token", actor),
            ("actor_token_type", JWT_TYPE),
            ("authorization_details", &details),
        ])
        .await
    }
}

async fn forged_or_foreign_id_tokens_are_not_admins(s: Server, idp: Idp) {
    let admin = json!({"groups": ["remit-admins"]});
    let refused = |reply: &Reply, what: &str| {
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert!(reply.body.contains("ID token"), "{what}: {}", reply.body);
    };
    // Wrong issuer, signed with the real key.
    let token = idp.rs256(&idp.claims(
        "alice",
        json!({"iss": "http://127.0.0.1:1/other", "groups": ["remit-admins"]}),
    ));
    refused(&s.admin_as(&token).await, "wrong issuer");
    // Wrong audience.
    let token = idp.rs256(&idp.claims(
        "alice",
        json!({"aud": "another-client", "groups": ["remit-admins"]}),
    ));
    let reply = s.admin_as(&token).await;
    refused(&reply, "wrong audience");
    assert!(reply.body.contains("aud"), "{}", reply.body);
    // Expired beyond the skew.
    let token = idp.rs256(&idp.claims(
        "alice",
        json!({"exp": now() - 3600, "iat": now() - 7200, "groups": ["remit-admins"]}),
    ));
    let reply = s.admin_as(&token).await;
    refused(&reply, "expired");
    assert!(reply.body.contains("expired"), "{}", reply.body);
    // Not yet valid.
    let token = idp.rs256(&idp.claims(
        "alice",
        json!({"nbf": now() + 3600, "groups": ["remit-admins"]}),
    ));
    let reply = s.admin_as(&token).await;
    refused(&reply, "not yet valid");
    assert!(reply.body.contains("not valid yet"), "{}", reply.body);
    // Issued in the future.
    let token = idp.rs256(&idp.claims(
        "alice",
        json!({"iat": now() + 3600, "groups": ["remit-admins"]}),
    ));
    refused(&s.admin_as(&token).await, "iat in the future");
    // alg none, no signature.
    let claims = idp.claims("alice", admin.clone());
    let token = format!(
        "{}.{}.",
        b64::encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        b64::encode(claims.to_string())
    );
    refused(&s.admin_as(&token).await, "alg none");
    // HS256 keyed with the issuer's public key (algorithm confusion), as
    // the JWK's modulus and as its JSON text.
    let jwk = idp.rsa.jwk();
    for secret in [
        b64::decode(jwk["n"].as_str().unwrap()).unwrap(),
        jwk.to_string().into_bytes(),
    ] {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": idp.rsa.kid});
        let reply = s.admin_as(&hs256(&secret, &header, &claims)).await;
        refused(&reply, "HS256 with the public key");
        assert!(reply.body.contains("HS256"), "{}", reply.body);
    }
    // A kid the issuer does not publish: the keys are fetched again, then refused.
    let before = idp.fetched();
    let stranger = RsaKey::generate("rsa-unknown");
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-unknown"});
    let reply = s.admin_as(&stranger.sign(&header, &claims)).await;
    refused(&reply, "unknown kid");
    assert!(reply.body.contains("rsa-unknown"), "{}", reply.body);
    assert!(idp.fetched() > before, "an unknown kid refetches the JWKS");
    // A known kid with a forged signature (another key's).
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": idp.rsa.kid});
    refused(
        &s.admin_as(&stranger.sign(&header, &claims)).await,
        "forged signature",
    );
    // ES256 claimed for the RSA key's kid.
    let mut forged = idp.ec.sign(&claims);
    forged = forged.replacen(
        &b64::encode(json!({"alg": "ES256", "typ": "JWT", "kid": idp.ec.kid}).to_string()),
        &b64::encode(json!({"alg": "ES256", "typ": "JWT", "kid": idp.rsa.kid}).to_string()),
        1,
    );
    refused(&s.admin_as(&forged).await, "ES256 over an RSA kid");
    // Valid tokens without the admin role: authenticated, refused with 403
    // and a deny receipt naming them.
    for (who, extra) in [
        ("carol", json!({})),
        ("dave", json!({"groups": ["developers", "remit-admin"]})),
    ] {
        let token = idp.rs256(&idp.claims(who, extra));
        let reply = s.admin_as(&token).await;
        assert_eq!(reply.status, 403, "{who}: {}", reply.body);
        assert!(reply.body.contains("admin claim"), "{}", reply.body);
        let receipts = s.receipts().await;
        let last = receipts.last().unwrap();
        assert_eq!(last["kind"], "deny", "{last}");
        assert_eq!(last["actors"][0]["id"], who, "{last}");
        assert_eq!(last["tool"], "admin:GET /v1/agents", "{last}");
    }
    // Nothing above reached the admin API: no registration happened.
    assert_eq!(
        s.get("/v1/agents").await.json()["agents"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

async fn an_admin_identity_uses_the_admin_api_and_is_named_in_receipts(s: Server, idp: Idp) {
    let token = idp.rs256(&idp.claims("ops-lead", json!({"groups": ["dev", "remit-admins"]})));
    let key = EcdsaP256Signer::generate().unwrap();
    let reply = s
        .send(
            "POST",
            "/v1/agents",
            Some(&format!("Bearer {token}")),
            Some("application/json"),
            &json!({"id": "oidc-agent", "public_jwk": key.public_jwk(), "owner": "alice", "risk_tier": "low"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let receipts = s.receipts().await;
    let last = receipts.last().unwrap();
    assert_eq!(last["kind"], "register", "{last}");
    assert_eq!(
        last["actors"][0],
        json!({"id": "ops-lead", "kind": "user"}),
        "{last}"
    );
    // The admin token still works and is still recorded as `admin`.
    s.register("token-agent", "alice").await;
    let receipts = s.receipts().await;
    assert_eq!(receipts.last().unwrap()["actors"][0]["id"], "admin");
    // An ES256 ID token from the same issuer is accepted too.
    let es = idp
        .ec
        .sign(&idp.claims("ops-lead", json!({"groups": "remit-admins"})));
    assert_eq!(s.admin_as(&es).await.status, 200);
    // Key rotation: a new kid is fetched on first sight.
    let rotated = RsaKey::generate("rsa-2");
    idp.keys.lock().unwrap().push(rotated.jwk());
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-2"});
    let token = rotated.sign(
        &header,
        &idp.claims("ops-lead", json!({"groups": ["remit-admins"]})),
    );
    assert_eq!(s.admin_as(&token).await.status, 200);
}

async fn an_id_token_exchanges_for_a_root_remit_the_policy_allows(s: Server, idp: Idp) {
    let key = s.register("mail-bot", "alice").await;
    // Refusals first: a foreign issuer, an expired token, a user the
    // policy does not let issue to this agent, a malformed sub.
    let foreign = idp.rs256(&idp.claims("alice", json!({"iss": "http://127.0.0.1:1/other"})));
    let reply = s
        .exchange_id_token(
            &foreign,
            &s.assertion("mail-bot", &key, json!({})),
            &["mail.send"],
        )
        .await;
    assert_oauth_error(&reply, "invalid_grant", "not trusted");
    let expired =
        idp.rs256(&idp.claims("alice", json!({"exp": now() - 3600, "iat": now() - 7200})));
    let reply = s
        .exchange_id_token(
            &expired,
            &s.assertion("mail-bot", &key, json!({})),
            &["mail.send"],
        )
        .await;
    assert_oauth_error(&reply, "invalid_grant", "expired");
    let bob = idp.rs256(&idp.claims("bob", json!({})));
    let reply = s
        .exchange_id_token(
            &bob,
            &s.assertion("mail-bot", &key, json!({})),
            &["mail.send"],
        )
        .await;
    assert_oauth_error(&reply, "invalid_grant", "refused by policy");
    assert_eq!(reply.json()["remit_reason"], "policy-denied");
    let odd = idp.rs256(&idp.claims("alice smith", json!({})));
    let reply = s
        .exchange_id_token(
            &odd,
            &s.assertion("mail-bot", &key, json!({})),
            &["mail.send"],
        )
        .await;
    assert_oauth_error(&reply, "invalid_grant", "cannot name a Remit user");
    let receipts = s.receipts().await;
    assert!(receipts
        .iter()
        .rev()
        .take(4)
        .all(|r| r["kind"] == "deny" && r["actors"][0]["id"] == "mail-bot"));

    // The owner's ID token: a root remit for alice, held by the actor's key.
    let alice = idp.rs256(&idp.claims("alice", json!({"acr": "urn:example:mfa"})));
    let reply = s
        .exchange_id_token(
            &alice,
            &s.assertion("mail-bot", &key, json!({})),
            &["mail.send"],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["issued_token_type"], REMIT_TYPE);
    assert_eq!(body["sub"], "alice");
    let remit = body["access_token"].as_str().unwrap();
    assert!(!remit.contains('~'), "a single root link");
    let claims = leaf_of(remit);
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.act.sub, "mail-bot");
    assert_eq!(claims.acr.as_deref(), Some("urn:example:mfa"));
    assert_eq!(claims.amr, vec!["pwd".to_owned(), "mfa".to_owned()]);
    assert_eq!(claims.cnf.jkt, key.public_jwk().thumbprint());
    assert!(claims.exp <= now() + 300);
    let mut options = VerifyOptions::new(now());
    options.audience = "remit".into();
    VerifiedChain::verify_text(remit, &s.jwks().await, &options).unwrap();
    assert!(s.active(remit).await);
    let receipts = s.receipts().await;
    let last = receipts.last().unwrap();
    assert_eq!(last["kind"], "issue", "{last}");
    assert_eq!(last["actors"][0], json!({"id": "alice", "kind": "user"}));
    // Revoking the user kills it.
    let reply = s.revoke("sub", "alice").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(!s.active(remit).await);
    let again = idp.rs256(&idp.claims("alice", json!({})));
    let reply = s
        .exchange_id_token(
            &again,
            &s.assertion("mail-bot", &key, json!({})),
            &["mail.send"],
        )
        .await;
    assert_oauth_error(&reply, "invalid_grant", "revoked");
}

async fn an_admin_identity_decides_approvals_in_its_own_name(s: Server, idp: Idp) {
    s.register("bot", "alice").await;
    let later = now() + 600;
    let mut rows = String::new();
    for id in ["ap-1", "ap-2", "ap-3"] {
        rows.push_str(&format!(
            "INSERT INTO approvals (id, agent_id, remit_jti, tool, call_hash, summary, state, requested_at, expires_at) \
             VALUES ('{id}', 'bot', 'jti-{id}', 'files/delete', 'h', 'delete /etc', 'pending', 1, {later});"
        ));
    }
    s.db.execute(&rows).await;
    let admin = idp.rs256(&idp.claims("ops-lead", json!({"groups": ["remit-admins"]})));
    let decide = |path: &str, body: &str| {
        let path = path.to_owned();
        let body = body.to_owned();
        let admin = admin.clone();
        let s = &s;
        async move {
            s.send(
                "POST",
                &path,
                Some(&format!("Bearer {admin}")),
                Some("application/json"),
                &body,
            )
            .await
        }
    };
    // Negative first: an ID-token admin cannot record the decision as
    // someone else's, and nothing is decided.
    let reply = decide("/v1/approvals/ap-2/reject", r#"{"by": "someone-else"}"#).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("ops-lead"), "{}", reply.body);
    assert_eq!(s.get("/v1/approvals/ap-2").await.json()["state"], "pending");

    let reply = decide("/v1/approvals/ap-1/approve", "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["state"], "approved");
    assert_eq!(body["decided_by"], "ops-lead", "{body}");
    let receipts = s.receipts().await;
    let last = receipts.last().unwrap();
    assert_eq!(last["kind"], "approve", "{last}");
    assert_eq!(last["approval"]["approver"], "ops-lead", "{last}");
    assert_eq!(last["actors"][0]["id"], "ops-lead", "{last}");
    // Naming oneself is fine; a decision is final (409, not a 500).
    let reply = decide("/v1/approvals/ap-2/reject", r#"{"by": "ops-lead"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["decided_by"], "ops-lead");
    let reply = decide("/v1/approvals/ap-1/reject", "").await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(reply.headers.contains("application/problem+json"));
    // The admin token is still recorded as `admin`.
    let reply = s.post("/v1/approvals/ap-3/approve", &json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["decided_by"], "admin");
}

/// Server options trusting `idp` for admin identities.
fn oidc(idp: &Idp) -> Options {
    Options {
        oidc: idp.verifier(),
        ..Options::default()
    }
}

async fn with_idp(backend: &str) -> Option<(Server, Idp)> {
    let idp = Idp::start().await;
    let server = match backend {
        "sqlite" => Some(sqlite_with(oidc(&idp)).await),
        _ => postgres_with(oidc(&idp)).await,
    };
    server.map(|s| (s, idp))
}

macro_rules! with_an_idp_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod oidc_sqlite {
            $(#[tokio::test] async fn $name() {
                let (s, idp) = super::with_idp("sqlite").await.unwrap();
                super::$name(s, idp).await
            })*
        }
        mod oidc_postgres {
            $(#[tokio::test] async fn $name() {
                if let Some((s, idp)) = super::with_idp("postgres").await { super::$name(s, idp).await }
            })*
        }
    };
}

with_an_idp_on_both_backends!(
    forged_or_foreign_id_tokens_are_not_admins,
    an_admin_identity_uses_the_admin_api_and_is_named_in_receipts,
    an_id_token_exchanges_for_a_root_remit_the_policy_allows,
    an_admin_identity_decides_approvals_in_its_own_name,
);

support::on_both_backends!(
    an_exchange_without_proof_of_the_subject_key_is_refused,
    an_exchange_wider_than_the_subject_is_refused,
    forged_replayed_or_loose_actor_assertions_are_refused,
    malformed_requests_get_rfc6749_errors,
    an_exchange_the_policy_escalates_is_refused,
    issuance_the_policy_refuses_is_403_with_reasons_and_a_receipt,
    an_exchanged_remit_is_narrower_nested_and_verifies_offline,
    revoking_the_subject_reaches_the_exchanged_remit,
    revoking_a_key_that_signed_a_subject_link_reaches_the_exchanged_remit,
    a_revocation_left_unpropagated_by_a_crash_is_repaired_at_start,
);
