//! A B-tree map that keeps its nodes nearly full.
//!
//! `BTreeMap` splits a full node in the middle, so keys added in order (a list, a burst of
//! creations: the executor writes 30,000 objects in key order at 10,000 namespaces) leave every
//! node about half full, and the map takes twice the memory its entries need. Built from sorted
//! entries, its nodes are full. So a `Packed` map is rebuilt whenever as many keys have been added
//! one by one as half its size: amortised, each insert moves at most two entries, and the map's
//! nodes stay between half and entirely full instead of staying half full.

use std::collections::BTreeMap;

/// Below this size the map is never rebuilt: it is small anyway.
const MIN_REBUILD: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Packed<K, V> {
    map: BTreeMap<K, V>,
    /// Keys added one by one since the map was last built from sorted entries.
    added: usize,
}

impl<K, V> Default for Packed<K, V> {
    fn default() -> Self {
        Packed {
            map: BTreeMap::new(),
            added: 0,
        }
    }
}

impl<K, V> std::ops::Deref for Packed<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

/// The same entries in full nodes. `collect` would first move every entry into a vector and
/// sort it (at 100,000 pods, 4 MiB more at the moment of the rebuild); `append` of two maps
/// builds the new tree bottom-up from both in order and frees the old nodes as it goes. That is
/// how the standard library implements it, not a promise: were it to change, the map would
/// stay correct, only less compact.
fn packed<K: Ord, V>(mut map: BTreeMap<K, V>) -> BTreeMap<K, V> {
    let Some((k, v)) = map.pop_first() else {
        return map;
    };
    let mut out = BTreeMap::new();
    out.insert(k, v);
    out.append(&mut map);
    out
}

impl<K: Ord, V> Packed<K, V> {
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.map.insert(key, value);
        if old.is_none() {
            self.added += 1;
            if self.added >= MIN_REBUILD && self.added > self.map.len() / 2 {
                self.rebuild();
            }
        }
        old
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// The entries, leaving the map empty.
    pub fn take(&mut self) -> BTreeMap<K, V> {
        self.added = 0;
        std::mem::take(&mut self.map)
    }

    /// Rebuilds now if any key was added one by one since the last build (the end of a list).
    pub fn compact(&mut self) {
        if self.added > 0 && self.map.len() >= MIN_REBUILD {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.map = packed(std::mem::take(&mut self.map));
        self.added = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u8),
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..2_000, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
            1 => (0u16..2_000).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Whatever the rebuilds, it holds what a plain map holds and answers the same.
        #[test]
        fn behaves_like_a_btree_map(ops in proptest::collection::vec(op(), 0..3_000)) {
            let mut packed = Packed::default();
            let mut plain = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(packed.insert(k, v), plain.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(packed.remove(&k), plain.remove(&k)),
                }
            }
            prop_assert_eq!(&*packed, &plain);
        }
    }

    #[test]
    fn keys_added_in_order_trigger_rebuilds_and_replacements_do_not() {
        let mut m = Packed::default();
        for k in 0..MIN_REBUILD - 1 {
            m.insert(k, 0);
        }
        assert_eq!(m.added, MIN_REBUILD - 1);
        m.insert(MIN_REBUILD - 1, 0);
        assert_eq!(m.added, 0, "rebuilt at {MIN_REBUILD} keys");
        // Replacing a value adds no key.
        for k in 0..MIN_REBUILD {
            m.insert(k, 1);
        }
        assert_eq!(m.added, 0);
        // The next rebuild comes when more than half the keys were added since.
        for k in MIN_REBUILD..MIN_REBUILD * 2 {
            m.insert(k, 0);
        }
        assert_eq!(m.added, MIN_REBUILD);
        m.insert(MIN_REBUILD * 2, 0);
        assert_eq!(m.added, 0);
        assert_eq!(m.len(), 2 * MIN_REBUILD + 1);
        let expect: BTreeMap<usize, i32> = (0..=MIN_REBUILD * 2)
            .map(|k| (k, i32::from(k < MIN_REBUILD)))
            .collect();
        assert_eq!(*m, expect);
        m.insert(MIN_REBUILD * 3, 0);
        assert_eq!(m.added, 1);
        m.compact();
        assert_eq!(m.added, 0, "compact rebuilds after any addition");
        assert_eq!(m.len(), 2 * MIN_REBUILD + 2);
        m.remove(&(MIN_REBUILD * 3));
        assert_eq!(m.take().len(), 2 * MIN_REBUILD + 1);
        assert!(m.is_empty());
    }
}
