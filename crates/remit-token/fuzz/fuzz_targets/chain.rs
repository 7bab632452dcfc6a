//! Arbitrary bytes as a chain (`root~child~...`), parsed and verified
//! against a fixed JWKS: must never panic, hang or allocate without bound,
//! and must never accept a chain the fixed issuer did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remit_token::{UnverifiedChain, VerifiedChain};
use remit_token_fuzz::{jwks, options};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(chain) = UnverifiedChain::parse(text) {
        // Parsing keeps the exact bytes: re-serializing reparses the same.
        let again = UnverifiedChain::parse(&chain.to_text()).expect("round trip parses");
        assert_eq!(again.to_text(), chain.to_text());
    }
    if let Ok(verified) = VerifiedChain::verify_text(text, jwks(), &options()) {
        let authority = verified.authority();
        assert_eq!(authority.links, verified.links().len());
        assert_eq!(u64::from(authority.depth) + 1, authority.links as u64);
    }
});
