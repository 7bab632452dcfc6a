//! Benchmarks for `remit-ledger`: see `benches/` and `README.md` in this folder.
