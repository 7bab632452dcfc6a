//! The JWT attack catalogue, each refused by name, plus RFC 7515 A.3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use remit_token::jws::verify_es256;
use remit_token::{
    b64, ChainError, EcPublicJwk, JwsError, LinkError, RemitError, Signer, UnverifiedRemit,
    VerifiedChain, VerifyOptions, VerifyingKey,
};
use serde_json::json;

fn verify(text: &str, jwks: &remit_token::Jwks) -> Result<VerifiedChain, ChainError> {
    VerifiedChain::verify_text(text, jwks, &opts())
}

fn rule(err: ChainError) -> LinkError {
    match err {
        ChainError::Link { error, .. } => error,
        other => panic!("expected a link error, got {other}"),
    }
}

fn malformed(err: ChainError) -> RemitError {
    match rule(err) {
        LinkError::Malformed(e) => e,
        other => panic!("expected malformed, got {other}"),
    }
}

/// RFC 7515 Appendix A.3: the ES256 example verifies through our parser,
/// and one flipped payload bit does not.
#[test]
fn rfc7515_a3_es256_known_answer() {
    let jwk = EcPublicJwk::from_json(
        r#"{"kty":"EC","crv":"P-256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
    )
    .unwrap();
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    let token = "eyJhbGciOiJFUzI1NiJ9.\
        eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
        DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let payload = verify_es256(token, &key).unwrap();
    assert_eq!(
        payload,
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
    );
    let tampered = token.replace("eyJpc3Mi", "eyJpc3Ni");
    assert_eq!(verify_es256(&tampered, &key), Err(JwsError::BadSignature));
}

#[test]
fn refuses_alg_none_without_signature() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let r = root(&issuer, &holder);
    for alg in ["none", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "remit+jwt", "kid": issuer.key_id()});
        let payload = claims_json(&r).to_string();
        let token = format!(
            "{}.{}.",
            b64::encode(header.to_string()),
            b64::encode(payload)
        );
        let err = malformed(verify(&token, &jwks).unwrap_err());
        assert_eq!(err, RemitError::Jws(JwsError::Algorithm(alg.into())));
    }
}

#[test]
fn refuses_hs256_signed_with_the_public_key_as_secret() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let r = root(&issuer, &holder);
    let header = json!({"alg": "HS256", "typ": "remit+jwt", "kid": issuer.key_id()});
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims_json(&r).to_string())
    );
    let secret = serde_json::to_vec(issuer.public_jwk()).unwrap();
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let tag = aws_lc_rs::hmac::sign(&mac_key, input.as_bytes());
    let token = format!("{input}.{}", b64::encode(tag.as_ref()));
    let err = malformed(verify(&token, &jwks).unwrap_err());
    assert_eq!(err, RemitError::Jws(JwsError::Algorithm("HS256".into())));
}

#[test]
fn refuses_kid_path_and_sql_injection() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let claims = claims_json(&root(&issuer, &holder));
    for kid in [
        "../../../../dev/null",
        "/etc/passwd",
        "x' UNION SELECT 'secret' --",
        "' OR '1'='1",
    ] {
        let token = forge(&claims, kid, &issuer);
        assert_eq!(
            rule(verify(&token, &jwks).unwrap_err()),
            LinkError::UnknownIssuerKey(kid.into())
        );
    }
    let control = forge(&claims, "k\u{0}id", &issuer);
    assert_eq!(
        malformed(verify(&control, &jwks).unwrap_err()),
        RemitError::Kid
    );
}

#[test]
fn refuses_jku_x5u_and_embedded_jwk() {
    let (issuer, holder, attacker) = (key(), key(), key());
    let jwks = jwks_for(&issuer);
    let claims = claims_json(&root(&issuer, &holder)).to_string();
    for (member, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        (
            "jwk",
            serde_json::to_value(attacker.public_jwk().bare()).unwrap(),
        ),
    ] {
        let mut header = json!({"alg": "ES256", "typ": "remit+jwt", "kid": attacker.key_id()});
        header[member] = value;
        let token = forge_raw(&header.to_string(), &claims, &attacker);
        let err = malformed(verify(&token, &jwks).unwrap_err());
        assert!(
            matches!(err, RemitError::Jws(JwsError::RefusedParameter(m)) if m == member),
            "{member}: {err}"
        );
    }
}

#[test]
fn refuses_unknown_crit_and_b64_false() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let claims = claims_json(&root(&issuer, &holder)).to_string();
    for (member, value) in [("crit", json!(["exp_v2"])), ("b64", json!(false))] {
        let mut header = json!({"alg": "ES256", "typ": "remit+jwt", "kid": issuer.key_id()});
        header[member] = value;
        let token = forge_raw(&header.to_string(), &claims, &issuer);
        let err = malformed(verify(&token, &jwks).unwrap_err());
        assert!(matches!(err, RemitError::Jws(JwsError::RefusedParameter(m)) if m == member));
    }
}

/// P-256 group order n.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

#[test]
fn refuses_psychic_signatures_r_or_s_zero_or_at_least_n() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let token = root(&issuer, &holder).compact().to_owned();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = b64::decode(sig).unwrap();
    let (r, s) = sig.split_at(32);
    let zero = [0u8; 32];
    let mut n_plus_r = [0u8; 32];
    // r + n overflows 256 bits for most r; use n itself and n's neighbour.
    n_plus_r.copy_from_slice(&N);
    n_plus_r[31] = n_plus_r[31].wrapping_add(1);
    for (name, bad) in [
        ("r=0,s=0", [zero, zero].concat()),
        ("r=0", [&zero[..], s].concat()),
        ("s=0", [r, &zero[..]].concat()),
        ("r=n", [&N[..], s].concat()),
        ("s=n", [r, &N[..]].concat()),
        ("r=n+1", [&n_plus_r[..], s].concat()),
        ("r=s=ff", vec![0xff; 64]),
    ] {
        let forged = format!("{input}.{}", b64::encode(&bad));
        assert_eq!(
            rule(verify(&forged, &jwks).unwrap_err()),
            LinkError::BadSignature,
            "{name}"
        );
    }
    assert!(verify(&token, &jwks).is_ok());
}

#[test]
fn refuses_expired_and_not_yet_valid() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let r = root(&issuer, &holder);
    let exp = r.claims().exp;
    let late = VerifyOptions::new(exp);
    assert!(matches!(
        rule(VerifiedChain::verify_text(r.compact(), &jwks, &late).unwrap_err()),
        LinkError::Expired { .. }
    ));
    let early = VerifyOptions::new(NOW - 1);
    assert!(matches!(
        rule(VerifiedChain::verify_text(r.compact(), &jwks, &early).unwrap_err()),
        LinkError::NotYetValid { .. }
    ));
    let mut skewed = VerifyOptions::new(NOW - 5);
    skewed.leeway_secs = 5;
    assert!(VerifiedChain::verify_text(r.compact(), &jwks, &skewed).is_ok());
}

#[test]
fn refuses_wrong_audience() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let r = root(&issuer, &holder);
    let mut other = opts();
    other.audience = "billing-gateway".into();
    assert!(matches!(
        rule(VerifiedChain::verify_text(r.compact(), &jwks, &other).unwrap_err()),
        LinkError::Audience { .. }
    ));
}

#[test]
fn refuses_duplicate_claims_at_any_depth() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let claims = claims_json(&root(&issuer, &holder));
    let text = claims.to_string();
    let header = json!({"alg": "ES256", "typ": "remit+jwt", "kid": issuer.key_id()}).to_string();
    // Top level: a second `sub` after the first.
    let dup_top = text.replacen(
        "\"sub\":\"alice\"",
        "\"sub\":\"alice\",\"sub\":\"mallory\"",
        1,
    );
    // Nested: a second `path` constraint inside `args`.
    let dup_arg = text.replacen(
        "\"path\":{\"prefix\":\"/tmp/\"}",
        "\"path\":{\"prefix\":\"/tmp/\"},\"path\":{\"prefix\":\"/\"}",
        1,
    );
    // Nested: a second `jkt` in `cnf`.
    let dup_cnf = text.replacen("\"cnf\":{", "\"cnf\":{\"jkt\":\"x\",", 1);
    for forged in [dup_top, dup_arg, dup_cnf] {
        assert_ne!(forged, text);
        let token = forge_raw(&header, &forged, &issuer);
        assert!(matches!(
            malformed(verify(&token, &jwks).unwrap_err()),
            RemitError::Claims(_)
        ));
    }
    let dup_header = r#"{"alg":"ES256","typ":"remit+jwt","kid":"a","kid":"b"}"#;
    let token = forge_raw(dup_header, &text, &issuer);
    assert!(matches!(
        malformed(verify(&token, &jwks).unwrap_err()),
        RemitError::Jws(JwsError::Header(_))
    ));
}

#[test]
fn refuses_unknown_claims() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let mut claims = claims_json(&root(&issuer, &holder));
    claims["admin"] = json!(true);
    let token = forge(&claims, issuer.key_id(), &issuer);
    assert!(matches!(
        malformed(verify(&token, &jwks).unwrap_err()),
        RemitError::Claims(_)
    ));
}

#[test]
fn refuses_truncated_or_padded_base64() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let token = root(&issuer, &holder).compact().to_owned();
    let (h, rest) = token.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let cases = [
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}==.{s}"),
        format!("{h}.{p}.{s}="),
        format!("{h}.{p}.{}", &s[..s.len() - 1]),
        format!("{h}.{}.{s}", &p[..p.len() - 1]),
        // Standard-alphabet characters in place of URL-safe ones.
        format!("{h}.{p}.+{}", &s[1..]),
        format!("{h}.{p}./{}", &s[1..]),
        format!("{h}.{p}"),
        format!(" {h}.{p}.{s}x"),
    ];
    for bad in cases {
        let err = verify(&bad, &jwks).unwrap_err();
        assert!(
            matches!(rule(err.clone()), LinkError::Malformed(_)),
            "{bad}: {err}"
        );
    }
}

#[test]
fn refuses_non_canonical_trailing_bits_in_signature() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let token = root(&issuer, &holder).compact().to_owned();
    // 64 bytes encode to 86 chars; the last char carries 4 unused bits.
    let last = token.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let twin = alphabet.chars().nth(idx ^ 1).unwrap();
    let forged = format!("{}{twin}", &token[..token.len() - 1]);
    assert!(matches!(
        malformed(verify(&forged, &jwks).unwrap_err()),
        RemitError::Jws(JwsError::Base64 {
            segment: "signature"
        })
    ));
}

#[test]
fn refuses_oversized_link_and_too_many_links() {
    let (issuer, holder) = (key(), key());
    let jwks = jwks_for(&issuer);
    let mut claims = claims_json(&root(&issuer, &holder));
    claims["policy"] = json!("p".repeat(remit_token::MAX_JWS_LEN));
    let big = forge(&claims, issuer.key_id(), &issuer);
    assert!(matches!(
        malformed(verify(&big, &jwks).unwrap_err()),
        RemitError::Jws(JwsError::Oversized { .. })
    ));
    let r = root(&issuer, &holder);
    let many = vec![r.compact(); remit_token::MAX_LINKS + 1].join("~");
    assert_eq!(verify(&many, &jwks).unwrap_err(), ChainError::TooManyLinks);
    assert_eq!(verify("  ", &jwks).unwrap_err(), ChainError::Empty);
}

#[test]
fn refuses_root_signed_by_a_key_outside_the_jwks() {
    let (issuer, holder, attacker) = (key(), key(), key());
    let jwks = jwks_for(&issuer);
    let claims = claims_json(&root(&issuer, &holder));
    // The attacker reuses the issuer's kid but signs with its own key.
    let token = forge(&claims, issuer.key_id(), &attacker);
    assert_eq!(
        rule(verify(&token, &jwks).unwrap_err()),
        LinkError::BadSignature
    );
    // The untouched root verifies.
    assert!(UnverifiedRemit::parse(&forge(&claims, issuer.key_id(), &issuer)).is_ok());
}

#[test]
fn refuses_uncompilable_regex_but_compiles_nothing_before_the_signature() {
    let (issuer, holder, attacker) = (key(), key(), key());
    let jwks = jwks_for(&issuer);
    let mut claims = claims_json(&root(&issuer, &holder));
    claims["authorization_details"][0]["args"]["path"] = json!({"regex": "(unclosed"});
    // Unsigned by the issuer: refused at the signature, before any compile.
    let forged = forge(&claims, issuer.key_id(), &attacker);
    assert_eq!(
        rule(verify(&forged, &jwks).unwrap_err()),
        LinkError::BadSignature
    );
    // Signed (an issuer bug): refused as an invalid grant, not silently allowed.
    let signed = forge(&claims, issuer.key_id(), &issuer);
    let err = verify(&signed, &jwks).unwrap_err();
    assert_eq!(err.rule(), "invalid_grant");
    // And mint refuses to sign it in the first place.
    let grant: remit_token::Grant =
        serde_json::from_value(claims["authorization_details"][0].clone()).unwrap();
    let req = remit_token::MintRequest::new("alice", "p", holder.public_jwk().clone(), vec![grant]);
    assert!(matches!(
        remit_token::mint(&issuer, &req, NOW),
        Err(remit_token::IssueError::Rule(LinkError::InvalidGrant {
            index: 0,
            ..
        }))
    ));
}
