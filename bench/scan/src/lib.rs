//! Benchmarks for `remit-scan`: see `benches/` and `README.md` in this folder.
