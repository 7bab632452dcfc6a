//! A bounded cache of verified chains, so a repeated call does not pay for
//! signature verification again.
//!
//! Keyed by SHA-256 of the chain's leaf token, and served only when the
//! presented text equals the verified text byte for byte: hashing the leaf
//! (about 1 KiB) instead of the whole chain keeps a hit near a microsecond
//! at depth 4, and the comparison keeps "same text" exact. (The leaf's
//! `prf` already binds its whole ancestry, so this is belt and braces.)
//! An entry is served only while
//! `now < exp` of its leaf and while its revocation epoch equals the
//! caller's current one: the server bumps the epoch whenever a revocation
//! lands, which invalidates every entry at once. A chain that extends a
//! cached chain by one link is verified by checking only the new link.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::chain::{ChainError, UnverifiedChain, VerifiedChain, VerifyOptions, CHAIN_SEPARATOR};
use crate::jwks::Jwks;
use crate::remit::UnverifiedRemit;

type Key = [u8; 32];

#[derive(Debug)]
struct Entry {
    text: Box<str>,
    chain: Arc<VerifiedChain>,
    exp: u64,
    epoch: u64,
}

/// Verified chains by hash of their text, bounded, honouring expiry and a
/// revocation epoch.
#[derive(Debug)]
pub struct ChainCache {
    capacity: usize,
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
}

/// The cache key of a chain text: SHA-256 of its last token.
fn key(text: &str) -> Key {
    let leaf = text.rsplit(CHAIN_SEPARATOR).next().unwrap_or(text);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl ChainCache {
    /// A cache of at most `capacity` chains.
    pub fn new(capacity: usize) -> Self {
        ChainCache {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How many chains are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn lookup(&self, text: &str, k: &Key, now: u64, epoch: u64) -> Option<Arc<VerifiedChain>> {
        self.entries
            .get(k)
            .filter(|e| now < e.exp && e.epoch == epoch && *e.text == *text)
            .map(|e| Arc::clone(&e.chain))
    }

    /// The verified chain for `text`, if cached, unexpired at `now` and
    /// verified under revocation `epoch`.
    pub fn get(&self, text: &str, now: u64, epoch: u64) -> Option<Arc<VerifiedChain>> {
        let text = text.trim();
        self.lookup(text, &key(text), now, epoch)
    }

    /// Stores a chain verified outside the cache (e.g. outside a lock, so
    /// that signature checks do not serialize), under revocation `epoch`.
    /// `text` must be the text that was verified.
    pub fn insert(&mut self, text: &str, chain: Arc<VerifiedChain>, epoch: u64) {
        let text = text.trim();
        self.insert_keyed(text, key(text), chain, epoch);
    }

    /// The cached chain `text` extends by one link, if any may be served:
    /// verify the last link with [`VerifiedChain::extend`].
    pub fn prefix_of(&self, text: &str, now: u64, epoch: u64) -> Option<Arc<VerifiedChain>> {
        let (prefix, _) = text.trim().rsplit_once(CHAIN_SEPARATOR)?;
        self.lookup(prefix, &key(prefix), now, epoch)
    }

    fn insert_keyed(&mut self, text: &str, k: Key, chain: Arc<VerifiedChain>, epoch: u64) {
        if self.capacity == 0 {
            return;
        }
        let exp = chain.leaf_claims().exp;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&k) {
            while let Some(old) = self.order.pop_front() {
                if self.entries.remove(&old).is_some() {
                    break;
                }
            }
        }
        let entry = Entry {
            text: text.into(),
            chain,
            exp,
            epoch,
        };
        if self.entries.insert(k, entry).is_none() {
            self.order.push_back(k);
        }
    }

    /// Returns the verified chain for `text`: from the cache when it may be
    /// served, by verifying only the last link when its prefix is cached,
    /// and by full verification otherwise. The result is cached under
    /// `epoch`; revocation of any `jti` in it remains the caller's check.
    pub fn verify(
        &mut self,
        text: &str,
        jwks: &Jwks,
        opts: &VerifyOptions,
        epoch: u64,
    ) -> Result<Arc<VerifiedChain>, ChainError> {
        let text = text.trim();
        let k = key(text);
        if let Some(hit) = self.lookup(text, &k, opts.now, epoch) {
            return Ok(hit);
        }
        let verified = match text.rsplit_once(CHAIN_SEPARATOR) {
            Some((prefix, last)) => match self.lookup(prefix, &key(prefix), opts.now, epoch) {
                Some(parent) => {
                    let index = parent.links().len();
                    let link = UnverifiedRemit::parse(last).map_err(|e| ChainError::Link {
                        index,
                        error: e.into(),
                    })?;
                    parent.extend(link, opts)?
                }
                None => VerifiedChain::verify(UnverifiedChain::parse(text)?, jwks, opts)?,
            },
            None => VerifiedChain::verify(UnverifiedChain::parse(text)?, jwks, opts)?,
        };
        let verified = Arc::new(verified);
        self.insert_keyed(text, k, Arc::clone(&verified), epoch);
        Ok(verified)
    }
}
