//! What every call reads from the store and rarely changes, kept in memory
//! for a short time (`[gateway] cache_ttl_ms`, 1 s by default) so that an
//! allowed call makes one store round trip (its counters), not four.
//!
//! - **Registry**: a server's row and its blessed tools (with their pinned
//!   description hashes). A change made through this process (bless, tool
//!   settings, a new tool) is seen by the next call: every registry change
//!   rebuilds the policy ([`AppState::registry_changed`]) and forgets these
//!   entries. A change made through another replica is seen within the TTL
//!   (its policy entities within the policy refresh, as before).
//!
//! [`AppState::registry_changed`]: remit_runtime::state::AppState::registry_changed
//! - **Usage**: the leaf remit's steps used and its agent's risk spent in
//!   the current window, which the policy sees as `steps_used` and
//!   `risk_used`. After every counted call the entry holds the store's own
//!   answer, so on one replica the policy sees exact counts; calls through
//!   other replicas show up within the TTL. The limits themselves are
//!   never decided from this copy: the store's atomic counters refuse a
//!   call past `max_steps` or past the risk budget whatever the policy saw.
//!
//! A TTL of 0 turns caching off (every call reads the store).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::pins::pinned_description_hash;
use remit_store::{CallUsage, Id, McpServer, Store, StoreError, Tool, Usage};

/// Entries one cache holds at most before it forgets what has expired (and,
/// if that is not enough, everything).
const CAPACITY: usize = 100_000;

/// A bounded map whose entries are trusted for a TTL given at lookup.
#[derive(Debug)]
struct TtlMap<K, V> {
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value stored less than `ttl` ago.
    fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Changes a live entry in place (its age unchanged).
    fn update(&self, key: &K, change: impl FnOnce(&mut V)) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, value)) = entries.get_mut(key) {
            change(value);
        }
    }

    fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A server's blessed tools, and the server-wide hash of their pinned
/// descriptions that the policy compares with its own (computed once per
/// read of the registry, not per call).
#[derive(Debug)]
pub struct BlessedTools {
    /// The tools with their pins, risk and clearance.
    pub tools: Vec<Tool>,
    /// [`pinned_description_hash`] of `tools`.
    pub description_hash: String,
}

impl BlessedTools {
    /// Hashes the pins of `tools`.
    pub fn new(tools: Vec<Tool>) -> Self {
        let description_hash = pinned_description_hash(&tools);
        Self {
            tools,
            description_hash,
        }
    }
}

/// The gateway's short-lived copies of registry rows and usage counters.
#[derive(Debug)]
pub struct CallCache {
    servers: TtlMap<String, McpServer>,
    tools: TtlMap<String, Arc<BlessedTools>>,
    usage: TtlMap<(String, i64), Usage>,
}

impl Default for CallCache {
    fn default() -> Self {
        Self::new()
    }
}

impl CallCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            servers: TtlMap::new(),
            tools: TtlMap::new(),
            usage: TtlMap::new(),
        }
    }

    /// The server's registry row.
    pub async fn server<S: Store>(
        &self,
        store: &S,
        id: &Id,
        ttl: Duration,
    ) -> Result<McpServer, StoreError> {
        if let Some(found) = self.servers.get(&id.to_string(), ttl) {
            return Ok(found);
        }
        let found = store.server(id).await?;
        self.servers.put(id.to_string(), found.clone(), ttl);
        Ok(found)
    }

    /// The server's blessed tools with their pins.
    pub async fn tools<S: Store>(
        &self,
        store: &S,
        server: &Id,
        ttl: Duration,
    ) -> Result<Arc<BlessedTools>, StoreError> {
        if let Some(found) = self.tools.get(&server.to_string(), ttl) {
            return Ok(found);
        }
        let found = Arc::new(BlessedTools::new(store.tools(server).await?));
        self.tools.put(server.to_string(), Arc::clone(&found), ttl);
        Ok(found)
    }

    /// Forgets every server row and tool list: the next call reads the
    /// store. Called after every registry change made through this process.
    pub fn forget_registry(&self) {
        self.servers.clear();
        self.tools.clear();
    }

    /// What the leaf remit `jti` and its `agent` have used in the risk
    /// window starting at `window_start`.
    pub async fn usage<S: Store>(
        &self,
        store: &S,
        jti: &Id,
        agent: &Id,
        window_start: i64,
        ttl: Duration,
    ) -> Result<Usage, StoreError> {
        let key = (jti.to_string(), window_start);
        if let Some(found) = self.usage.get(&key, ttl) {
            return Ok(found);
        }
        let found = store.usage(jti, agent, window_start).await?;
        self.usage.put(key, found, ttl);
        Ok(found)
    }

    /// Records what the store answered when it counted a call.
    pub fn counted(&self, jti: &Id, window_start: i64, counted: CallUsage, ttl: Duration) {
        let key = (jti.to_string(), window_start);
        match counted.risk_spent {
            Some(risk_spent) => self.usage.put(
                key,
                Usage {
                    steps_used: counted.steps_used,
                    risk_spent,
                },
                ttl,
            ),
            // The risk counter was not read: keep the entry's risk and age.
            None => self
                .usage
                .update(&key, |u| u.steps_used = counted.steps_used),
        }
    }

    /// Forgets everything (a new configuration).
    pub fn clear(&self) {
        self.servers.clear();
        self.tools.clear();
        self.usage.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn an_entry_older_than_the_ttl_is_not_trusted() {
        let map = TtlMap::new();
        map.put("k", 1, TTL);
        assert_eq!(map.get(&"k", TTL), Some(1));
        assert_eq!(map.get(&"k", Duration::ZERO), None);
    }

    #[test]
    fn a_zero_ttl_stores_nothing() {
        let map = TtlMap::new();
        map.put("k", 1, Duration::ZERO);
        assert_eq!(map.get(&"k", TTL), None);
    }

    #[test]
    fn a_full_map_forgets_instead_of_growing() {
        let map = TtlMap::new();
        for i in 0..CAPACITY {
            map.put(i, i, TTL);
        }
        map.put(CAPACITY, CAPACITY, TTL);
        let len = map.entries.read().unwrap().len();
        assert!(len <= CAPACITY, "{len}");
        assert_eq!(map.get(&CAPACITY, TTL), Some(CAPACITY));
    }

    #[test]
    fn a_counted_call_without_risk_keeps_the_known_spend() {
        let cache = CallCache::new();
        let jti = Id::parse("jti", "r1").unwrap();
        cache.usage.put(
            ("r1".into(), 0),
            Usage {
                steps_used: 1,
                risk_spent: 7,
            },
            TTL,
        );
        let counted = CallUsage {
            steps_used: 2,
            risk_spent: None,
        };
        cache.counted(&jti, 0, counted, TTL);
        let seen = cache.usage.get(&("r1".into(), 0), TTL).unwrap();
        assert_eq!((seen.steps_used, seen.risk_spent), (2, 7));
        let spent = CallUsage {
            steps_used: 3,
            risk_spent: Some(9),
        };
        cache.counted(&jti, 0, spent, TTL);
        let seen = cache.usage.get(&("r1".into(), 0), TTL).unwrap();
        assert_eq!((seen.steps_used, seen.risk_spent), (3, 9));
    }
}
