//! Writes the seed corpus under `seeds/`: valid chains (depth 1 to 3) signed
//! by the fixed fuzz keys at the fixed fuzz clock, and their root claims for
//! `signed_claims`. Run from this directory:
//! `cargo run --example make_seeds`.

use std::fs;
use std::path::Path;

use remit_token::{
    delegate, mint, DelegateRequest, Grant, MintRequest, Pattern, Signer as _, UnverifiedChain,
    VerifiedChain,
};
use remit_token_fuzz::{agent, issuer, jwks, options, sub_agent, NOW};

fn grant(tool: &str, resource: &str) -> Grant {
    let mut g = Grant::tools(vec![Pattern::try_from(tool).expect("pattern")]);
    g.resources = Some(vec![Pattern::try_from(resource).expect("pattern")]);
    g
}

fn main() {
    let mut request = MintRequest::new(
        "alice",
        "agent-1",
        agent().public_jwk().clone(),
        vec![grant("read_*", "/data/**"), grant("search", "*")],
    );
    request.ttl_secs = 3600;
    request.max_steps = Some(10);
    request.amr = vec!["click".into()];
    let root = mint(issuer(), &request, NOW).expect("mint");
    let one = UnverifiedChain::from_links(vec![root.clone()]).expect("chain");

    let child = delegate(
        &one,
        agent(),
        &DelegateRequest::new(
            "agent-2",
            sub_agent().public_jwk().clone(),
            vec![grant("read_file", "/data/reports/*")],
        ),
        NOW,
    )
    .expect("delegate");
    let two = UnverifiedChain::from_links(vec![root.clone(), child.clone()]).expect("chain");

    let grandchild = delegate(
        &two,
        sub_agent(),
        &DelegateRequest::new(
            "agent-3",
            agent().public_jwk().clone(),
            vec![grant("read_file", "/data/reports/q3*")],
        ),
        NOW,
    );
    let dir = Path::new("seeds/chain");
    fs::create_dir_all(dir).expect("mkdir");
    let mut chains = vec![("root", one.to_text()), ("depth2", two.to_text())];
    // A holder key reappearing is a cycle the verifier refuses: still a
    // useful seed, when delegate lets it be built at all.
    if let Ok(gc) = grandchild {
        let three = UnverifiedChain::from_links(vec![root.clone(), child, gc]).expect("chain");
        chains.push(("depth3-cycle", three.to_text()));
    }
    for (name, text) in &chains {
        let verified = VerifiedChain::verify_text(text, jwks(), &options());
        println!(
            "{name}: {}",
            if verified.is_ok() {
                "verifies"
            } else {
                "refused"
            }
        );
        fs::write(dir.join(name), text).expect("write seed");
    }

    let dir = Path::new("seeds/signed_claims");
    fs::create_dir_all(dir).expect("mkdir");
    let claims = serde_json::to_vec(root.claims()).expect("claims json");
    fs::write(dir.join("root-claims"), &claims).expect("write seed");
    let mut with_header = br#"{"alg":"ES256","typ":"remit+jwt","kid":"fuzz-issuer"}"#.to_vec();
    with_header.push(0xFF);
    with_header.extend_from_slice(&claims);
    fs::write(dir.join("root-header-and-claims"), with_header).expect("write seed");
}
