//! Remit storage (being built: see issue 7).
