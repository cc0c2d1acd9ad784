//! One sink's queue: bounded (the oldest waiting event is dropped, and
//! counted, when it is full), first in first out (events reach a sink in
//! the audit trail's order), and de-duplicated by audit sequence number
//! (the same event reaches the same sink once).

use crate::event::Notice;
use std::{
    collections::{HashSet, VecDeque},
    sync::{Mutex, PoisonError},
};
use tokio::sync::Notify;

/// How many sequence numbers a queue remembers for de-duplication.
pub const REMEMBERED: usize = 4096;

/// What [`SinkQueue::push`] did.
#[derive(Debug, PartialEq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Already queued or sent: ignored.
    Duplicate,
    /// Queued, and the oldest waiting event was dropped to make room.
    DroppedOldest(Box<Notice>),
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Notice>,
    seen: HashSet<u64>,
    seen_order: VecDeque<u64>,
}

/// A sink's bounded, ordered, de-duplicating queue.
#[derive(Debug)]
pub struct SinkQueue {
    capacity: usize,
    state: Mutex<State>,
    wake: Notify,
}

impl SinkQueue {
    /// An empty queue of at most `capacity` waiting events (at least 1).
    pub fn new(capacity: usize) -> SinkQueue {
        SinkQueue {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `notice` at the back; never waits (the controller's side never
    /// blocks on a sink).
    pub fn push(&self, notice: Notice) -> Pushed {
        let mut s = self.lock();
        let seq = notice.record.seq;
        if !s.seen.insert(seq) {
            return Pushed::Duplicate;
        }
        s.seen_order.push_back(seq);
        if s.seen_order.len() > REMEMBERED
            && let Some(old) = s.seen_order.pop_front()
        {
            s.seen.remove(&old);
        }
        let dropped = if s.waiting.len() >= self.capacity {
            s.waiting.pop_front()
        } else {
            None
        };
        s.waiting.push_back(notice);
        drop(s);
        self.wake.notify_one();
        match dropped {
            Some(old) => Pushed::DroppedOldest(Box::new(old)),
            None => Pushed::Queued,
        }
    }

    /// The oldest waiting event, waiting for one if there is none.
    pub async fn pop(&self) -> Notice {
        loop {
            if let Some(n) = self.lock().waiting.pop_front() {
                return n;
            }
            self.wake.notified().await;
        }
    }

    /// Events waiting (not counting the one being delivered).
    pub fn depth(&self) -> usize {
        self.lock().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{entry, record};
    use tidegate_audit::{Action, Phase};

    fn notice(seq: u64) -> Notice {
        Notice::of(record(seq, Phase::Intent, entry(Action::RolloutStart))).expect("event")
    }

    #[tokio::test]
    async fn the_queue_is_ordered_bounded_drop_oldest_and_deduplicated() {
        let q = SinkQueue::new(2);
        assert_eq!(q.push(notice(1)), Pushed::Queued);
        assert_eq!(q.push(notice(1)), Pushed::Duplicate);
        assert_eq!(q.push(notice(2)), Pushed::Queued);
        match q.push(notice(3)) {
            Pushed::DroppedOldest(n) => assert_eq!(n.record.seq, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.depth(), 2);
        assert_eq!(q.pop().await.record.seq, 2);
        assert_eq!(q.pop().await.record.seq, 3);
        // Sent once: a second copy of 2 is still a duplicate.
        assert_eq!(q.push(notice(2)), Pushed::Duplicate);
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn pop_waits_for_a_push() {
        let q = std::sync::Arc::new(SinkQueue::new(4));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await.record.seq }
        });
        tokio::task::yield_now().await;
        q.push(notice(5));
        assert_eq!(waiter.await.expect("joined"), 5);
    }

    #[test]
    fn only_the_last_sequence_numbers_are_remembered() {
        let q = SinkQueue::new(1);
        for seq in 1..=(REMEMBERED as u64 + 1) {
            q.push(notice(seq));
        }
        assert_eq!(
            q.push(notice(1)),
            Pushed::DroppedOldest(Box::new(notice(REMEMBERED as u64 + 1)))
        );
        assert_eq!(q.push(notice(REMEMBERED as u64)), Pushed::Duplicate);
    }
}
