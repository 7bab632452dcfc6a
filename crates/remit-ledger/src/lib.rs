//! Signed receipts and the Merkle log (being built: see issue 6).
