//! Fixed keys, key set and clock shared by the `remit-token` fuzz targets
//! and the seed generator (`cargo run --example make_seeds`).
//!
//! The keys are throwaway test keys, published here on purpose: a fuzz
//! target needs a fixed JWKS so that a seed chain signed today still
//! verifies on every later run.

use std::sync::OnceLock;

use remit_token::{b64, EcdsaP256Signer, Jwks, PrivateJwk, Signer, VerifyOptions};

/// The clock every target verifies at (2026-01-01T00:00:00Z).
pub const NOW: u64 = 1_767_225_600;

/// `kid` of the issuer key in [`jwks`].
pub const ISSUER_KID: &str = "fuzz-issuer";

const ISSUER: &str = r#"{"kty":"EC","crv":"P-256","kid":"fuzz-issuer","x":"XBigone6KkV35DasOx3fFvvSqKEnJY1juOfLGcGcz2w","y":"v32a0zml5OLHUMNTnHJxbqGiJgXchOUR2ytBhl-c8PQ","d":"Dv9qxyi6I7amwEIDC-wQx1deSwD1A3bvQZT9J0oicVw"}"#;
const AGENT: &str = r#"{"kty":"EC","crv":"P-256","x":"PWN2_F64ykx4H-5Ynd68dUXQxrdPBIUProSaTPK2dPA","y":"1MqUqA8IiK5VJNIC9zLTNfnfgDlzKVQ-cXsWhC_Pna8","d":"OpkzFIsA1mDQfEu5PVSaljLs3z_D7XlRpt4roB1I67U"}"#;
const SUB_AGENT: &str = r#"{"kty":"EC","crv":"P-256","x":"LBmRSJlqz2ILA4ufuxnRlzwaRjMjvH8p3-LHdg8FBoo","y":"Kut64Kdp8RERXgj4vjlSkQhr-7m0Y5LoE4BzvceW5yQ","d":"kZhKNMksYdX_PoM1p7m7YH7n7H01t1ysolf-m2r-uPc"}"#;

fn load(json: &str) -> EcdsaP256Signer {
    let jwk = PrivateJwk::from_json(json).expect("fixed fuzz key parses");
    EcdsaP256Signer::from_jwk(&jwk).expect("fixed fuzz key is a valid P-256 key")
}

/// The issuer key (signs roots).
pub fn issuer() -> &'static EcdsaP256Signer {
    static KEY: OnceLock<EcdsaP256Signer> = OnceLock::new();
    KEY.get_or_init(|| load(ISSUER))
}

/// The root remit's holder key (signs the first delegation).
pub fn agent() -> &'static EcdsaP256Signer {
    static KEY: OnceLock<EcdsaP256Signer> = OnceLock::new();
    KEY.get_or_init(|| load(AGENT))
}

/// The delegated holder key.
pub fn sub_agent() -> &'static EcdsaP256Signer {
    static KEY: OnceLock<EcdsaP256Signer> = OnceLock::new();
    KEY.get_or_init(|| load(SUB_AGENT))
}

/// The key set holding only [`issuer`]'s public key.
pub fn jwks() -> &'static Jwks {
    static SET: OnceLock<Jwks> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = Jwks::new();
        set.insert(ISSUER_KID, issuer().public_jwk())
            .expect("issuer key enters the set");
        set
    })
}

/// Verification options at [`NOW`].
pub fn options() -> VerifyOptions {
    VerifyOptions::new(NOW)
}

/// A compact JWS over arbitrary header and payload bytes, signed by the
/// issuer key: lets the fuzzer past the signature into header and claim
/// parsing and the chain rules.
pub fn sign_raw(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let sig = issuer().sign(input.as_bytes()).expect("in-process signing");
    format!("{input}.{}", b64::encode(sig))
}
