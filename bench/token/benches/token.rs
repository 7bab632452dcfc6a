//! Remit token verification against its floor (raw ES256) and against two
//! other capability-token systems, side by side in one run.
//!
//! Every comparison verifies the same shape of authority: user `alice`,
//! agent `agent-1`, tool `read_file` on resources under `/data/`, narrowed
//! by one delegation to `/data/reports/`. Every "verify" starts from the
//! serialized bytes a gateway receives (parse + signature + rules), never
//! from a pre-parsed object. See `README.md` for the numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

/// A signing input the size of a typical remit (header + claims, ~700 B).
fn remit_sized_message() -> Vec<u8> {
    let mut m = Vec::with_capacity(720);
    while m.len() < 700 {
        m.extend_from_slice(b"eyJhbGciOiJFUzI1NiIsInR5cCI6InJlbWl0K2p3dCJ9.");
    }
    m
}

/// The floor: one ES256 verification, in both candidate crates.
fn es256_verify(c: &mut Criterion) {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let public = key.public_key().as_ref().to_vec();
    let msg = remit_sized_message();
    let sig = key.sign(&rng, &msg).unwrap().as_ref().to_vec();

    let aws_parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &public,
    )
    .unwrap();
    let aws_unparsed = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &public,
    );
    let ring_unparsed =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public);
    let seam =
        remit_token::VerifyingKey::from_jwk(&remit_token::EcPublicJwk::from_sec1(&public).unwrap())
            .unwrap();

    // Sanity: every path accepts the signature (and a flipped bit fails).
    aws_parsed.verify_sig(&msg, &sig).unwrap();
    ring_unparsed.verify(&msg, &sig).unwrap();
    let mut bad = sig.clone();
    bad[10] ^= 1;
    assert!(ring_unparsed.verify(&msg, &bad).is_err());
    assert!(seam.verify(&msg, &bad).is_err());

    let mut g = c.benchmark_group("es256_verify");
    g.bench_function("aws-lc-rs/parsed-key", |b| {
        b.iter(|| aws_parsed.verify_sig(black_box(&msg), black_box(&sig)))
    });
    g.bench_function("aws-lc-rs/unparsed-key", |b| {
        b.iter(|| aws_unparsed.verify(black_box(&msg), black_box(&sig)))
    });
    g.bench_function("ring/unparsed-key", |b| {
        b.iter(|| ring_unparsed.verify(black_box(&msg), black_box(&sig)))
    });
    g.bench_function("remit-seam/VerifyingKey", |b| {
        b.iter(|| seam.verify(black_box(&msg), black_box(&sig)))
    });
    g.finish();
}

mod remit {
    //! Remit: a root minted by an issuer key in a JWKS, then delegations
    //! each signed by the parent's holder key, narrowing the resources.

    use remit_token::pop::{create_proof, verify_proof};
    use remit_token::{
        authorize_call, delegate, mint, Call, ChainCache, DelegateRequest, EcdsaP256Signer, Grant,
        Jwks, MintRequest, Pattern, ProofRequest, Signer as _, UnverifiedChain, UnverifiedRemit,
        VerifiedChain, VerifyOptions,
    };
    use serde_json::{json, Value};

    /// Tokens are minted at this time and verified one second later.
    pub const MINTED: u64 = 1_767_225_600;
    pub const NOW: u64 = MINTED + 1;
    pub const HTU: &str = "https://gateway.example/mcp";

    pub struct Fixture {
        pub jwks: Jwks,
        pub opts: VerifyOptions,
        /// `root`, `root~1`, `root~1~2`, `root~1~2~3` as chain text.
        pub texts: Vec<String>,
        /// The depth-3 prefix, verified, and the link that extends it.
        pub prefix: VerifiedChain,
        pub last: UnverifiedRemit,
        /// A proof of possession for the two-link chain's leaf.
        pub proof: String,
        pub args: Value,
    }

    fn grant(resource: &str) -> Grant {
        let mut g = Grant::tools(vec![Pattern::try_from("read_file").unwrap()]);
        g.resources = Some(vec![Pattern::try_from(resource).unwrap()]);
        g
    }

    pub fn fixture() -> Fixture {
        let issuer = EcdsaP256Signer::generate().unwrap();
        let holders: Vec<EcdsaP256Signer> = (0..4)
            .map(|_| EcdsaP256Signer::generate().unwrap())
            .collect();
        let mut jwks = Jwks::new();
        jwks.insert(issuer.key_id(), issuer.public_jwk()).unwrap();

        let mut request = MintRequest::new(
            "alice",
            "agent-1",
            holders[0].public_jwk().clone(),
            vec![grant("/data/**")],
        );
        request.ttl_secs = 3600;
        request.max_depth = 4;
        let root = mint(&issuer, &request, MINTED).unwrap();
        let mut links = vec![root];
        let narrowed = [
            "/data/reports/**",
            "/data/reports/2026/*",
            "/data/reports/2026/q3*",
        ];
        for (i, resource) in narrowed.iter().enumerate() {
            let mut request = DelegateRequest::new(
                format!("agent-{}", i + 2),
                holders[i + 1].public_jwk().clone(),
                vec![grant(resource)],
            );
            request.ttl_secs = 600;
            let parent = UnverifiedChain::from_links(links.clone()).unwrap();
            let child = delegate(&parent, &holders[i], &request, MINTED).unwrap();
            links.push(child);
        }
        let texts: Vec<String> = (1..=4)
            .map(|n| {
                UnverifiedChain::from_links(links[..n].to_vec())
                    .unwrap()
                    .to_text()
            })
            .collect();
        let opts = VerifyOptions::new(NOW);
        let prefix = VerifiedChain::verify_text(&texts[2], &jwks, &opts).unwrap();
        let proof = create_proof(
            &holders[1],
            links[1].compact(),
            ProofRequest {
                htm: "POST",
                htu: HTU,
            },
            NOW,
        )
        .unwrap();
        Fixture {
            jwks,
            opts,
            texts,
            prefix,
            last: links[3].clone(),
            proof,
            args: json!({"path": "/data/reports/2026/q3.pdf"}),
        }
    }

    pub fn verify(f: &Fixture, text: &str) -> VerifiedChain {
        VerifiedChain::verify_text(text, &f.jwks, &f.opts).unwrap()
    }

    fn call(f: &Fixture) -> Call<'_> {
        Call {
            tool: "read_file",
            resource: Some("/data/reports/2026/q3.pdf"),
            action: None,
            args: &f.args,
        }
    }

    /// Verify the two-link chain and authorize the call (no PoP), the
    /// shape biscuit's authorizer has.
    pub fn verify_and_authorize(f: &Fixture) {
        let chain = verify(f, &f.texts[1]);
        authorize_call(&chain, &call(f)).unwrap();
    }

    /// The gateway's full check: chain, proof of possession, call.
    pub fn verify_pop_and_authorize(f: &Fixture) {
        let chain = verify(f, &f.texts[1]);
        let request = ProofRequest {
            htm: "POST",
            htu: HTU,
        };
        verify_proof(&f.proof, &chain, request, NOW, 60).unwrap();
        authorize_call(&chain, &call(f)).unwrap();
    }

    /// A call outside the narrowed resources must deny.
    pub fn denies_outside_prefix(f: &Fixture) -> bool {
        let chain = verify(f, &f.texts[1]);
        let outside = Call {
            resource: Some("/data/secrets/key.pem"),
            ..call(f)
        };
        authorize_call(&chain, &outside).is_err()
    }

    /// Only the new link: what a chain extending a cached prefix costs.
    pub fn extend(f: &Fixture) -> VerifiedChain {
        f.prefix.extend(f.last.clone(), &f.opts).unwrap()
    }

    /// A warm cache holding the two-link chain.
    pub fn warm_cache(f: &Fixture) -> ChainCache {
        let mut cache = ChainCache::new(1024);
        cache.verify(&f.texts[1], &f.jwks, &f.opts, 0).unwrap();
        cache
    }

    pub fn cached(f: &Fixture, cache: &mut ChainCache) {
        cache.verify(&f.texts[1], &f.jwks, &f.opts, 0).unwrap();
    }
}

mod biscuit {
    //! Biscuit 6: an authority block with the user/agent/tool facts, then
    //! attenuation blocks that narrow the resource prefix.

    use biscuit_auth::builder::Algorithm;
    use biscuit_auth::{macros::*, AuthorizerLimits, Biscuit, KeyPair, PublicKey};

    pub struct Fixture {
        pub root: PublicKey,
        /// Authority block only.
        pub one: Vec<u8>,
        /// Authority + one attenuation block.
        pub two: Vec<u8>,
        /// Authority + three attenuation blocks: a depth-4 chain.
        pub four: Vec<u8>,
    }

    pub fn fixture(alg: Algorithm) -> Fixture {
        let root = KeyPair::new_with_algorithm(alg);
        let authority = biscuit!(
            r#"
            user("alice");
            agent("agent-1");
            right("read_file", "/data/");
            check if time($t), $t <= 2100-01-01T00:00:00Z;
            "#
        )
        .build(&root)
        .unwrap();
        let one = authority.to_vec().unwrap();
        let narrowed = [
            "/data/reports/",
            "/data/reports/2026/",
            "/data/reports/2026/q3",
        ];
        let mut token = authority;
        let mut chain = Vec::new();
        for prefix in narrowed {
            token = token
                .append(block!(
                    r#"check if tool("read_file"), resource($r), $r.starts_with({prefix});"#,
                ))
                .unwrap();
            chain.push(token.to_vec().unwrap());
        }
        Fixture {
            root: root.public(),
            one,
            two: chain[0].clone(),
            four: chain[2].clone(),
        }
    }

    /// Biscuit's default run limit is 1 ms of Datalog; on a loaded machine
    /// that times out, so allow more (as biscuit's own benches do).
    fn limits() -> AuthorizerLimits {
        AuthorizerLimits {
            max_time: std::time::Duration::from_secs(10),
            ..Default::default()
        }
    }

    /// Parse + verify every block's signature.
    pub fn verify(bytes: &[u8], root: &PublicKey) -> Biscuit {
        Biscuit::from(bytes, root).unwrap()
    }

    /// Parse + verify + authorize one `read_file` call.
    pub fn verify_and_authorize(bytes: &[u8], root: &PublicKey) {
        let token = verify(bytes, root);
        let mut authorizer = authorizer!(
            r#"
            tool("read_file");
            resource("/data/reports/2026/q3.pdf");
            allow if user($u), tool($t), resource($r), right($t, $p), $r.starts_with($p);
            "#
        )
        .time()
        .build(&token)
        .unwrap();
        authorizer.authorize_with_limits(limits()).unwrap();
    }

    /// The same call on a resource outside the narrowed prefix must deny.
    pub fn denies_outside_prefix(bytes: &[u8], root: &PublicKey) -> bool {
        let token = verify(bytes, root);
        let mut authorizer = authorizer!(
            r#"
            tool("read_file");
            resource("/data/secrets/key.pem");
            allow if user($u), tool($t), resource($r), right($t, $p), $r.starts_with($p);
            "#
        )
        .time()
        .build(&token)
        .unwrap();
        authorizer.authorize_with_limits(limits()).is_err()
    }
}

mod tenuo_stack {
    //! Tenuo 0.3.5: a root warrant for `read_file` on `/data/*`, attenuated
    //! with a distinct holder key per link (its realistic topology).

    use std::collections::HashMap;
    use std::time::Duration;

    use tenuo::constraints::{ConstraintSet, ConstraintValue, Pattern};
    use tenuo::planes::Authorizer;
    use tenuo::warrant::Warrant;
    use tenuo::wire::{self, WarrantStack};
    use tenuo::{Signature, SigningKey};

    pub struct Fixture {
        pub authorizer: Authorizer,
        pub one: Vec<u8>,
        pub two: Vec<u8>,
        pub four: Vec<u8>,
        pub args: HashMap<String, ConstraintValue>,
        /// PoP by the holder of the two-link stack's leaf.
        pub pop: Signature,
    }

    fn constraints(pattern: &str) -> ConstraintSet {
        ConstraintSet::from_iter(vec![(
            "path".to_string(),
            Pattern::new(pattern).unwrap().into(),
        )])
    }

    pub fn fixture() -> Fixture {
        let keys: Vec<SigningKey> = (0..5).map(|_| SigningKey::generate()).collect();
        let root = Warrant::builder()
            .capability("read_file", constraints("/data/*"))
            .ttl(Duration::from_secs(3600))
            .holder(keys[1].public_key())
            .build(&keys[0])
            .unwrap();
        let patterns = [
            "/data/reports/*",
            "/data/reports/2026/*",
            "/data/reports/2026/q3*",
        ];
        let mut chain = vec![root];
        for (i, pattern) in patterns.iter().enumerate() {
            let parent = chain.last().unwrap().clone();
            let child = parent
                .attenuate()
                .capability("read_file", constraints(pattern))
                .holder(keys[i + 2].public_key())
                .build(&keys[i + 1])
                .unwrap();
            chain.push(child);
        }
        let stack = |n: usize| wire::encode_stack(&WarrantStack::new(chain[..n].to_vec())).unwrap();
        let mut args = HashMap::new();
        args.insert(
            "path".to_string(),
            ConstraintValue::String("/data/reports/2026/q3.pdf".to_string()),
        );
        // The two-link stack's leaf is held by keys[2].
        let pop = chain[1].sign(&keys[2], "read_file", &args).unwrap();
        Fixture {
            authorizer: Authorizer::new().with_trusted_root(keys[0].public_key()),
            one: stack(1),
            two: stack(2),
            four: stack(4),
            args,
            pop,
        }
    }

    /// Decode the wire stack + verify every link.
    pub fn verify(f: &Fixture, bytes: &[u8]) {
        let stack = wire::decode_stack(bytes).unwrap();
        f.authorizer.verify_chain(&stack.0).unwrap();
    }

    /// Decode + verify + authorize the call with its proof of possession.
    pub fn verify_and_authorize(f: &Fixture, bytes: &[u8]) {
        let stack = wire::decode_stack(bytes).unwrap();
        f.authorizer
            .check_chain(&stack.0, "read_file", &f.args, Some(&f.pop), &[])
            .unwrap();
    }
}

fn comparisons(c: &mut Criterion) {
    let rem = remit::fixture();
    let bis = biscuit::fixture(biscuit_auth::builder::Algorithm::Ed25519);
    let bis_p256 = biscuit::fixture(biscuit_auth::builder::Algorithm::Secp256r1);
    let ten = tenuo_stack::fixture();

    // Sanity before timing: the fixtures allow the call and deny outside it.
    assert!(remit::denies_outside_prefix(&rem));
    assert!(biscuit::denies_outside_prefix(&bis.two, &bis.root));
    assert_eq!(remit::verify(&rem, &rem.texts[3]).links().len(), 4);

    let mut g = c.benchmark_group("verify_one_link");
    g.bench_function("remit/es256", |b| {
        b.iter(|| remit::verify(&rem, black_box(&rem.texts[0])))
    });
    g.bench_function("remit/extend-cached-prefix", |b| {
        b.iter(|| remit::extend(black_box(&rem)))
    });
    g.bench_function("biscuit-6/ed25519", |b| {
        b.iter(|| biscuit::verify(black_box(&bis.one), &bis.root))
    });
    g.bench_function("biscuit-6/p256", |b| {
        b.iter(|| biscuit::verify(black_box(&bis_p256.one), &bis_p256.root))
    });
    g.bench_function("tenuo-0.3.5/ed25519", |b| {
        b.iter(|| tenuo_stack::verify(&ten, black_box(&ten.one)))
    });
    g.finish();

    let mut g = c.benchmark_group("verify_chain_depth4");
    g.bench_function("remit/es256", |b| {
        b.iter(|| remit::verify(&rem, black_box(&rem.texts[3])))
    });
    g.bench_function("biscuit-6/ed25519", |b| {
        b.iter(|| biscuit::verify(black_box(&bis.four), &bis.root))
    });
    g.bench_function("tenuo-0.3.5/ed25519", |b| {
        b.iter(|| tenuo_stack::verify(&ten, black_box(&ten.four)))
    });
    g.finish();

    let mut g = c.benchmark_group("verify_and_authorize");
    g.bench_function("remit/es256", |b| {
        b.iter(|| remit::verify_and_authorize(black_box(&rem)))
    });
    g.bench_function("remit/es256+pop", |b| {
        b.iter(|| remit::verify_pop_and_authorize(black_box(&rem)))
    });
    g.bench_function("biscuit-6/ed25519", |b| {
        b.iter(|| biscuit::verify_and_authorize(black_box(&bis.two), &bis.root))
    });
    // Tenuo's proof is valid for a wall-clock window: sign it just before.
    let ten_pop = tenuo_stack::fixture();
    g.bench_function("tenuo-0.3.5/ed25519+pop", |b| {
        b.iter(|| tenuo_stack::verify_and_authorize(&ten_pop, black_box(&ten_pop.two)))
    });
    g.finish();

    let mut g = c.benchmark_group("cached_reverify");
    let mut cache = remit::warm_cache(&rem);
    g.bench_function("remit/chain-cache-hit", |b| {
        b.iter(|| remit::cached(black_box(&rem), &mut cache))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = es256_verify, comparisons
}
criterion_main!(benches);
