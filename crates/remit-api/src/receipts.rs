//! `/v1/receipts` and `/v1/checkpoints/latest`: the signed receipt log.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /v1/receipts`: raw signed leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptPage {
    /// Index of the first leaf returned.
    pub from: u64,
    /// Leaves in the log.
    pub size: u64,
    /// Canonical JSON `{"receipt":..,"sig":..}` of each leaf, byte for byte.
    pub leaves: Vec<String>,
}

/// `GET /v1/checkpoints/latest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatestCheckpoint {
    /// The signed tree head (C2SP signed note text).
    pub checkpoint: String,
    /// The note verifier key the checkpoint is signed with.
    pub note_verifier: String,
    /// The receipt signing key, as a JWKS.
    #[schema(value_type = Object)]
    pub receipt_jwks: Value,
}
