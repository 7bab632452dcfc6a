//! Checkpoints in the C2SP `tlog-checkpoint` format
//! (<https://c2sp.org/tlog-checkpoint>), signed as C2SP signed notes.
//!
//! The note text is three lines: the log's origin, the tree size in
//! decimal, and the RFC 6962 tree head in standard base64. Extension lines
//! are not written and are refused on read, so a checkpoint has one text.
//! The log's note key is named after its origin.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::merkle::{Hash, HASH_LEN};
use crate::note::{NoteError, NoteSigner, NoteVerifier};

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note did not open.
    #[error("checkpoint signature: {0}")]
    Note(#[from] NoteError),
    /// The note text is not origin, size, root hash.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The checkpoint is for another log.
    #[error("checkpoint is for log {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// The origin the verifier key names.
        expected: String,
        /// The origin on the checkpoint.
        found: String,
    },
}

/// A tree head: the log's origin, its size and its root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, for example `remit.example/audit`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        )
    }

    /// Parses note text, refusing extension lines and non-canonical numbers.
    pub fn from_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("text must end in a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(CheckpointError::Malformed(
                "expected exactly origin, size and root hash lines",
            ));
        };
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        let canonical_number = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = if canonical_number {
            size.parse()
                .map_err(|_| CheckpointError::Malformed("tree size out of range"))?
        } else {
            return Err(CheckpointError::Malformed(
                "tree size must be a decimal number",
            ));
        };
        let bytes = STANDARD
            .decode(root)
            .map_err(|_| CheckpointError::Malformed("root hash is not base64"))?;
        let root: [u8; HASH_LEN] = bytes
            .try_into()
            .map_err(|_| CheckpointError::Malformed("root hash must be 32 bytes"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root: Hash(root),
        })
    }

    /// Signs this checkpoint as a C2SP signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        Ok(signer.sign(&self.to_text())?)
    }

    /// Opens and parses a signed checkpoint; its origin must be the
    /// verifier key's name.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        let text = verifier.open(note)?;
        let cp = Checkpoint::from_text(text)?;
        if cp.origin != verifier.name() {
            return Err(CheckpointError::WrongOrigin {
                expected: verifier.name().to_owned(),
                found: cp.origin,
            });
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_c2sp_layout() {
        let signer = NoteSigner::generate("remit.example/audit").unwrap();
        let cp = Checkpoint {
            origin: "remit.example/audit".into(),
            size: 8,
            root: Hash([0xab; 32]),
        };
        let note = cp.sign(&signer).unwrap();
        assert!(note.starts_with(
            "remit.example/audit\n8\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\n\u{2014} remit.example/audit "
        ));
        assert_eq!(Checkpoint::open(&note, &signer.verifier()).unwrap(), cp);
    }

    #[test]
    fn refuses_extension_lines_leading_zeros_and_short_roots() {
        let root = STANDARD.encode([0u8; 32]);
        assert!(Checkpoint::from_text(&format!("o\n8\n{root}\n")).is_ok());
        assert!(Checkpoint::from_text(&format!("o\n8\n{root}\next\n")).is_err());
        assert!(Checkpoint::from_text(&format!("o\n08\n{root}\n")).is_err());
        assert!(Checkpoint::from_text(&format!("o\n-8\n{root}\n")).is_err());
        assert!(Checkpoint::from_text("o\n8\nAAAA\n").is_err());
        assert!(Checkpoint::from_text(&format!("o\n8\n{root}")).is_err());
    }

    #[test]
    fn refuses_checkpoint_of_another_origin_under_a_key_of_that_name() {
        let signer = NoteSigner::generate("other.example/log").unwrap();
        let cp = Checkpoint {
            origin: "remit.example/audit".into(),
            size: 1,
            root: Hash([0; 32]),
        };
        let note = cp.sign(&signer).unwrap();
        assert!(matches!(
            Checkpoint::open(&note, &signer.verifier()),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }
}
