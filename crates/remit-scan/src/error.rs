//! Errors a scan can return. Anything else is a finding, not an error.

/// Why a scan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The input is larger than the configured cap; it is not truncated.
    #[error("input is {size} bytes, over the scan limit of {limit} bytes; raise the limit or split the input")]
    InputTooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Hash redaction was requested without a key.
    #[error("hash redaction needs an HMAC key of at least 16 bytes")]
    MissingHmacKey,
}
