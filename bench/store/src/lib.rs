//! Benchmarks for `remit-store` live in `benches/`; see README.md.
