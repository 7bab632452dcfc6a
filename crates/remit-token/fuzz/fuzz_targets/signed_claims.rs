//! Arbitrary header and claims bytes, validly signed by the fixed issuer:
//! the signature passes, so the fuzzer reaches header checks (`alg`, `crit`,
//! `jku`, ...), strict JSON (duplicate members) and the claim rules. Input:
//! `header 0xFF payload`; with no 0xFF the header is the honest one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remit_token::VerifiedChain;
use remit_token_fuzz::{jwks, options, sign_raw};

const HONEST_HEADER: &[u8] = br#"{"alg":"ES256","typ":"remit+jwt","kid":"fuzz-issuer"}"#;

fuzz_target!(|data: &[u8]| {
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (HONEST_HEADER, data),
    };
    let compact = sign_raw(header, payload);
    if let Ok(verified) = VerifiedChain::verify_text(&compact, jwks(), &options()) {
        // A single link verifies only as a root.
        assert_eq!(verified.authority().depth, 0);
    }
});
