//! Remit policy decisions (being built: see issue 5).
