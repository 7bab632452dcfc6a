//! Properties of proofs over random trees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use remit_ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion, Tree};

fn tree_of(leaves: &[Vec<u8>]) -> Tree {
    Tree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)))
}

proptest! {
    #[test]
    fn any_consistent_pair_of_heads_proves_consistent(
        leaves in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 1..300),
        old_frac in 0.0f64..=1.0,
    ) {
        let tree = tree_of(&leaves);
        let new = tree.size();
        let old = ((new as f64 * old_frac) as u64).clamp(1, new);
        let proof = tree.consistency_proof(old, new).unwrap();
        prop_assert!(verify_consistency(old, new, &proof, &tree.root_at(old).unwrap(), &tree.root()).is_ok());
    }

    #[test]
    fn any_altered_history_does_not_prove_consistent(
        leaves in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 2..300),
        old_frac in 0.0f64..=1.0,
        at_frac in 0.0f64..1.0,
        replacement in prop::collection::vec(any::<u8>(), 9..12),
    ) {
        let honest = tree_of(&leaves);
        let new = honest.size();
        let old = ((new as f64 * old_frac) as u64).clamp(1, new - 1);
        let at = ((old as f64 * at_frac) as usize).min(old as usize - 1);
        // Rewrite one leaf the old head committed to (the replacement is
        // longer than any original leaf, so it differs).
        let mut forged = leaves.clone();
        forged[at] = replacement;
        let forged = tree_of(&forged);
        let old_root = honest.root_at(old).unwrap();
        // Neither the forger's own proof nor the honest proof links the
        // old head to the forged head.
        for proof in [forged.consistency_proof(old, new).unwrap(), honest.consistency_proof(old, new).unwrap()] {
            prop_assert!(verify_consistency(old, new, &proof, &old_root, &forged.root()).is_err());
        }
    }

    #[test]
    fn every_leaf_proves_included_and_no_other_leaf_does(
        leaves in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 1..200),
        pick in any::<prop::sample::Index>(),
    ) {
        let tree = tree_of(&leaves);
        let size = tree.size();
        let index = pick.index(leaves.len()) as u64;
        let proof = tree.inclusion_proof(index, size).unwrap();
        prop_assert!(verify_inclusion(&tree.leaf(index).unwrap(), index, size, &proof, &tree.root()).is_ok());
        let stranger = leaf_hash(b"never appended, longer than eight");
        prop_assert!(verify_inclusion(&stranger, index, size, &proof, &tree.root()).is_err());
    }
}
