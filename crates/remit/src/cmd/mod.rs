//! One module per command group.

pub mod arg_flag;
pub mod keys;

// token (issue 3)
pub mod token;

// scan (issue 4)
pub mod scan;

// policy (issue 5)
pub mod policy;

// audit (issue 6)
pub mod audit;

// server (issue 7)
pub mod agent;
pub mod client;
pub mod issue;
pub mod revoke;
pub mod serve;

// gateway (issue 8)
pub mod approvals;
pub mod server;

// remit wrap (issue 8)
pub mod wrap;

// remit draft (issue 26)
pub mod draft;
// remit run and its sandbox helper (issue 28)
pub mod run;

// remit protect and remit doctor (issue 31)
pub mod doctor;
pub mod protect;
// remit backup / restore (issue 30)
pub mod backup;
