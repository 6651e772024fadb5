//! A bounded admission queue with priority classes.
//!
//! Waiting requests are released by smooth weighted round robin over the
//! classes that have someone waiting (with the seed weights critical 100,
//! high 50, default 30, low 10, a waiting critical request is released ten
//! times as often as a low one, and no class starves). When the queue is full,
//! a newcomer displaces the newest waiter of the lowest class below its own;
//! if there is none, the newcomer is shed.

use std::collections::VecDeque;

/// What happened to a newcomer.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// Queued.
    Queued,
    /// Queued, displacing this waiter (shed it).
    Displaced(T),
    /// Not queued: shed the newcomer.
    Shed(T),
}

/// The queue. Classes are indexed from the most important (0) down.
#[derive(Debug)]
pub struct PriorityQueue<T> {
    capacity: usize,
    weights: Vec<u32>,
    current: Vec<i64>,
    queues: Vec<VecDeque<T>>,
    len: usize,
}

impl<T> PriorityQueue<T> {
    /// A queue for `capacity` waiters with one class per weight.
    pub fn new(capacity: usize, weights: Vec<u32>) -> Self {
        let n = weights.len().max(1);
        Self {
            capacity,
            weights,
            current: vec![0; n],
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
        }
    }

    /// Waiters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waiters of one class.
    pub fn len_of(&self, class: usize) -> usize {
        self.queues.get(class).map_or(0, VecDeque::len)
    }

    /// Adds a waiter of `class` (clamped to the lowest class).
    pub fn push(&mut self, class: usize, item: T) -> Admit<T> {
        let class = class.min(self.queues.len() - 1);
        if self.len < self.capacity {
            self.queues[class].push_back(item);
            self.len += 1;
            return Admit::Queued;
        }
        let victim = (class + 1..self.queues.len())
            .rev()
            .find(|c| !self.queues[*c].is_empty());
        match victim.and_then(|c| self.queues[c].pop_back()) {
            Some(displaced) => {
                self.queues[class].push_back(item);
                Admit::Displaced(displaced)
            }
            None => Admit::Shed(item),
        }
    }

    /// Releases the next waiter (smooth weighted round robin over waiting classes).
    pub fn pop(&mut self) -> Option<T> {
        let waiting: Vec<usize> = (0..self.queues.len())
            .filter(|c| !self.queues[*c].is_empty())
            .collect();
        if waiting.is_empty() {
            return None;
        }
        let total: i64 = waiting
            .iter()
            .map(|c| i64::from(self.weights.get(*c).copied().unwrap_or(1).max(1)))
            .sum();
        for c in &waiting {
            self.current[*c] += i64::from(self.weights.get(*c).copied().unwrap_or(1).max(1));
        }
        let best = *waiting
            .iter()
            .max_by_key(|c| (self.current[**c], std::cmp::Reverse(**c)))?;
        self.current[best] -= total;
        self.len -= 1;
        self.queues[best].pop_front()
    }

    /// Removes the first waiter matching `gone` (a client that disconnected).
    pub fn remove(&mut self, mut gone: impl FnMut(&T) -> bool) -> Option<T> {
        for q in &mut self.queues {
            if let Some(pos) = q.iter().position(&mut gone) {
                self.len -= 1;
                return q.remove(pos);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_queue(capacity: usize) -> PriorityQueue<(usize, u32)> {
        PriorityQueue::new(capacity, vec![100, 50, 30, 10])
    }

    #[test]
    fn release_order_follows_the_weights() {
        let mut q = seed_queue(1000);
        for class in 0..4 {
            for i in 0..100 {
                assert_eq!(q.push(class, (class, i)), Admit::Queued);
            }
        }
        let first: Vec<usize> = (0..190).map(|_| q.pop().unwrap().0).collect();
        let count = |c: usize| first.iter().filter(|x| **x == c).count();
        // 190 releases at weights 100:50:30:10.
        assert_eq!((count(0), count(1), count(2), count(3)), (100, 50, 30, 10));
        // Within a class, first in, first out.
        let mut q = seed_queue(10);
        q.push(2, (2, 1));
        q.push(2, (2, 2));
        assert_eq!(q.pop(), Some((2, 1)));
    }

    #[test]
    fn a_full_queue_sheds_the_lowest_class_first() {
        let mut q = seed_queue(3);
        q.push(3, (3, 1));
        q.push(2, (2, 1));
        q.push(3, (3, 2));
        // A critical request displaces the newest low one.
        assert_eq!(q.push(0, (0, 1)), Admit::Displaced((3, 2)));
        assert_eq!(q.push(0, (0, 2)), Admit::Displaced((3, 1)));
        assert_eq!(q.push(1, (1, 1)), Admit::Displaced((2, 1)));
        // Nobody below: a low newcomer is shed, and so is a critical one when only criticals wait.
        assert_eq!(q.push(3, (3, 3)), Admit::Shed((3, 3)));
        assert_eq!(q.push(1, (1, 2)), Admit::Shed((1, 2)));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn a_departed_waiter_leaves_at_once() {
        let mut q = seed_queue(10);
        q.push(1, (1, 7));
        q.push(1, (1, 8));
        assert_eq!(q.remove(|w| w.1 == 7), Some((1, 7)));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some((1, 8)));
        assert!(q.is_empty());
    }
}
