//! Machine anchors: the costs an allowed call pays in series, measured on
//! this machine at the start of the run.
//!
//! The answer to an allowed call waits for a durable receipt of a decision
//! about an authenticated caller, so one ES256 verify (the DPoP proof), one
//! ES256 signature (the receipt) and one durable write are in series on
//! every call. Printing them beside the
//! results lets runs on different machines be compared by how far above
//! that floor they are, not by absolute numbers alone.

use std::os::unix::fs::FileExt as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use remit_bench_gateway::percentile;
use remit_token::{EcdsaP256Signer, Signer as _, VerifyingKey};

/// How many times each anchor is timed; the median is reported.
const SAMPLES: usize = 301;
/// A receipt leaf's size, about.
pub const LEAF_BYTES: usize = 600;

/// The anchors' medians.
#[derive(Debug, Clone, Copy)]
pub struct Anchors {
    /// One ES256 (P-256) signature verify.
    pub verify: Duration,
    /// One ES256 signature.
    pub sign: Duration,
    /// One leaf-sized write into already written blocks of a file, then
    /// `fdatasync`.
    pub durable_write: Duration,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    percentile(&samples, 50)
}

/// Measures the anchors; the durable write goes to a file in `dir`, which
/// should be on the disk the gateway's data directory is on.
pub fn measure(dir: &std::path::Path) -> anyhow::Result<Anchors> {
    let signer = EcdsaP256Signer::generate().context("generating a P-256 key")?;
    let key = VerifyingKey::from_jwk(signer.public_jwk()).context("its public key")?;
    let message = [7u8; 200];
    let mut sign = Vec::with_capacity(SAMPLES);
    let mut verify = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let signature = signer.sign(&message).context("signing")?;
        sign.push(started.elapsed());
        let started = Instant::now();
        key.verify(&message, &signature).context("verifying")?;
        verify.push(started.elapsed());
    }

    let path = dir.join("anchor-write");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // Written (not only allocated) blocks: the write then changes no
    // metadata, like a receipt written into the log's preallocated space.
    file.write_all_at(&vec![0u8; SAMPLES * LEAF_BYTES], 0)?;
    file.sync_all()?;
    let leaf = [b'x'; LEAF_BYTES];
    let mut durable = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        file.write_all_at(&leaf, (i * LEAF_BYTES) as u64)?;
        file.sync_data()?;
        durable.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(Anchors {
        verify: median(verify),
        sign: median(sign),
        durable_write: median(durable),
    })
}
