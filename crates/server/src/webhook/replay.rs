//! Remembering the delivery ids already handled, so a replayed delivery
//! does nothing. Memory is bounded: the oldest ids are forgotten first.

use std::collections::{HashSet, VecDeque};

/// How many delivery ids are remembered.
pub const REMEMBERED: usize = 4096;

/// The longest delivery id accepted (GitHub's and GitLab's are UUIDs).
pub const MAX_ID_LEN: usize = 128;

/// The delivery ids seen most recently, at most `capacity`.
#[derive(Debug)]
pub struct Deliveries {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Deliveries {
    /// Remembers at most `capacity` ids.
    pub fn new(capacity: usize) -> Deliveries {
        Deliveries {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True the first time `id` is seen (and remembers it); false for a replay.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_recognised_and_memory_stays_bounded() {
        let mut d = Deliveries::new(3);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        for id in ["b", "c", "d"] {
            assert!(d.first_time(id));
        }
        assert_eq!(d.len(), 3);
        // "a" was forgotten (the oldest); "d" is still remembered.
        assert!(!d.first_time("d"));
        assert!(d.first_time("a"));
        assert_eq!(d.len(), 3);
    }
}
