//! Policy versions: the SHA-256 of a policy set's canonical text.
//!
//! The version goes into remits and receipts, so it must name *what the
//! policies mean*, not how the files happen to be laid out. The canonical
//! text is therefore built from parsed policies, not from file bytes:
//!
//! * **Cedar**: a header (`remit-policy/v1`, engine, escalation mode, the
//!   SHA-256 of the schema), then each policy sorted by its `@id`, written
//!   as `policy <id>` and the policy's Cedar JSON form (EST) with object keys
//!   sorted. Comments, whitespace, file names, file order and the order of
//!   policies within a file do not change the version; any change to a
//!   condition, scope, effect or annotation does.
//! * **Rego**: the same header, then each module with comment-only lines
//!   and blank lines dropped and every line trimmed, modules sorted by that
//!   normalized text. Reordering files or re-indenting does not change the
//!   version; reordering rules inside a module does (Rego has no stable
//!   per-rule identity to sort by).

use std::fmt;

use serde::Serialize;

/// A policy set's content hash, shown as `sha256:<64 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion([u8; 32]);

impl PolicyVersion {
    /// Hashes a canonical text (see the module doc for how it is built).
    pub fn of_canonical(text: &str) -> Self {
        Self(sha256(text.as_bytes()))
    }

    /// Wraps a digest computed elsewhere.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The raw digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 of bytes.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl fmt::Display for PolicyVersion {
    /// Written on every decision, so without allocating: the hex digits go
    /// into a buffer on the stack.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PREFIX: &[u8] = b"sha256:";
        let mut buf = [0u8; PREFIX.len() + 64];
        let (prefix, digits) = buf.split_at_mut(PREFIX.len());
        prefix.copy_from_slice(PREFIX);
        hex::encode_to_slice(self.0, digits).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for PolicyVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Normalizes one Rego module for hashing (see the module doc).
pub(crate) fn normalize_rego(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_prefixed_hex() {
        let v = PolicyVersion::of_canonical("");
        assert_eq!(
            v.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rego_normalization_ignores_comments_and_indentation() {
        let a = "package p\n\n# hello\n  allow if { true }\n";
        let b = "package p\nallow if { true }";
        assert_eq!(normalize_rego(a), normalize_rego(b));
        assert_ne!(
            normalize_rego(a),
            normalize_rego("package p\nallow if { false }")
        );
    }
}
