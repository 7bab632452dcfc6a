//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A note is UTF-8 text ending in a newline, then a blank line, then one
//! line per signature: `— <key name> <base64(key id || signature)>`. The
//! Ed25519 signature is over the text bytes (up to and including its final
//! newline).
//!
//! Keys use the ecosystem's text encodings (as in Go's
//! `golang.org/x/mod/sumdb/note`):
//! - key id: the first 4 bytes, big-endian, of
//!   `SHA-256(name || 0x0A || 0x01 || public key)`; `0x01` is the Ed25519
//!   signature type;
//! - verifier key: `<name>+<key id as 8 hex>+<base64(0x01 || public key)>`;
//! - signer key: `PRIVATE+KEY+<name>+<key id as 8 hex>+<base64(0x01 || seed)>`
//!   where `seed` is the 32-byte RFC 8032 private key.
//!
//! `base64` here is standard base64 with padding, as the spec requires.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The signature type byte for Ed25519 keys.
const ALG_ED25519: u8 = 0x01;
/// At most this many signature lines are read (the spec's limit).
const MAX_SIGNATURES: usize = 100;
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note or a note key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string is not in the `name+id+key` encoding.
    #[error("malformed note key: {0}")]
    BadKey(&'static str),
    /// The note is not text, blank line, signature lines.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// No signature by any of the given keys is on the note.
    #[error("note has no signature from key {0:?}")]
    UnknownKey(String),
    /// A signature from a known key does not verify.
    #[error("note signature by {0:?} does not verify")]
    BadSignature(String),
    /// Key generation or signing failed.
    #[error("note signing failed")]
    Signing,
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadKey(
            "name must be non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

/// The C2SP key id: the first 4 bytes of `SHA-256(name || "\n" || 0x01 || key)`.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut input = Vec::with_capacity(name.len() + 34);
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(ALG_ED25519);
    input.extend_from_slice(public);
    let h = digest(&SHA256, &input);
    let b = h.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// An Ed25519 note signing key with its name.
pub struct NoteSigner {
    name: String,
    id: u32,
    seed: [u8; 32],
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Generates a fresh key named `name` (for a log: its origin).
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = Ed25519KeyPair::generate().map_err(|_| NoteError::Signing)?;
        let seed = key.seed().map_err(|_| NoteError::Signing)?;
        let seed = seed.as_be_bytes().map_err(|_| NoteError::Signing)?;
        let seed: [u8; 32] = seed.as_ref().try_into().map_err(|_| NoteError::Signing)?;
        Self::from_seed(name, seed)
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        let key = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::BadKey("invalid Ed25519 seed"))?;
        let public: [u8; 32] = key
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::BadKey("unexpected public key length"))?;
        Ok(NoteSigner {
            name: name.to_owned(),
            id: key_id(name, &public),
            seed,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`, checking the id.
    pub fn from_skey(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey("signer key must start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest)?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::BadKey("seed must be 32 bytes"))?;
        let signer = Self::from_seed(name, key)?;
        if signer.id != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The signer key encoding (secret: write it to a 0600 file).
    pub fn to_skey(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(&self.seed);
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            STANDARD.encode(material)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this key.
    pub fn verifier(&self) -> NoteVerifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.key.public_key().as_ref());
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            public,
        }
    }

    /// Signs `text` (which must end in a newline) into a signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(sig.as_ref());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

fn split_key(rest: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey("expected name+id+key"));
    };
    check_name(name)?;
    if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(NoteError::BadKey("key id must be 8 lowercase hex digits"));
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| NoteError::BadKey("bad key id"))?;
    let material = STANDARD
        .decode(key)
        .map_err(|_| NoteError::BadKey("key is not base64"))?;
    if STANDARD.encode(&material) != key {
        return Err(NoteError::BadKey("key base64 is not canonical"));
    }
    match material.split_first() {
        Some((&ALG_ED25519, key)) => Ok((name, id, key.to_vec())),
        _ => Err(NoteError::BadKey(
            "only Ed25519 (type 0x01) keys are supported",
        )),
    }
}

/// An Ed25519 note verifier key with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    public: [u8; 32],
}

impl NoteVerifier {
    /// Parses `<name>+<id>+<base64(0x01 || public key)>`, checking the id.
    pub fn from_vkey(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(text.trim_end_matches('\n'))?;
        let public: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::BadKey("public key must be 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// The verifier key encoding, for publication.
    pub fn to_vkey(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(&self.public);
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.id,
            STANDARD.encode(material)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Opens a signed note: returns its text when it carries a valid
    /// signature by this key. Signatures by other keys are ignored, as the
    /// spec requires; a signature by this key that fails is an error.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        check_text(text)?;
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end in a newline",
            ));
        }
        let mut verified = false;
        for (n, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            if n >= MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "signature line must start with an em dash",
            ))?;
            let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed(
                "signature line needs name and signature",
            ))?;
            let blob = STANDARD
                .decode(blob)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if blob.len() < 5 {
                return Err(NoteError::Malformed("signature too short"));
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if name != self.name || id != self.id {
                continue;
            }
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(text.as_bytes(), &blob[4..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::UnknownKey(self.to_vkey()))
        }
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed(
            "text must not hold control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note's reference key and note.
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn signs_the_go_reference_note_byte_for_byte() {
        let signer = NoteSigner::from_skey(SKEY).unwrap();
        assert_eq!(signer.to_skey(), SKEY);
        assert_eq!(signer.verifier().to_vkey(), VKEY);
        assert_eq!(signer.sign(TEXT).unwrap(), format!("{TEXT}\n{SIG}"));
    }

    #[test]
    fn opens_the_go_reference_note() {
        let v = NoteVerifier::from_vkey(VKEY).unwrap();
        assert_eq!(v.id(), 0xc74f20a3);
        assert_eq!(v.open(&format!("{TEXT}\n{SIG}")).unwrap(), TEXT);
    }

    #[test]
    fn refuses_altered_text() {
        let v = NoteVerifier::from_vkey(VKEY).unwrap();
        let note = format!("{TEXT}\n{SIG}").replace("cryptography", "cryptographY");
        assert_eq!(
            v.open(&note),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
    }

    #[test]
    fn refuses_note_signed_only_by_another_key() {
        let other = NoteSigner::generate("PeterNeumann").unwrap();
        let note = other.sign(TEXT).unwrap();
        let v = NoteVerifier::from_vkey(VKEY).unwrap();
        assert!(matches!(v.open(&note), Err(NoteError::UnknownKey(_))));
    }

    #[test]
    fn refuses_mangled_keys() {
        assert!(NoteVerifier::from_vkey(
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_err());
        assert!(NoteVerifier::from_vkey(
            "PeterNeumann+c74f20a3+AhpcC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_err());
        assert!(NoteVerifier::from_vkey(
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_err());
        assert!(NoteSigner::from_skey(&SKEY.replace("c74f20a3", "c74f20a4")).is_err());
        assert!(NoteSigner::from_skey(VKEY).is_err());
    }

    #[test]
    fn refuses_text_without_final_newline_or_with_control_chars() {
        let signer = NoteSigner::generate("log.example/a").unwrap();
        assert!(signer.sign("no newline").is_err());
        assert!(signer.sign("tab\there\n").is_err());
        let note = signer.sign("ok\n").unwrap();
        let v = signer.verifier();
        assert_eq!(v.open(&note).unwrap(), "ok\n");
        assert!(v.open(note.trim_end_matches('\n')).is_err());
    }
}
