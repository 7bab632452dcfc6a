//! Wycheproof conformance: Google's/C2SP's edge-case vectors run against the
//! ES256 seam every remit, chain link and proof verifies through.
//!
//! Vectors: `ecdsa_secp256r1_sha256_p1363_test.json` (IEEE P1363, i.e. the
//! 64-byte `r || s` form JWS uses), as shipped by the `wycheproof` crate
//! (Apache-2.0). Each key goes through the path a real key takes: SEC1
//! point → [`EcPublicJwk`] → [`VerifyingKey::from_jwk`] (curve check) →
//! [`VerifyingKey::verify`].
//!
//! Expected results: `valid` must verify, `invalid` must be refused.
//! `acceptable` (a signature the spec allows a verifier to take or refuse
//! for policy reasons) may go either way; this file has none, and
//! [`every_vector_gives_its_expected_result`] counts them so a vector set
//! that introduces some is noticed and documented here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_token::{EcPublicJwk, VerifyingKey};
use wycheproof::ecdsa::{TestFlag, TestName, TestSet};
use wycheproof::TestResult;

/// One vector's outcome under our verifier.
struct Outcome {
    tc_id: usize,
    comment: String,
    flags: Vec<TestFlag>,
    expected: TestResult,
    accepted: bool,
}

/// Runs every vector of the P-256/SHA-256/P1363 set through `VerifyingKey`.
fn run_all() -> Vec<Outcome> {
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).expect("vector set loads");
    let mut out = Vec::new();
    for group in set.test_groups {
        // A key our JWK layer refuses must only carry vectors that are
        // expected to fail (fail closed); P-256 groups all use valid keys.
        let key = EcPublicJwk::from_sec1(&group.key.key)
            .ok()
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk).ok());
        for test in group.tests {
            let accepted = match &key {
                Some(key) => key.verify(&test.msg, &test.sig).is_ok(),
                None => false,
            };
            out.push(Outcome {
                tc_id: test.tc_id,
                comment: test.comment,
                flags: test.flags,
                expected: test.result,
                accepted,
            });
        }
    }
    out
}

fn mismatches<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Vec<String> {
    outcomes
        .filter(|o| match o.expected {
            TestResult::Valid => !o.accepted,
            TestResult::Invalid => o.accepted,
            TestResult::Acceptable => false,
        })
        .map(|o| {
            format!(
                "tcId {} ({}; {:?}): expected {:?}, verifier {}",
                o.tc_id,
                o.comment,
                o.flags,
                o.expected,
                if o.accepted { "accepted" } else { "refused" }
            )
        })
        .collect()
}

/// The vectors flagged `flag`, which must be present (else the filter is
/// testing nothing).
fn flagged(all: &[Outcome], flag: TestFlag) -> Vec<&Outcome> {
    let picked: Vec<&Outcome> = all.iter().filter(|o| o.flags.contains(&flag)).collect();
    assert!(!picked.is_empty(), "no vectors flagged {flag:?}");
    picked
}

#[test]
fn refuses_psychic_signatures_cve_2022_21449() {
    // r or s = 0, r or s = n and friends: the Java bug accepted (0, 0).
    let all = run_all();
    let picked = flagged(&all, TestFlag::InvalidSignature);
    assert!(picked.iter().all(|o| o.expected == TestResult::Invalid));
    let bad = mismatches(picked.into_iter());
    assert!(
        bad.is_empty(),
        "accepted invalid signatures:\n{}",
        bad.join("\n")
    );
}

#[test]
fn refuses_r_or_s_outside_the_group_order() {
    let all = run_all();
    for flag in [
        TestFlag::RangeCheck,
        TestFlag::IntegerOverflow,
        TestFlag::ModifiedInteger,
    ] {
        let bad = mismatches(flagged(&all, flag).into_iter());
        assert!(bad.is_empty(), "{flag:?} mismatches:\n{}", bad.join("\n"));
    }
}

#[test]
fn refuses_signatures_of_the_wrong_size() {
    let all = run_all();
    let picked = flagged(&all, TestFlag::SignatureSize);
    assert!(picked.iter().all(|o| o.expected == TestResult::Invalid));
    let bad = mismatches(picked.into_iter());
    assert!(
        bad.is_empty(),
        "accepted mis-sized signatures:\n{}",
        bad.join("\n")
    );
}

#[test]
fn survives_arithmetic_edge_cases() {
    // Edge-case keys, Shamir multiplication, special-case hashes: valid
    // signatures that broken arithmetic refuses (or the reverse).
    let all = run_all();
    for flag in [
        TestFlag::ArithmeticError,
        TestFlag::EdgeCasePublicKey,
        TestFlag::EdgeCaseShamirMultiplication,
        TestFlag::SpecialCaseHash,
        TestFlag::PointDuplication,
        TestFlag::SmallRandS,
    ] {
        let bad = mismatches(flagged(&all, flag).into_iter());
        assert!(bad.is_empty(), "{flag:?} mismatches:\n{}", bad.join("\n"));
    }
}

#[test]
fn every_vector_gives_its_expected_result() {
    let all = run_all();
    // The set declares 262 tests; all of them ran.
    assert_eq!(all.len(), 262);
    let valid = all
        .iter()
        .filter(|o| o.expected == TestResult::Valid)
        .count();
    let invalid = all
        .iter()
        .filter(|o| o.expected == TestResult::Invalid)
        .count();
    let acceptable = all.len() - valid - invalid;
    assert!(
        valid > 100 && invalid > 50,
        "valid {valid}, invalid {invalid}"
    );
    // See the module doc: none today; if a new vector set adds some, decide
    // and document what ES256 remits do with them.
    assert_eq!(acceptable, 0, "new 'acceptable' vectors: document them");
    let bad = mismatches(all.iter());
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// --- JSON Web Signature vectors ---------------------------------------------
//
// The ES256 / P-256 subset of Wycheproof's `json_web_signature_test.json`,
// committed under `testdata/wycheproof/` (no package ships it; see the README
// there). Each group's public key is loaded the way a JWKS is, then every
// vector goes through `jws::verify_es256`, the generic ES256 compact-JWS
// check under the remit and proof profiles. Vectors whose key is marked for
// encryption (`use: enc`, `key_ops: [encrypt]`) must be refused because the
// key set refuses the key.

mod jws_vectors {
    use remit_token::{jws, Jwks, UnverifiedRemit};
    use serde::Deserialize;

    const FILE: &str = include_str!("../testdata/wycheproof/json_web_signature_es256.json");

    #[derive(Deserialize)]
    struct VectorFile {
        #[serde(rename = "testGroups")]
        groups: Vec<Group>,
    }

    #[derive(Deserialize)]
    struct Group {
        comment: String,
        public: serde_json::Value,
        tests: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        #[serde(rename = "tcId")]
        tc_id: u32,
        comment: String,
        jws: String,
        result: String,
    }

    fn groups() -> Vec<Group> {
        let file: VectorFile = serde_json::from_str(FILE).unwrap();
        file.groups
    }

    /// Runs a group; returns `(tcId, comment, expected_valid, accepted)`.
    fn run(group: &Group) -> Vec<(u32, String, bool, bool)> {
        let jwks = serde_json::json!({ "keys": [group.public] }).to_string();
        let set = Jwks::from_json(&jwks).ok();
        let kid = group.public["kid"].as_str().unwrap();
        group
            .tests
            .iter()
            .map(|v| {
                let accepted = match set.as_ref().and_then(|s| s.get(kid)) {
                    Some(key) => match jws::verify_es256(&v.jws, key) {
                        Ok(payload) => {
                            assert_eq!(payload, b"foo", "tcId {}", v.tc_id);
                            true
                        }
                        Err(_) => false,
                    },
                    None => false,
                };
                (v.tc_id, v.comment.clone(), v.result == "valid", accepted)
            })
            .collect()
    }

    fn mismatches(groups: &[Group]) -> Vec<String> {
        groups
            .iter()
            .flat_map(|g| {
                run(g)
                    .into_iter()
                    .filter(|(_, _, valid, accepted)| valid != accepted)
                    .map(move |(id, c, valid, _)| {
                        format!("{}: tcId {id} {c}: expected valid={valid}", g.comment)
                    })
            })
            .collect()
    }

    #[test]
    fn refuses_keys_marked_for_encryption() {
        let groups: Vec<Group> = groups()
            .into_iter()
            .filter(|g| g.comment.starts_with("ec_key_for_encryption"))
            .collect();
        assert_eq!(groups.len(), 2);
        let bad = mismatches(&groups);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn refuses_special_case_signatures() {
        let groups: Vec<Group> = groups()
            .into_iter()
            .filter(|g| g.comment == "SpecialCaseEs256")
            .collect();
        assert_eq!(groups[0].tests.len(), 23);
        let bad = mismatches(&groups);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn every_es256_jws_vector_gives_its_expected_result() {
        let groups = groups();
        let total: usize = groups.iter().map(|g| g.tests.len()).sum();
        assert_eq!(total, 40);
        let valid = groups
            .iter()
            .flat_map(|g| &g.tests)
            .filter(|v| v.result == "valid")
            .count();
        assert_eq!(valid, 2, "tcId 18 and 378 are the valid ones");
        let bad = mismatches(&groups);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn no_vector_parses_as_a_remit() {
        // Under the remit profile even the valid vectors are refused: their
        // header has no `typ: remit+jwt` and their payload is not claims.
        for group in groups() {
            for v in &group.tests {
                assert!(
                    UnverifiedRemit::parse(&v.jws).is_err(),
                    "tcId {} parsed as a remit",
                    v.tc_id
                );
            }
        }
    }
}
