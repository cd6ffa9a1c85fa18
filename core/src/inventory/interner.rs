//! One shared copy of equal values: pod shapes here, the controller's names, label sets and
//! claims.

use std::sync::Arc;

use crate::object::Name;

/// One shared copy of each equal value in use. Values no one else holds any more are forgotten
/// whenever the set has doubled since the last sweep, so it stays within twice the values in
/// use. Pod shapes here; the controller's names, label sets and claims too.
#[derive(Debug)]
pub struct Interner<H> {
    pub(in crate::inventory) set: std::collections::HashSet<H>,
    swept_at: usize,
}

/// A shared handle an [`Interner`] can hold: it knows whether anyone else holds it.
pub trait Shared: Clone + std::hash::Hash + Eq {
    fn is_shared(&self) -> bool;
}

impl<T: ?Sized + std::hash::Hash + Eq> Shared for Arc<T> {
    fn is_shared(&self) -> bool {
        Arc::strong_count(self) > 1
    }
}

impl Shared for Name {
    fn is_shared(&self) -> bool {
        Name::is_shared(self)
    }
}

impl<H> Default for Interner<H> {
    fn default() -> Self {
        Interner {
            set: Default::default(),
            swept_at: 0,
        }
    }
}

impl<H: Shared> Interner<H> {
    /// The shared copy of `value`, made by `make` when there is none.
    pub fn get_or_insert_with<Q>(&mut self, value: &Q, make: impl FnOnce() -> H) -> H
    where
        H: std::borrow::Borrow<Q>,
        Q: ?Sized + std::hash::Hash + Eq,
    {
        if let Some(s) = self.set.get(value) {
            return s.clone();
        }
        let new = make();
        self.set.insert(new.clone());
        if self.set.len() > 2 * self.swept_at.max(512) {
            self.set.retain(Shared::is_shared);
            self.swept_at = self.set.len();
        }
        new
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
