//! One module per command group.

pub mod keys;

// token (issue 3)

// scan (issue 4)

// policy (issue 5)
pub mod policy;

// audit (issue 6)

// server (issue 7)
