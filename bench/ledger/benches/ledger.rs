//! Receipt append throughput (durable, batched and unbatched) and proof
//! generation and verification at one million leaves.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use remit_ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion, Tree};
use remit_ledger::{
    Actor, ActorKind, ArgsKey, Classification, Decision, Effect, Event, FileStore, Kind,
    LeafStore as _, Log, MemoryStore, ReceiptSigner, Traceparent,
};
use remit_token::crypto::EcdsaP256Signer;

/// A realistic allow receipt: three-hop chain, findings, decision, trace.
fn event(i: u64, key: &ArgsKey) -> Event {
    let mut e = Event::new(Kind::Allow, 1_764_000_000_000 + i);
    e.root_jti = Some("01JDQ7Z8R0ROOTREMIT0000000".into());
    e.leaf_jti = Some(format!("01JDQ7Z8R0LEAF{i:012}"));
    e.actors = vec![
        Actor {
            kind: ActorKind::User,
            id: "alice@example.com".into(),
        },
        Actor {
            kind: ActorKind::Agent,
            id: "planner".into(),
        },
        Actor {
            kind: ActorKind::Agent,
            id: "coder".into(),
        },
    ];
    e.tool = Some("github.create_issue".into());
    e.args_hash = Some(key.hash_bytes(&i.to_be_bytes()));
    e.findings.insert("EMAIL".into(), 1);
    e.classification = Some(Classification::Internal);
    e.decision = Some(Decision {
        effect: Effect::Allow,
        policy_ids: vec!["standard.tools.allow".into()],
        policy_version: "sha256:6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
            .into(),
        reason: None,
    });
    e.traceparent = Some(
        Traceparent::try_from("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned())
            .unwrap(),
    );
    e
}

fn append(c: &mut Criterion) {
    let gateway = EcdsaP256Signer::generate().unwrap();
    let signer = ReceiptSigner::new(&gateway).unwrap();
    let key = ArgsKey::new(&[7; 32]);
    let mut group = c.benchmark_group("append");

    // canonicalize + sign + hash, no storage: the CPU floor.
    group.throughput(Throughput::Elements(1));
    let mut mem = Log::new(MemoryStore::new(), "bench").unwrap();
    let mut i = 0u64;
    group.bench_function("memory/1", |b| {
        b.iter(|| {
            i += 1;
            mem.append(event(i, &key), &signer).unwrap()
        })
    });

    // Durable, one fsync per receipt.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = FileStore::open(dir.path()).unwrap();
    let mut log = Log::new(store, "bench").unwrap();
    group.bench_function("durable/1", |b| {
        b.iter(|| {
            i += 1;
            log.append(event(i, &key), &signer).unwrap()
        })
    });

    // Durable with group commit: one fsync per batch.
    for batch in [64u64, 256, 1024] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("durable/batch", batch), &batch, |b, &n| {
            b.iter_batched(
                || {
                    i += n;
                    (0..n).map(|k| event(i + k, &key)).collect::<Vec<_>>()
                },
                |events| log.append_batch(events, &signer).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    // Durable with group commit, signatures on two threads (the link covers
    // receipt content, so a sequenced batch signs in parallel).
    for batch in [256u64, 1024] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(
            BenchmarkId::new("durable/batch_2threads", batch),
            &batch,
            |b, &n| {
                b.iter_batched(
                    || {
                        i += n;
                        (0..n).map(|k| event(i + k, &key)).collect::<Vec<_>>()
                    },
                    |events| {
                        let seq = log.sequence(events).unwrap();
                        let (left, right) = seq.payloads().split_at(seq.payloads().len() / 2);
                        let leaves = std::thread::scope(|s| {
                            let l = s.spawn(|| {
                                left.iter()
                                    .map(|p| signer.sign_payload(p).unwrap())
                                    .collect::<Vec<_>>()
                            });
                            let r: Vec<_> = right
                                .iter()
                                .map(|p| signer.sign_payload(p).unwrap())
                                .collect();
                            let mut all = l.join().unwrap();
                            all.extend(r);
                            all
                        });
                        log.commit(seq, leaves).unwrap()
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();

    // Where the time of one receipt goes.
    let mut parts = c.benchmark_group("receipt_parts");
    let receipt = remit_ledger::Receipt::new(event(1, &key), 1, Some(remit_ledger::Hash([1; 32])));
    let payload = receipt.canonical().unwrap();
    parts.bench_function("canonicalize", |b| {
        b.iter(|| black_box(&receipt).canonical().unwrap())
    });
    parts.bench_function("sign_es256", |b| {
        b.iter(|| signer.sign_payload(black_box(&payload)).unwrap())
    });
    let leaf = signer.sign_payload(&payload).unwrap();
    parts.bench_function("leaf_hash", |b| b.iter(|| leaf_hash(black_box(&leaf))));
    parts.bench_function("build_event", |b| b.iter(|| event(black_box(7), &key)));
    parts.finish();
}

/// The durable-append floor side by side: one 600-byte leaf and its
/// `fdatasync`, through `FileStore` (preallocated, and with preallocation
/// off) and through a plain `O_APPEND` file, all in one directory on the
/// target's disk (not `/tmp`, which may be tmpfs).
fn leaf_sync(c: &mut Criterion) {
    use std::io::Write as _;
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let leaf = vec![b'x'; 600];
    let line: Vec<u8> = leaf.iter().copied().chain([b'\n']).collect();
    let mut group = c.benchmark_group("leaf_sync");
    group.throughput(Throughput::Elements(1));

    let mut plain = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.path().join("append.jsonl"))
        .unwrap();
    group.bench_function("append_write_fdatasync", |b| {
        b.iter(|| {
            plain.write_all(&line).unwrap();
            plain.sync_data().unwrap()
        })
    });
    let batch = [leaf];
    let (mut grown, _) = FileStore::open_with_chunk(&root.path().join("grown"), 0).unwrap();
    group.bench_function("file_store/no_prealloc", |b| {
        b.iter(|| grown.append_batch(&batch).unwrap())
    });
    let (mut prealloc, _) = FileStore::open(&root.path().join("prealloc")).unwrap();
    group.bench_function("file_store/prealloc", |b| {
        b.iter(|| prealloc.append_batch(&batch).unwrap())
    });
    // For comparison only: overwriting blocks already written (zeros, then
    // fsync) changes no metadata at all, not even an extent's state.
    let zeroed_path = root.path().join("zeroed.jsonl");
    let zeroed = std::fs::File::create(&zeroed_path).unwrap();
    let chunk = vec![0u8; 8 << 20];
    std::os::unix::fs::FileExt::write_all_at(&zeroed, &chunk, 0).unwrap();
    zeroed.sync_all().unwrap();
    let mut at = 0u64;
    group.bench_function("overwrite_zero_filled", |b| {
        b.iter(|| {
            if at + line.len() as u64 > chunk.len() as u64 {
                at = 0;
            }
            std::os::unix::fs::FileExt::write_all_at(&zeroed, &line, at).unwrap();
            zeroed.sync_data().unwrap();
            at += line.len() as u64;
        })
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    const SIZE: u64 = 1 << 20; // 1,048,576 leaves
    let tree = Tree::from_leaf_hashes((0..SIZE).map(|i| leaf_hash(&i.to_be_bytes())));
    let root = tree.root();
    let mut group = c.benchmark_group("proofs_1M");
    let mut n = 0u64;
    let mut pick = move || {
        // A cheap spread of indexes over the whole tree.
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (n >> 33) % SIZE
    };
    group.bench_function("inclusion/generate", |b| {
        b.iter(|| tree.inclusion_proof(black_box(pick()), SIZE).unwrap())
    });
    let index = 777_777;
    let proof = tree.inclusion_proof(index, SIZE).unwrap();
    let leaf = tree.leaf(index).unwrap();
    group.bench_function("inclusion/verify", |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), index, SIZE, &proof, &root).unwrap())
    });
    group.bench_function("consistency/generate", |b| {
        b.iter(|| {
            tree.consistency_proof(black_box(pick().max(1)), SIZE)
                .unwrap()
        })
    });
    let old = 700_001;
    let old_root = tree.root_at(old).unwrap();
    let cproof = tree.consistency_proof(old, SIZE).unwrap();
    group.bench_function("consistency/verify", |b| {
        b.iter(|| verify_consistency(old, SIZE, black_box(&cproof), &old_root, &root).unwrap())
    });
    group.bench_function("root_at/any_size", |b| {
        b.iter(|| tree.root_at(black_box(pick().max(1))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, append, leaf_sync, proofs);
criterion_main!(benches);
