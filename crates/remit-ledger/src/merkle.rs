//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
//!
//! Leaves hash as `SHA-256(0x00 || leaf)`, interior nodes as
//! `SHA-256(0x01 || left || right)`, and a tree of `n` leaves splits at the
//! largest power of two below `n` (RFC 6962 §2.1). [`Tree`] keeps every
//! complete aligned subtree hash (about `2n` hashes), so the hash of any
//! prefix, and so any proof, costs `O(log² n)` lookups and hashes rather
//! than rehashing the leaves.

use aws_lc_rs::digest::{Context, SHA256};

/// Length of a SHA-256 hash.
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash of a leaf, a node or a tree head.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        Some(Hash(bytes.try_into().ok()?))
    }

    /// The hash as bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn finish(ctx: Context) -> Hash {
    let digest = ctx.finish();
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(digest.as_ref());
    Hash(out)
}

/// The hash of an empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

/// The RFC 6962 leaf hash: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(leaf);
    finish(ctx)
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(&left.0);
    ctx.update(&right.0);
    finish(ctx)
}

/// The largest power of two strictly below `n` (`n >= 2`): RFC 6962's split.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index or size is outside the tree.
    #[error("index {index} is outside a tree of size {size}")]
    OutOfRange {
        /// The index or size asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes of a consistency proof are not `0 < old <= new`.
    #[error("consistency needs 0 < old <= new, got old {old}, new {new}")]
    BadSizes {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for its sizes.
    #[error("proof has the wrong length for its tree sizes")]
    WrongLength,
    /// The proof recomputes a different root: the data is not in, or not
    /// consistent with, the tree the root commits to.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// An in-memory RFC 6962 tree over leaf hashes, append-only.
///
/// `levels[k][i]` is the hash of the complete subtree of `2^k` leaves that
/// starts at leaf `i * 2^k`.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree {
            levels: vec![Vec::new()],
        }
    }

    /// A tree over the given leaf hashes.
    pub fn from_leaf_hashes(hashes: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Tree::new();
        for h in hashes {
            tree.push(h);
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash, completing whatever subtrees it closes.
    pub fn push(&mut self, hash: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(hash);
        let mut k = 0;
        while self.levels[k].len() % 2 == 0 {
            let len = self.levels[k].len();
            let node = node_hash(&self.levels[k][len - 2], &self.levels[k][len - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(node);
            k += 1;
        }
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The tree head of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::OutOfRange {
                index: size,
                size: self.size(),
            });
        }
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.range(0, size))
    }

    /// The current tree head.
    pub fn root(&self) -> Hash {
        if self.size() == 0 {
            empty_root()
        } else {
            self.range(0, self.size())
        }
    }

    /// MTH(D[lo:hi]) for a range RFC 6962's recursion produces: `lo` is a
    /// multiple of the largest power of two not above `hi - lo`.
    fn range(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n.is_power_of_two() {
            let k = n.trailing_zeros() as usize;
            // INVARIANT: callers stay within size() and RFC 6962's recursion
            // only asks for aligned complete subtrees, which push() stored.
            return self.levels[k][(lo >> k) as usize];
        }
        let k = split(n);
        node_hash(&self.range(lo, lo + k), &self.range(lo + k, hi))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size`
    /// leaves (RFC 6962 §2.1.1 PATH), leaf to root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if index >= size || size > self.size() {
            return Err(ProofError::OutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.range(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.range(lo, lo + k));
        }
    }

    /// The consistency proof between the trees of the first `old` and
    /// `new` leaves (RFC 6962 §2.1.2 PROOF). Empty when `old` is 0 or equal
    /// to `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        if new > self.size() {
            return Err(ProofError::OutOfRange {
                index: new,
                size: self.size(),
            });
        }
        if old > new {
            return Err(ProofError::BadSizes { old, new });
        }
        let mut proof = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.range(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out);
            out.push(self.range(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.range(lo, lo + k));
        }
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): the tree of `new`
/// leaves with head `new_root` extends the tree of `old` leaves with head
/// `old_root`. `old == 0` is consistent with anything, `old == new` needs an
/// empty proof and equal heads.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6962 reference leaves and tree heads (the Certificate Transparency
    // test vectors, also used by transparency-dev/merkle).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn h(text: &str) -> Hash {
        Hash::from_hex(text).unwrap()
    }

    fn reference() -> Tree {
        Tree::from_leaf_hashes(LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())))
    }

    #[test]
    fn roots_match_rfc6962_vectors_at_every_size() {
        let tree = reference();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(tree.root_at(size as u64).unwrap(), h(want), "size {size}");
        }
        assert_eq!(empty_root(), h(ROOTS[0]));
    }

    #[test]
    fn split_is_rfc6962s_not_the_midpoint() {
        for (n, want) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512)] {
            assert_eq!(split(n), want, "n {n}");
        }
    }

    #[test]
    fn inclusion_proofs_match_reference_vectors() {
        let tree = reference();
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (0, 1, &[]),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
            let proof = tree.inclusion_proof(index, size).unwrap();
            assert_eq!(proof, want, "index {index} size {size}");
            let leaf = tree.leaf(index).unwrap();
            verify_inclusion(&leaf, index, size, &proof, &h(ROOTS[size as usize])).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_reference_vectors() {
        let tree = reference();
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                2,
                8,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (old, new, want) in cases {
            let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
            let proof = tree.consistency_proof(old, new).unwrap();
            assert_eq!(proof, want, "{old} -> {new}");
            verify_consistency(
                old,
                new,
                &proof,
                &h(ROOTS[old as usize]),
                &h(ROOTS[new as usize]),
            )
            .unwrap();
        }
    }

    #[test]
    fn refuses_inclusion_proof_for_wrong_leaf_index_or_root() {
        let tree = reference();
        let proof = tree.inclusion_proof(5, 8).unwrap();
        let leaf = tree.leaf(5).unwrap();
        let root = tree.root();
        assert!(verify_inclusion(&leaf, 4, 8, &proof, &root).is_err());
        assert!(verify_inclusion(&leaf, 5, 6, &proof, &root).is_err());
        assert!(verify_inclusion(&tree.leaf(4).unwrap(), 5, 8, &proof, &root).is_err());
        assert!(verify_inclusion(&leaf, 5, 8, &proof[..2], &root).is_err());
        assert!(verify_inclusion(&leaf, 8, 8, &proof, &root).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_inclusion(&leaf, 5, 8, &longer, &root).is_err());
    }

    #[test]
    fn refuses_consistency_proof_with_swapped_roots_or_sizes() {
        let tree = reference();
        let proof = tree.consistency_proof(6, 8).unwrap();
        let (r6, r8) = (h(ROOTS[6]), h(ROOTS[8]));
        assert!(verify_consistency(6, 8, &proof, &h(ROOTS[5]), &r8).is_err());
        assert!(verify_consistency(6, 8, &proof, &r8, &r6).is_err());
        assert!(verify_consistency(5, 8, &proof, &r6, &r8).is_err());
        assert!(verify_consistency(8, 6, &proof, &r6, &r8).is_err());
        assert!(verify_consistency(6, 8, &[], &r6, &r8).is_err());
        assert!(verify_consistency(8, 8, &[], &r8, &r6).is_err());
    }

    #[test]
    fn every_proof_in_small_trees_verifies() {
        let tree = Tree::from_leaf_hashes((0u32..70).map(|i| leaf_hash(&i.to_be_bytes())));
        for size in 1..=70u64 {
            let root = tree.root_at(size).unwrap();
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                verify_inclusion(&tree.leaf(index).unwrap(), index, size, &proof, &root).unwrap();
            }
            for old in 1..=size {
                let proof = tree.consistency_proof(old, size).unwrap();
                verify_consistency(old, size, &proof, &tree.root_at(old).unwrap(), &root).unwrap();
            }
        }
    }
}
