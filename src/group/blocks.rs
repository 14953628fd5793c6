//! Blocks between users: who refuses data and media from whom.
//!
//! A block is one-sided when set (`a` blocks `b`) and works both ways: nothing flows from
//! `a` to `b` or from `b` to `a` while either blocks the other. Blocks name client ids, not
//! memberships, and are kept for the server's lifetime (as janus.plugin.sfu does), so a
//! user who reconnects with the same id is still blocked. The numbers are bounded so that
//! no client can make the server's memory grow without end.

use std::collections::{HashMap, HashSet};

use super::name::ClientId;

/// Users one client may block.
pub const MAX_BLOCKS_PER_USER: usize = 1024;
/// Blocks the server keeps in all.
pub const MAX_BLOCKS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many blocks")]
pub struct TooManyBlocks;

#[derive(Debug, Default)]
pub struct Blocks {
    /// Blocker to the users it blocks.
    by: HashMap<ClientId, HashSet<ClientId>>,
    total: usize,
}

impl Blocks {
    /// `blocker` blocks `target`. Returns whether this is new.
    pub fn block(&mut self, blocker: &ClientId, target: &ClientId) -> Result<bool, TooManyBlocks> {
        let set = self.by.entry(blocker.clone()).or_default();
        if set.contains(target) {
            return Ok(false);
        }
        if set.len() >= MAX_BLOCKS_PER_USER || self.total >= MAX_BLOCKS {
            if set.is_empty() {
                self.by.remove(blocker);
            }
            return Err(TooManyBlocks);
        }
        set.insert(target.clone());
        self.total += 1;
        Ok(true)
    }

    /// `blocker` lifts its block of `target`. Returns whether there was one.
    pub fn unblock(&mut self, blocker: &ClientId, target: &ClientId) -> bool {
        let Some(set) = self.by.get_mut(blocker) else {
            return false;
        };
        let removed = set.remove(target);
        if set.is_empty() {
            self.by.remove(blocker);
        }
        if removed {
            self.total -= 1;
        }
        removed
    }

    /// Whether either blocks the other.
    pub fn between(&self, a: &ClientId, b: &ClientId) -> bool {
        let blocks = |x: &ClientId, y: &ClientId| self.by.get(x).is_some_and(|s| s.contains(y));
        blocks(a, b) || blocks(b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::new(s).unwrap()
    }

    #[test]
    fn blocks_work_both_ways_until_both_are_lifted() {
        let mut blocks = Blocks::default();
        let (a, b, c) = (id("a"), id("b"), id("c"));
        assert_eq!(blocks.block(&a, &b), Ok(true));
        assert_eq!(
            blocks.block(&a, &b),
            Ok(false),
            "blocking twice changes nothing"
        );
        assert!(blocks.between(&a, &b));
        assert!(blocks.between(&b, &a));
        assert!(!blocks.between(&a, &c));
        assert_eq!(blocks.block(&b, &a), Ok(true));
        assert!(blocks.unblock(&a, &b));
        assert!(blocks.between(&a, &b), "b still blocks a");
        assert!(blocks.unblock(&b, &a));
        assert!(!blocks.between(&a, &b));
        assert!(!blocks.unblock(&b, &a));
        assert_eq!(blocks.total, 0);
        assert!(blocks.by.is_empty(), "nothing left behind");
    }

    #[test]
    fn one_user_cannot_block_without_end() {
        let mut blocks = Blocks::default();
        let a = id("a");
        for n in 0..MAX_BLOCKS_PER_USER {
            assert_eq!(blocks.block(&a, &id(&n.to_string())), Ok(true));
        }
        assert_eq!(blocks.block(&a, &id("one-more")), Err(TooManyBlocks));
        assert!(blocks.unblock(&a, &id("0")));
        assert_eq!(blocks.block(&a, &id("one-more")), Ok(true));
    }
}
