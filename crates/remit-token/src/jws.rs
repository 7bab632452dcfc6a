//! Strict JWS compact serialization (RFC 7515) for ES256 only.
//!
//! Parsing refuses, before any claim is read: more or fewer than three
//! segments, non-canonical base64url, any `alg` but `ES256` (so `none` and
//! every HMAC), an unexpected `typ`, any `crit`, `b64`, `jku`, `x5u`, `x5c`,
//! `x5t` and any other header parameter not listed here, duplicate JSON
//! members, and signatures that are not exactly 64 bytes.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::b64;
use crate::crypto::{CryptoError, Signer, ES256_SIGNATURE_LEN};

/// Largest compact JWS accepted, in bytes.
pub const MAX_JWS_LEN: usize = 16 * 1024;

/// The JWS `typ` of a proof of possession (RFC 9449); kept here, below
/// the proof module (`pop`), so the envelope check does not import it.
pub const PROOF_TYP: &str = "dpop+jwt";

/// Why a compact JWS was refused before its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than [`MAX_JWS_LEN`].
    #[error("token is {len} bytes; at most {MAX_JWS_LEN} are accepted")]
    Oversized {
        /// The token's length.
        len: usize,
    },
    /// Not three dot-separated segments.
    #[error("token is not a compact JWS (header.payload.signature)")]
    NotCompact,
    /// A segment is not canonical unpadded base64url.
    #[error("JWS {segment} is not canonical base64url")]
    Base64 {
        /// `header`, `payload` or `signature`.
        segment: &'static str,
    },
    /// The header is not a JSON object of known parameters.
    #[error("malformed JWS header: {0}")]
    Header(String),
    /// `alg` is not ES256 (this covers `none` and every HMAC).
    #[error("alg {0:?} is refused; only ES256 is accepted")]
    Algorithm(String),
    /// `typ` is not the one expected here.
    #[error("typ {found:?} is refused; expected {expected:?}")]
    Type {
        /// What the header said.
        found: String,
        /// What this token kind requires.
        expected: &'static str,
    },
    /// A header parameter Remit never honours (`crit`, `b64`, `jku`, `x5u`,
    /// `x5c`, `x5t`, or `jwk` outside a proof of possession).
    #[error("header parameter {0:?} is refused")]
    RefusedParameter(&'static str),
    /// A required header parameter is missing.
    #[error("header parameter {0:?} is required")]
    MissingParameter(&'static str),
    /// The signature is not 64 bytes (`r || s`).
    #[error("ES256 signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    /// The signature does not verify under the key.
    #[error("ES256 signature does not verify")]
    BadSignature,
}

/// Which kind of JWS is being parsed; fixes `typ` and header rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// A remit: `typ remit+jwt`, `kid` required, no `jwk`.
    Remit,
    /// A proof of possession: `typ dpop+jwt`, `jwk` required.
    Proof,
    /// Any ES256 JWS with a caller-supplied key: `typ` and `kid` optional,
    /// `jwk` refused.
    Bare,
}

impl Profile {
    fn typ(self) -> Option<&'static str> {
        match self {
            Profile::Remit => Some(crate::REMIT_TYP),
            Profile::Proof => Some(PROOF_TYP),
            Profile::Bare => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    jwk: Option<Box<RawValue>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    b64: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    jku: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5u: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5c: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5t: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "x5t#S256")]
    x5t_s256: Option<serde::de::IgnoredAny>,
}

/// A parsed, not yet verified, JWS.
#[derive(Debug, Clone)]
pub(crate) struct Jws {
    /// `kid`, when present.
    pub kid: Option<String>,
    /// The raw `jwk` header member, for proofs only.
    pub jwk: Option<Box<RawValue>>,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// Length of `header.payload`, the signing input, within the token.
    pub signing_input_len: usize,
    /// The `r || s` signature.
    pub signature: [u8; ES256_SIGNATURE_LEN],
}

/// Splits and checks a compact JWS under `profile`'s header rules.
pub(crate) fn parse(token: &str, profile: Profile) -> Result<Jws, JwsError> {
    if token.len() > MAX_JWS_LEN {
        return Err(JwsError::Oversized { len: token.len() });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::NotCompact);
    };
    let header = b64::decode(h).map_err(|_| JwsError::Base64 { segment: "header" })?;
    let payload = b64::decode(p).map_err(|_| JwsError::Base64 { segment: "payload" })?;
    let sig = b64::decode(s).map_err(|_| JwsError::Base64 {
        segment: "signature",
    })?;
    let raw: RawHeader =
        serde_json::from_slice(&header).map_err(|e| JwsError::Header(e.to_string()))?;
    if raw.alg != "ES256" {
        return Err(JwsError::Algorithm(raw.alg));
    }
    let refused = [
        ("crit", raw.crit.is_some()),
        ("b64", raw.b64.is_some()),
        ("jku", raw.jku.is_some()),
        ("x5u", raw.x5u.is_some()),
        ("x5c", raw.x5c.is_some()),
        ("x5t", raw.x5t.is_some()),
        ("x5t#S256", raw.x5t_s256.is_some()),
        ("jwk", raw.jwk.is_some() && profile != Profile::Proof),
        ("kid", raw.kid.is_some() && profile == Profile::Proof),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, present)| *present) {
        return Err(JwsError::RefusedParameter(name));
    }
    if let Some(expected) = profile.typ() {
        match raw.typ {
            Some(typ) if typ == expected => {}
            Some(found) => return Err(JwsError::Type { found, expected }),
            None => return Err(JwsError::MissingParameter("typ")),
        }
    }
    match profile {
        Profile::Remit if raw.kid.is_none() => return Err(JwsError::MissingParameter("kid")),
        Profile::Proof if raw.jwk.is_none() => return Err(JwsError::MissingParameter("jwk")),
        _ => {}
    }
    let signature: [u8; ES256_SIGNATURE_LEN] = sig
        .as_slice()
        .try_into()
        .map_err(|_| JwsError::SignatureLength(sig.len()))?;
    Ok(Jws {
        kid: raw.kid,
        jwk: raw.jwk,
        payload,
        signing_input_len: h.len() + 1 + p.len(),
        signature,
    })
}

/// Verifies any compact ES256 JWS under `key` with the same strict header
/// rules (no `typ` or `kid` required) and returns its payload bytes. For
/// known-answer and conformance tests, and for JWS that are not remits.
pub fn verify_es256(token: &str, key: &crate::VerifyingKey) -> Result<Vec<u8>, JwsError> {
    let jws = parse(token, Profile::Bare)?;
    key.verify(&token.as_bytes()[..jws.signing_input_len], &jws.signature)
        .map_err(|_| JwsError::BadSignature)?;
    Ok(jws.payload)
}

/// Signs `header` and `payload` (both JSON) into a compact JWS.
pub(crate) fn sign(
    header: &serde_json::Value,
    payload: &[u8],
    signer: &dyn Signer,
) -> Result<String, CryptoError> {
    let header = serde_json::to_vec(header)
        .map_err(|e| CryptoError::SigningFailed(format!("header encoding: {e}")))?;
    let mut token = b64::encode(header);
    token.push('.');
    token.push_str(&b64::encode(payload));
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64::encode(signature));
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(header),
            b64::encode("{}"),
            b64::encode([1u8; 64])
        )
    }

    fn remit(header: &str) -> Result<Jws, JwsError> {
        parse(&token(header), Profile::Remit)
    }

    #[test]
    fn refuses_alg_none_any_case_and_hmac() {
        for alg in [
            "none", "NONE", "None", "HS256", "HS512", "RS256", "ES384", "es256",
        ] {
            let h = format!(r#"{{"alg":"{alg}","typ":"remit+jwt","kid":"k"}}"#);
            assert_eq!(remit(&h).unwrap_err(), JwsError::Algorithm(alg.into()));
        }
    }

    #[test]
    fn refuses_key_url_and_embedded_key_headers() {
        for (member, value) in [
            ("jku", r#""https://evil.example/jwks""#),
            ("x5u", r#""https://evil.example/cert""#),
            ("x5c", r#"["MIIB"]"#),
            ("jwk", r#"{"kty":"EC"}"#),
            ("crit", r#"["exp"]"#),
            ("b64", "false"),
        ] {
            let h = format!(r#"{{"alg":"ES256","typ":"remit+jwt","kid":"k","{member}":{value}}}"#);
            assert!(
                matches!(remit(&h), Err(JwsError::RefusedParameter(m)) if m == member),
                "{member}"
            );
        }
    }

    #[test]
    fn refuses_unknown_header_parameters_and_duplicates() {
        let unknown = r#"{"alg":"ES256","typ":"remit+jwt","kid":"k","zip":"DEF"}"#;
        assert!(matches!(remit(unknown), Err(JwsError::Header(_))));
        let dup_alg = r#"{"alg":"none","alg":"ES256","typ":"remit+jwt","kid":"k"}"#;
        assert!(matches!(remit(dup_alg), Err(JwsError::Header(_))));
    }

    #[test]
    fn refuses_wrong_typ_and_missing_kid() {
        let h = r#"{"alg":"ES256","typ":"JWT","kid":"k"}"#;
        assert!(matches!(remit(h), Err(JwsError::Type { .. })));
        let h = r#"{"alg":"ES256","typ":"dpop+jwt","kid":"k"}"#;
        assert!(matches!(remit(h), Err(JwsError::Type { .. })));
        let h = r#"{"alg":"ES256","typ":"remit+jwt"}"#;
        assert_eq!(remit(h).unwrap_err(), JwsError::MissingParameter("kid"));
    }

    #[test]
    fn refuses_malformed_compact_forms() {
        let good = token(r#"{"alg":"ES256","typ":"remit+jwt","kid":"k"}"#);
        assert!(parse(&good, Profile::Remit).is_ok());
        assert_eq!(
            parse("a.b", Profile::Remit).unwrap_err(),
            JwsError::NotCompact
        );
        assert_eq!(
            parse(&format!("{good}.x"), Profile::Remit).unwrap_err(),
            JwsError::NotCompact
        );
        let padded = good.replacen('.', "=.", 1);
        assert!(matches!(
            parse(&padded, Profile::Remit),
            Err(JwsError::Base64 { .. })
        ));
        let truncated = &good[..good.len() - 2];
        assert!(matches!(
            parse(truncated, Profile::Remit),
            Err(JwsError::SignatureLength(_) | JwsError::Base64 { .. })
        ));
        let long = "a".repeat(MAX_JWS_LEN + 1);
        assert!(matches!(
            parse(&long, Profile::Remit),
            Err(JwsError::Oversized { .. })
        ));
    }
}
