//! `Idempotency-Key`: a request retried with the same key (by the same
//! token, to the same instance and topic, with the same body) within the
//! window gets the first answer again, and nothing is written twice. A
//! retry that arrives while the first is still in progress waits for it.
//! Only answers after which events were stored are kept (202, 200, 504,
//! 422, or a 503 when forwarding stopped after storing them); a refusal that stored nothing (400, 413, 503…) is forgotten, so
//! the retry is tried afresh. Kept in memory: a restart forgets the keys
//! (the spool's record ids still let consumers drop repeats).
//!
//! Bounded by count and by the bytes of the answers kept (a `wait=true`
//! answer for a thousand events is ~100 kB): beyond either, the oldest
//! answers are forgotten first, in O(1) each (a queue in answer order).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug)]
enum Entry {
    InProgress(Arc<Notify>, [u8; 32]),
    Done {
        at: Instant,
        body_hash: [u8; 32],
        answer: Stored,
    },
}

/// What to do with a request carrying a key.
#[derive(Debug)]
pub enum Claim {
    /// First time (or the first try stored nothing): go on, then `finish`.
    Proceed,
    /// Answered before: send this again.
    Replay(Stored),
    /// The same key with another body: refuse (422).
    Mismatch,
    /// The first try is still running: wait, then ask again.
    Wait(Arc<Notify>),
}

/// The keys seen within the window: at most `max` answers and
/// `max_bytes` of them.
#[derive(Debug)]
pub struct Replays {
    window: Duration,
    max: usize,
    max_bytes: usize,
    map: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Answers in the order they were kept (so oldest first), with when.
    order: VecDeque<(Instant, String)>,
    /// Bytes of the answers kept.
    bytes: usize,
}

impl Stored {
    /// What an answer kept under `key` costs: the answer, and the key held
    /// twice (the table and the queue).
    fn size(&self, key: &str) -> usize {
        self.body.len() + self.content_type.len() + 2 * key.len() + 96
    }
}

impl Table {
    /// Forget answers, oldest first, while over a bound or expired.
    fn evict(&mut self, max: usize, max_bytes: usize, window: Duration, now: Instant) {
        while let Some((at, key)) = self.order.front() {
            let over = self.order.len() > max || self.bytes > max_bytes;
            if !over && now.duration_since(*at) < window {
                break;
            }
            let (at, key) = (*at, key.clone());
            self.order.pop_front();
            // The key may have been answered again since (a newer entry).
            if matches!(self.entries.get(&key), Some(Entry::Done { at: a, .. }) if *a == at) {
                if let Some(Entry::Done { answer, .. }) = self.entries.remove(&key) {
                    self.bytes -= answer.size(&key);
                }
            }
        }
    }
}

impl Replays {
    pub fn new(window: Duration, max: usize, max_bytes: usize) -> Replays {
        Replays {
            window,
            max,
            max_bytes,
            map: Mutex::new(Table::default()),
        }
    }

    /// Claim `key` (already scoped to the token and the path) for a body
    /// whose SHA-256 is `body_hash`, at `now`.
    pub fn claim(&self, key: &str, body_hash: [u8; 32], now: Instant) -> Claim {
        let mut t = self.map.lock().unwrap_or_else(|e| e.into_inner());
        t.evict(self.max, self.max_bytes, self.window, now);
        match t.entries.get(key) {
            Some(Entry::Done {
                at,
                body_hash: h,
                answer,
            }) if now.duration_since(*at) < self.window => {
                return if *h == body_hash {
                    Claim::Replay(answer.clone())
                } else {
                    Claim::Mismatch
                };
            }
            Some(Entry::InProgress(n, h)) => {
                return if *h == body_hash {
                    Claim::Wait(n.clone())
                } else {
                    Claim::Mismatch
                };
            }
            // An expired answer: forgotten now.
            Some(Entry::Done { answer, .. }) => {
                let size = answer.size(key);
                t.entries.remove(key);
                t.bytes -= size;
            }
            None => {}
        }
        t.entries.insert(
            key.to_string(),
            Entry::InProgress(Arc::new(Notify::new()), body_hash),
        );
        Claim::Proceed
    }

    /// The first try of `key` answered: keep the answer (`Some`) or forget
    /// the key (`None`: nothing was stored), and wake the retries waiting.
    pub fn finish(&self, key: &str, answer: Option<Stored>, now: Instant) {
        let mut t = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let notify = match t.entries.remove(key) {
            Some(Entry::InProgress(n, body_hash)) => {
                if let Some(answer) = answer {
                    t.bytes += answer.size(key);
                    t.order.push_back((now, key.to_string()));
                    t.entries.insert(
                        key.to_string(),
                        Entry::Done {
                            at: now,
                            body_hash,
                            answer,
                        },
                    );
                    t.evict(self.max, self.max_bytes, self.window, now);
                }
                Some(n)
            }
            other => {
                if let Some(e) = other {
                    t.entries.insert(key.to_string(), e);
                }
                None
            }
        };
        drop(t);
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Stored {
        Stored {
            status,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_retry_gets_the_first_answer_within_the_window_only() {
        let r = Replays::new(Duration::from_secs(60), 10, 1 << 20);
        let t0 = Instant::now();
        assert!(matches!(r.claim("k", [1; 32], t0), Claim::Proceed));
        assert!(matches!(r.claim("k", [1; 32], t0), Claim::Wait(_)));
        assert!(matches!(r.claim("k", [2; 32], t0), Claim::Mismatch));
        r.finish("k", Some(answer(202)), t0);
        assert!(
            matches!(r.claim("k", [1; 32], t0 + Duration::from_secs(59)), Claim::Replay(a) if a.status == 202)
        );
        assert!(matches!(r.claim("k", [2; 32], t0), Claim::Mismatch));
        assert!(matches!(
            r.claim("k", [1; 32], t0 + Duration::from_secs(61)),
            Claim::Proceed
        ));
    }

    #[test]
    fn a_refusal_that_stored_nothing_is_forgotten() {
        let r = Replays::new(Duration::from_secs(60), 10, 1 << 20);
        let t0 = Instant::now();
        assert!(matches!(r.claim("k", [1; 32], t0), Claim::Proceed));
        r.finish("k", None, t0);
        assert!(matches!(r.claim("k", [1; 32], t0), Claim::Proceed));
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = Replays::new(Duration::from_secs(60), 3, 1 << 20);
        let t0 = Instant::now();
        for i in 0..10 {
            let k = format!("k{i}");
            assert!(matches!(r.claim(&k, [0; 32], t0), Claim::Proceed));
            r.finish(&k, Some(answer(202)), t0 + Duration::from_millis(i));
        }
        assert_eq!(r.map.lock().unwrap().entries.len(), 3);
        assert!(
            matches!(r.claim("k9", [0; 32], t0), Claim::Replay(_)),
            "the newest kept"
        );
        assert!(
            matches!(r.claim("k6", [0; 32], t0), Claim::Proceed),
            "the oldest forgotten"
        );
    }

    #[test]
    fn the_answers_kept_are_bounded_in_bytes_too() {
        // Room for about three answers of 10 kB.
        let r = Replays::new(Duration::from_secs(60), 1000, 31_000);
        let t0 = Instant::now();
        let big = Stored {
            status: 200,
            content_type: "application/json".into(),
            body: vec![b'x'; 10_000],
        };
        for i in 0..10 {
            let k = format!("k{i}");
            assert!(matches!(r.claim(&k, [0; 32], t0), Claim::Proceed));
            r.finish(&k, Some(big.clone()), t0);
        }
        let t = r.map.lock().unwrap();
        assert_eq!(t.entries.len(), 3);
        assert!(t.bytes <= 31_000, "{}", t.bytes);
        drop(t);
        assert!(matches!(r.claim("k9", [0; 32], t0), Claim::Replay(_)));
        assert!(matches!(r.claim("k0", [0; 32], t0), Claim::Proceed));
    }
}
