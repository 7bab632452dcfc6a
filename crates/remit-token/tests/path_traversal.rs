//! Path traversal through argument and resource constraints (issue 22):
//! every spelling of "step out of the granted directory" is refused with a
//! reason, through `authorize_call` on a verified chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use remit_token::{
    authorize_call, Authorization, AuthorizeError, Call, MintRequest, Signer as _, VerifiedChain,
};
use serde_json::{json, Value};

/// Values that leave `/files/` in some reading (filesystem, URL decoder,
/// Windows, NFKC), one spelling each.
const TRAVERSALS: &[&str] = &[
    "/files/../hr/x",
    "/files/./../hr/x",
    "/files//../hr/x",
    "/files/x/..",
    "/files/%2e%2e/hr/x",
    "/files/%2E%2e/hr/x",
    "/files/.%2e/hr/x",
    "/files/%2e./hr/x",
    "/files/%2fhr",
    "/files/..\\hr",
    "/files/\\..\\hr",
    "/files/x\0.txt",
    "/files/\u{ff0e}\u{ff0e}/hr/x",
    "/files\u{ff0f}..\u{ff0f}hr",
    "/files/\u{2025}/hr",
    "/files/%252e%252e/hr",
    "/files/.../hr",
];

fn check(
    chain: &VerifiedChain,
    tool: &str,
    resource: Option<&str>,
    args: &Value,
) -> Result<Authorization, AuthorizeError> {
    let call = Call {
        tool,
        resource,
        action: None,
        args,
    };
    authorize_call(chain, &call)
}

fn chain(grant: serde_json::Value) -> VerifiedChain {
    let (issuer, holder) = (key(), key());
    let req = MintRequest::new(
        "alice",
        "agent",
        holder.public_jwk().clone(),
        vec![common::grant(grant)],
    );
    let root = remit_token::mint(&issuer, &req, NOW).unwrap();
    VerifiedChain::verify_text(root.compact(), &jwks_for(&issuer), &opts()).unwrap()
}

#[test]
fn traversal_through_a_prefix_argument_is_refused() {
    let chain = chain(json!({"type": "remit_tool", "tools": ["files/*"],
        "args": {"path": {"prefix": "/files/"}}}));
    let allowed = json!({"path": "/files/reports//2026/./q1.txt"});
    let call = |args: &Value| check(&chain, "files/read_text_file", None, args);
    assert!(call(&allowed).is_ok());
    for value in TRAVERSALS {
        let args = json!({ "path": value });
        let err = call(&args).unwrap_err();
        assert!(
            matches!(err, AuthorizeError::ArgumentNotCanonical { ref arg, .. } if arg == "path"),
            "{value:?}: {err}"
        );
    }
    let sibling = json!({"path": "/files-secret/x"});
    let err = call(&sibling).unwrap_err();
    assert!(
        matches!(err, AuthorizeError::ArgumentRejected { .. }),
        "{err}"
    );
}

#[test]
fn traversal_through_a_glob_argument_is_refused() {
    let chain = chain(json!({"type": "remit_tool", "tools": ["files/*"],
        "args": {"path": {"glob": "/files/**"}}}));
    for value in TRAVERSALS {
        let args = json!({ "path": value });
        let err = check(&chain, "files/read", None, &args).unwrap_err();
        assert!(
            matches!(err, AuthorizeError::ArgumentNotCanonical { .. }),
            "{value:?}: {err}"
        );
    }
}

#[test]
fn traversal_through_a_resource_is_refused() {
    let chain = chain(json!({"type": "remit_tool", "tools": ["files/*"],
        "resources": ["/files/**", "file:///files/**"]}));
    let none = json!({});
    let call = |resource: &str| check(&chain, "files/read", Some(resource), &none);
    assert!(call("/files/a/b").is_ok());
    assert!(call("FILE:///files/a").is_ok());
    for value in TRAVERSALS {
        let err = call(value).unwrap_err();
        assert!(
            matches!(err, AuthorizeError::ResourceNotCanonical { .. }),
            "{value:?}: {err}"
        );
        let uri = format!("file://{value}");
        let err = call(&uri).unwrap_err();
        assert!(
            matches!(err, AuthorizeError::ResourceNotCanonical { .. }),
            "{uri:?}: {err}"
        );
    }
    let err = call("file:///files/%2e%2e/hr/x").unwrap_err();
    assert!(err.to_string().contains("percent-encodes"), "{err}");
}

#[test]
fn one_level_star_does_not_reach_deeper_or_across_servers() {
    let chain = chain(json!({"type": "remit_tool", "tools": ["evil/*"],
        "resources": ["/data/reports/*"]}));
    let none = json!({});
    let call = |tool: &str, resource: &str| check(&chain, tool, Some(resource), &none);
    assert!(call("evil/read", "/data/reports/x").is_ok());
    assert!(matches!(
        call("evil/admin/x", "/data/reports/x"),
        Err(AuthorizeError::ToolNotGranted(_))
    ));
    assert!(matches!(
        call("evil/read", "/data/reports/2026/x"),
        Err(AuthorizeError::ResourceNotGranted { .. })
    ));
    let everything = chain_for_star();
    assert!(check(&everything, "server/tool", None, &none).is_err());
    assert!(check(&everything, "plain", None, &none).is_ok());
}

fn chain_for_star() -> VerifiedChain {
    chain(json!({"type": "remit_tool", "tools": ["*"]}))
}
