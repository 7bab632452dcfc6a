//! One module per command group.

pub mod keys;

// token (issue 3)

// scan (issue 4)
pub mod scan;

// policy (issue 5)

// audit (issue 6)

// server (issue 7)
