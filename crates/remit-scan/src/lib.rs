//! Deterministic PII and secret scanning (being built: see issue 4).
