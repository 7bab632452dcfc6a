//! Policy versions: content hashes of a policy set.
//!
//! # The recorded version: a hash of the folder's files
//!
//! What goes into remits and receipts is [`PolicyVersion::of_files`]: a
//! hash anyone recomputes from the policy folder with standard tools, no
//! Remit code. The files are exactly the ones the loader reads —
//! `manifest.json`, `preset.<ext>` and every `overrides/*.<ext>` (`ext` is
//! the manifest's `engine`, `cedar` by default; names starting with `.`
//! are not read) — named by their path relative to the folder with `/`
//! separators. Each file gives one line, `<sha256 of its bytes, hex>` two
//! spaces `<path>` newline, which is what `sha256sum` prints; the lines
//! are sorted by path (bytes), and the version is `sha256:` and the hex
//! SHA-256 of their concatenation (the scheme of Go's `dirhash` "h1", in
//! hex). From a shell:
//!
//! ```sh
//! cd policy && LC_ALL=C sha256sum manifest.json preset.cedar overrides/*.cedar \
//!   | LC_ALL=C sort -k 2 | sha256sum       # prints the hex after `sha256:`
//! ```
//!
//! Any byte changed, a file added, removed or renamed changes it; a
//! comment does too (a version names the files an auditor can keep, not
//! their meaning). The schema is built into the binary and not hashed.
//!
//! # The engine's own version: the policies' meaning
//!
//! An engine loaded from bare sources (tests, `remit-draft`) versions what
//! the policies *mean*, not how the files happen to be laid out; a folder
//! loaded by the runtime replaces it with the files' hash
//! ([`crate::PolicyEngine::set_version`]). The canonical text is built
//! from parsed policies, not from file bytes:
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

/// Why a policy folder's files cannot be versioned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// A path would break the one-line-per-file format (`sha256sum`
    /// escapes such names, so the shell recipe would differ).
    #[error("policy file name {0:?} holds a newline or a backslash: rename the file")]
    BadName(String),
    /// Two files with one path.
    #[error("policy file {0:?} is listed twice")]
    Duplicate(String),
}

impl PolicyVersion {
    /// The version of a policy folder from its files: `(relative path with
    /// `/` separators, bytes)`, in any order (see the module doc).
    pub fn of_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, VersionError> {
        let mut lines: Vec<(&str, String)> = Vec::new();
        for (path, bytes) in files {
            if path.contains(['\n', '\\']) {
                return Err(VersionError::BadName(path.to_owned()));
            }
            lines.push((path, format!("{}  {path}\n", hex::encode(sha256(bytes)))));
        }
        lines.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if let Some(w) = lines.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(VersionError::Duplicate(w[0].0.to_owned()));
        }
        let text: String = lines.into_iter().map(|(_, line)| line).collect();
        Ok(Self(sha256(text.as_bytes())))
    }

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
    fn a_folder_version_is_sha256sum_lines_sorted_by_path() {
        // `printf 'a' > manifest.json; printf 'b' > preset.cedar;
        //  sha256sum manifest.json preset.cedar | sha256sum`
        let files: [(&str, &[u8]); 2] = [("preset.cedar", b"b"), ("manifest.json", b"a")];
        let lines = format!(
            "{}  manifest.json\n{}  preset.cedar\n",
            hex::encode(sha256(b"a")),
            hex::encode(sha256(b"b"))
        );
        let v = PolicyVersion::of_files(files).unwrap();
        assert_eq!(v, PolicyVersion::of_canonical(&lines));
        assert_eq!(
            lines,
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  manifest.json\n\
             3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  preset.cedar\n"
        );
    }

    #[test]
    fn any_byte_name_or_file_changes_the_folder_version() {
        let base: Vec<(&str, &[u8])> = vec![("manifest.json", b"{}"), ("preset.cedar", b"p")];
        let v = PolicyVersion::of_files(base.clone()).unwrap();
        let mut edited = base.clone();
        edited[1].1 = b"q";
        let mut renamed = base.clone();
        renamed[1].0 = "preset2.cedar";
        let mut added = base.clone();
        added.push(("overrides/x.cedar", b""));
        for other in [edited, renamed, added] {
            assert_ne!(PolicyVersion::of_files(other).unwrap(), v);
        }
    }

    #[test]
    fn a_name_sha256sum_would_escape_or_a_duplicate_is_refused() {
        for name in ["over\nrides.cedar", "a\\b.cedar"] {
            let files: [(&str, &[u8]); 1] = [(name, b"")];
            assert!(matches!(
                PolicyVersion::of_files(files),
                Err(VersionError::BadName(_))
            ));
        }
        let files: [(&str, &[u8]); 2] = [("a", b"1"), ("a", b"2")];
        assert!(matches!(
            PolicyVersion::of_files(files),
            Err(VersionError::Duplicate(_))
        ));
    }

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
