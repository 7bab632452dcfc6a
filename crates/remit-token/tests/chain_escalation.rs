//! Delegation attacks: every way a child might try to hold more than its
//! parent gave it, each refused naming the link and rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use remit_token::{
    authorize, delegate, ChainError, DelegateRequest, IssueError, LinkError, Signer,
    UnverifiedRemit, VerifiedChain,
};
use serde_json::{json, Value};

struct Fixture {
    issuer: remit_token::EcdsaP256Signer,
    a: remit_token::EcdsaP256Signer,
    b: remit_token::EcdsaP256Signer,
    c: remit_token::EcdsaP256Signer,
    root: UnverifiedRemit,
    child: UnverifiedRemit,
}

fn fixture() -> Fixture {
    let (issuer, a, b, c) = (key(), key(), key(), key());
    let root = root(&issuer, &a);
    let child = child(&root, &a, &b, "reader");
    Fixture {
        issuer,
        a,
        b,
        c,
        root,
        child,
    }
}

impl Fixture {
    fn verify(&self, links: &[&str]) -> Result<VerifiedChain, ChainError> {
        VerifiedChain::verify_text(&links.join("~"), &jwks_for(&self.issuer), &opts())
    }

    /// The child's claims, mutated by `f`, re-signed by the parent holder.
    fn tampered_child(&self, f: impl FnOnce(&mut Value)) -> String {
        let mut claims = claims_json(&self.child);
        f(&mut claims);
        forge(&claims, self.a.thumbprint().as_str(), &self.a)
    }

    fn refused(&self, f: impl FnOnce(&mut Value)) -> LinkError {
        let child = self.tampered_child(f);
        match self.verify(&[self.root.compact(), &child]).unwrap_err() {
            ChainError::Link { index: 1, error } => error,
            other => panic!("expected link 1 to fail, got {other}"),
        }
    }
}

#[test]
fn refuses_widened_tools() {
    let f = fixture();
    let err = f.refused(|c| c["authorization_details"][0]["tools"] = json!(["*"]));
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
    let err = f.refused(|c| {
        c["authorization_details"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "remit_tool", "tools": ["shell.exec"]}))
    });
    assert_eq!(err, LinkError::GrantWidened { index: 1 });
}

#[test]
fn refuses_widened_resources_and_actions() {
    let f = fixture();
    let err = f.refused(|c| c["authorization_details"][0]["resources"] = json!(["/etc/*"]));
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
    let err = f.refused(|c| {
        c["authorization_details"][0]
            .as_object_mut()
            .unwrap()
            .remove("resources");
    });
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
    let err = f.refused(|c| c["authorization_details"][0]["actions"] = json!(["read", "delete"]));
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
}

#[test]
fn refuses_a_deeper_subtree_under_a_one_level_star() {
    // `*` never crosses `/`: a root over `/data/reports/*` cannot hand out
    // `/data/reports/2026/*`, nor `**`, nor a tool of a server `evil/admin`.
    let (issuer, a, b) = (key(), key(), key());
    let g = grant(json!({"type": "remit_tool", "tools": ["evil/*"],
        "resources": ["/data/reports/*"]}));
    let req = remit_token::MintRequest::new("alice", "planner", a.public_jwk().clone(), vec![g]);
    let root = remit_token::mint(&issuer, &req, NOW).unwrap();
    for (tools, resources) in [
        (json!(["evil/read"]), json!(["/data/reports/2026/*"])),
        (json!(["evil/read"]), json!(["/data/reports/**"])),
        (json!(["evil/admin/x"]), json!(["/data/reports/x"])),
        (json!(["evil/**"]), json!(["/data/reports/x"])),
    ] {
        let g = grant(json!({"type": "remit_tool", "tools": tools, "resources": resources}));
        let req = DelegateRequest::new("worker", b.public_jwk().clone(), vec![g]);
        let err = delegate(&single(&root), &a, &req, NOW).unwrap_err();
        assert!(
            matches!(err, IssueError::Rule(LinkError::GrantWidened { index: 0 })),
            "{tools} {resources}: {err}"
        );
    }
}

#[test]
fn refuses_a_child_whose_patterns_traverse_out() {
    let f = fixture();
    for resource in ["/tmp/a/../../etc/*", "/tmp/%2e%2e/etc/*", "/tmp/a\\..\\x"] {
        let err = f.refused(|c| c["authorization_details"][0]["resources"] = json!([resource]));
        assert!(matches!(err, LinkError::Malformed(_)), "{resource}: {err}");
    }
    let err = f.refused(|c| {
        c["authorization_details"][0]["args"]["path"] = json!({"prefix": "/tmp/a/../../"})
    });
    assert!(matches!(err, LinkError::Malformed(_)), "{err}");
}

#[test]
fn refuses_widened_argument_constraints() {
    let f = fixture();
    let err = f.refused(|c| c["authorization_details"][0]["args"]["path"] = json!({"prefix": "/"}));
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
    let err = f.refused(|c| {
        c["authorization_details"][0]["args"]["n"] = json!({"range": {"min": 0, "max": 1000}})
    });
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
    let err = f.refused(|c| {
        c["authorization_details"][0]["args"]
            .as_object_mut()
            .unwrap()
            .remove("path");
    });
    assert_eq!(err, LinkError::GrantWidened { index: 0 });
}

#[test]
fn refuses_extended_expiry() {
    let f = fixture();
    let parent_exp = f.root.claims().exp;
    let err = f.refused(|c| c["exp"] = json!(parent_exp + 1));
    assert_eq!(
        err,
        LinkError::ExpiryExtended {
            parent: parent_exp,
            child: parent_exp + 1
        }
    );
    let err = f.refused(|c| c["nbf"] = json!(NOW - 100));
    assert!(matches!(err, LinkError::NotBeforeEarlier { .. }));
}

#[test]
fn refuses_raised_class_steps_and_depth() {
    let f = fixture();
    let err = f.refused(|c| c["class"] = json!("RESTRICTED"));
    assert!(matches!(err, LinkError::ClassRaised { .. }));
    let err = f.refused(|c| c["max_steps"] = json!(11));
    assert!(matches!(err, LinkError::StepsRaised { .. }));
    let err = f.refused(|c| {
        c.as_object_mut().unwrap().remove("max_steps");
    });
    assert!(matches!(err, LinkError::StepsRaised { .. }));
    let err = f.refused(|c| c["max_depth"] = json!(9));
    assert!(matches!(err, LinkError::MaxDepthRaised { .. }));
}

#[test]
fn refuses_changed_subject_and_rewritten_approval() {
    let f = fixture();
    let err = f.refused(|c| c["sub"] = json!("mallory"));
    assert!(matches!(err, LinkError::SubjectChanged { .. }));
    let err = f.refused(|c| c["amr"] = json!(["step_up_totp"]));
    assert_eq!(err, LinkError::ApprovalChanged);
    let err = f.refused(|c| c["aud"] = json!("other"));
    assert_eq!(err, LinkError::AudienceChanged);
}

#[test]
fn refuses_skipped_link() {
    let f = fixture();
    let grandchild = child_of(&f.child, &f.b, &f.c, "summarizer");
    // root ~ grandchild: the grandchild names the child, not the root.
    let err = f
        .verify(&[f.root.compact(), grandchild.compact()])
        .unwrap_err();
    assert_eq!(err.link(), Some(1));
    assert!(matches!(
        err,
        ChainError::Link {
            error: LinkError::WrongSigningKey { .. } | LinkError::ParentHashMismatch,
            ..
        }
    ));
    assert!(f
        .verify(&[f.root.compact(), f.child.compact(), grandchild.compact()])
        .is_ok());
}

fn child_of(
    parent: &UnverifiedRemit,
    parent_holder: &remit_token::EcdsaP256Signer,
    holder: &remit_token::EcdsaP256Signer,
    agent: &str,
) -> UnverifiedRemit {
    let grants = parent.claims().authorization_details.clone();
    let req = DelegateRequest::new(agent, holder.public_jwk().clone(), grants);
    delegate(&single(parent), parent_holder, &req, NOW).unwrap()
}

#[test]
fn refuses_reparenting_under_another_chain() {
    let f = fixture();
    // A second root for the same holder key `a`, with its own jti.
    let other_root = root(&f.issuer, &f.a);
    let err = f
        .verify(&[other_root.compact(), f.child.compact()])
        .unwrap_err();
    assert_eq!(
        err,
        ChainError::Link {
            index: 1,
            error: LinkError::ParentHashMismatch
        }
    );
}

#[test]
fn refuses_spliced_link_from_another_chain() {
    let f = fixture();
    let other_root = root(&f.issuer, &f.a);
    let other_child = child(&other_root, &f.a, &f.b, "reader");
    let grandchild = child_of(&other_child, &f.b, &f.c, "summarizer");
    let err = f
        .verify(&[f.root.compact(), f.child.compact(), grandchild.compact()])
        .unwrap_err();
    assert_eq!(
        err,
        ChainError::Link {
            index: 2,
            error: LinkError::ParentHashMismatch
        }
    );
    // Re-signing the splice with the right key still names the wrong root.
    let mut claims = claims_json(&grandchild);
    claims["prf"] = json!(f.child.hash());
    let forged = forge(&claims, f.b.thumbprint().as_str(), &f.b);
    let err = f
        .verify(&[f.root.compact(), f.child.compact(), &forged])
        .unwrap_err();
    assert!(matches!(
        err,
        ChainError::Link {
            index: 2,
            error: LinkError::RootMismatch { .. }
        }
    ));
}

#[test]
fn refuses_child_signed_with_the_wrong_key() {
    let f = fixture();
    let claims = claims_json(&f.child);
    // Right kid, wrong key.
    let forged = forge(&claims, f.a.thumbprint().as_str(), &f.c);
    assert_eq!(
        f.verify(&[f.root.compact(), &forged]).unwrap_err(),
        ChainError::Link {
            index: 1,
            error: LinkError::BadSignature
        }
    );
    // Its own kid and key: not the parent's holder.
    let forged = forge(&claims, f.c.thumbprint().as_str(), &f.c);
    assert!(matches!(
        f.verify(&[f.root.compact(), &forged]).unwrap_err(),
        ChainError::Link {
            index: 1,
            error: LinkError::WrongSigningKey { .. }
        }
    ));
    // The library refuses to sign with a key that is not the holder's.
    let req = DelegateRequest::new(
        "x",
        f.c.public_jwk().clone(),
        f.child.claims().authorization_details.clone(),
    );
    assert!(matches!(
        delegate(&single(&f.root), &f.c, &req, NOW),
        Err(IssueError::NotHolder { .. })
    ));
}

#[test]
fn refuses_delegation_cycle() {
    let f = fixture();
    // b delegates back to the agent `planner` (a's agent name).
    let err = f.refused(|c| c["act"]["sub"] = json!("planner"));
    assert_eq!(err, LinkError::ActorCycle("planner".into()));
    // b's child bound back to key `a`.
    let req = DelegateRequest::new(
        "helper",
        f.a.public_jwk().clone(),
        f.child.claims().authorization_details.clone(),
    );
    let mut claims = {
        let honest = delegate(
            &single(&f.child),
            &f.b,
            &DelegateRequest {
                holder: f.c.public_jwk().clone(),
                ..req.clone()
            },
            NOW,
        )
        .unwrap();
        claims_json(&honest)
    };
    claims["cnf"] =
        serde_json::to_value(remit_token::Confirmation::for_key(f.a.public_jwk())).unwrap();
    let forged = forge(&claims, f.b.thumbprint().as_str(), &f.b);
    let two =
        remit_token::UnverifiedChain::from_links(vec![f.root.clone(), f.child.clone()]).unwrap();
    let err = f
        .verify(&[f.root.compact(), f.child.compact(), &forged])
        .unwrap_err();
    assert!(matches!(
        err,
        ChainError::Link {
            index: 2,
            error: LinkError::HolderKeyReused(_)
        }
    ));
    let result = delegate(&two, &f.b, &req, NOW);
    assert!(
        matches!(result, Err(IssueError::Rule(LinkError::HolderKeyReused(_)))),
        "{result:?}"
    );
}

#[test]
fn refuses_actor_not_nesting_parent() {
    let f = fixture();
    let err = f.refused(|c| c["act"] = json!({"sub": "reader"}));
    assert_eq!(err, LinkError::ActorNotNested);
}

#[test]
fn refuses_exceeding_max_depth() {
    let issuer = key();
    let keys: Vec<_> = (0..6).map(|_| key()).collect();
    let mut links = vec![root(&issuer, &keys[0])];
    for i in 1..=3 {
        let next = child_of(&links[i - 1], &keys[i - 1], &keys[i], &format!("agent{i}"));
        links.push(next);
    }
    let text = links
        .iter()
        .map(|l| l.compact())
        .collect::<Vec<_>>()
        .join("~");
    assert!(VerifiedChain::verify_text(&text, &jwks_for(&issuer), &opts()).is_ok());
    // Depth 4 > max_depth 3: the library refuses to sign it ...
    let req = DelegateRequest::new(
        "agent4",
        keys[4].public_jwk().clone(),
        links[3].claims().authorization_details.clone(),
    );
    assert!(matches!(
        delegate(
            &remit_token::UnverifiedChain::from_links(links.clone()).unwrap(),
            &keys[3],
            &req,
            NOW
        ),
        Err(IssueError::Rule(LinkError::DepthExceeded {
            depth: 4,
            max_depth: 3
        }))
    ));
    // ... and a hand-forged one is refused by verification.
    let mut claims = claims_json(&links[3]);
    claims["depth"] = json!(4);
    claims["prf"] = json!(links[3].hash());
    claims["jti"] = json!("forged-jti");
    claims["iss"] = json!("agent3");
    claims["act"] = json!({"sub": "agent4", "act": claims["act"].clone()});
    claims["cnf"] =
        serde_json::to_value(remit_token::Confirmation::for_key(keys[4].public_jwk())).unwrap();
    let forged = forge(&claims, keys[3].thumbprint().as_str(), &keys[3]);
    let err = VerifiedChain::verify_text(&format!("{text}~{forged}"), &jwks_for(&issuer), &opts())
        .unwrap_err();
    assert_eq!(
        err,
        ChainError::Link {
            index: 4,
            error: LinkError::DepthExceeded {
                depth: 4,
                max_depth: 3
            }
        }
    );
    // A forged depth that skips a number is refused too.
    let f = fixture();
    let err = f.refused(|c| c["depth"] = json!(2));
    assert!(matches!(err, LinkError::DepthMismatch { .. }));
}

#[test]
fn refuses_child_presented_as_root() {
    let f = fixture();
    let err =
        VerifiedChain::verify_text(f.child.compact(), &jwks_for(&f.issuer), &opts()).unwrap_err();
    assert_eq!(err.link(), Some(0));
    assert_eq!(err.rule(), "unknown_issuer_key");
}

#[test]
fn effective_authority_is_the_narrowed_leaf() {
    let f = fixture();
    let chain = f.verify(&[f.root.compact(), f.child.compact()]).unwrap();
    let a = chain.authority();
    assert_eq!(a.actors, vec!["reader".to_owned(), "planner".to_owned()]);
    assert_eq!(a.sub, "alice");
    assert!(a.exp <= f.root.claims().exp);
    assert_eq!(chain.jtis().count(), 2);
    assert_eq!(
        chain.agents().collect::<Vec<_>>(),
        vec!["planner", "reader"]
    );
    assert_eq!(
        chain.holder_keys().cloned().collect::<Vec<_>>(),
        vec![f.a.thumbprint(), f.b.thumbprint()]
    );
    assert_eq!(chain.issuer_kid(), f.issuer.key_id());
    // The root could read /etc through fs.write; the child cannot.
    let ok = json!({"path": "/tmp/a/x", "n": 3});
    let call = remit_token::Call {
        tool: "fs.read",
        resource: Some("/tmp/a/x"),
        action: Some("read"),
        args: &ok,
    };
    assert!(remit_token::authorize_call(&chain, &call).is_ok());
    let denied = [
        (
            "fs.write",
            "/tmp/a/x",
            "read",
            json!({"path": "/tmp/a/x", "n": 3}),
        ),
        (
            "fs.read",
            "/tmp/b",
            "read",
            json!({"path": "/tmp/a/x", "n": 3}),
        ),
        (
            "fs.read",
            "/tmp/a/x",
            "write",
            json!({"path": "/tmp/a/x", "n": 3}),
        ),
        (
            "fs.read",
            "/tmp/a/x",
            "read",
            json!({"path": "/tmp/b/x", "n": 3}),
        ),
        (
            "fs.read",
            "/tmp/a/x",
            "read",
            json!({"path": "/tmp/a/x", "n": 11}),
        ),
        ("fs.read", "/tmp/a/x", "read", json!({"path": "/tmp/a/x"})),
    ];
    for (tool, resource, action, args) in denied {
        let call = remit_token::Call {
            tool,
            resource: Some(resource),
            action: Some(action),
            args: &args,
        };
        assert!(
            remit_token::authorize_call(&chain, &call).is_err(),
            "{tool} {resource} {action} {args}"
        );
    }
    assert!(authorize(&chain, "fs.read", &json!([1])).is_err());
}
