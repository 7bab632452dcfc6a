//! Benchmarks for `remit-token`: see `benches/` and `README.md` in this folder.
