//! One module per command group.

pub mod keys;

// token (issue 3)
pub mod token;

// scan (issue 4)

// policy (issue 5)

// audit (issue 6)
pub mod audit;

// server (issue 7)
pub mod agent;
pub mod client;
pub mod issue;
pub mod revoke;
pub mod serve;
