//! Benchmarks for `remit-policy`: see `benches/` and `README.md` in this folder.
