//! `Idempotency-Key`: a request retried with the same key (by the same
//! token, to the same instance and topic, with the same body) within the
//! window gets the first answer again, and nothing is written twice. A
//! retry that arrives while the first is still in progress waits for it.
//! Only answers after which events were stored are kept (202, 200, 504,
//! 422); a refusal that stored nothing (400, 413, 503…) is forgotten, so
//! the retry is tried afresh. Kept in memory: a restart forgets the keys
//! (the spool's record ids still let consumers drop repeats).

use std::collections::HashMap;
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

/// The keys seen within the window, at most `max` of them.
#[derive(Debug)]
pub struct Replays {
    window: Duration,
    max: usize,
    map: Mutex<HashMap<String, Entry>>,
}

impl Replays {
    pub fn new(window: Duration, max: usize) -> Replays {
        Replays {
            window,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Claim `key` (already scoped to the token and the path) for a body
    /// whose SHA-256 is `body_hash`, at `now`.
    pub fn claim(&self, key: &str, body_hash: [u8; 32], now: Instant) -> Claim {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(key) {
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
            _ => {}
        }
        if m.len() >= self.max {
            let window = self.window;
            m.retain(|_, e| {
                matches!(e, Entry::Done { at, .. } if now.duration_since(*at) < window)
                    || matches!(e, Entry::InProgress(..))
            });
        }
        if m.len() >= self.max {
            // Still full of live keys: drop the oldest answer.
            let oldest = m
                .iter()
                .filter_map(|(k, e)| match e {
                    Entry::Done { at, .. } => Some((*at, k.clone())),
                    Entry::InProgress(..) => None,
                })
                .min();
            if let Some((_, k)) = oldest {
                m.remove(&k);
            }
        }
        m.insert(
            key.to_string(),
            Entry::InProgress(Arc::new(Notify::new()), body_hash),
        );
        Claim::Proceed
    }

    /// The first try of `key` answered: keep the answer (`Some`) or forget
    /// the key (`None`: nothing was stored), and wake the retries waiting.
    pub fn finish(&self, key: &str, answer: Option<Stored>, now: Instant) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let notify = match m.remove(key) {
            Some(Entry::InProgress(n, body_hash)) => {
                if let Some(answer) = answer {
                    m.insert(
                        key.to_string(),
                        Entry::Done {
                            at: now,
                            body_hash,
                            answer,
                        },
                    );
                }
                Some(n)
            }
            other => {
                if let Some(e) = other {
                    m.insert(key.to_string(), e);
                }
                None
            }
        };
        drop(m);
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
        let r = Replays::new(Duration::from_secs(60), 10);
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
        let r = Replays::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        assert!(matches!(r.claim("k", [1; 32], t0), Claim::Proceed));
        r.finish("k", None, t0);
        assert!(matches!(r.claim("k", [1; 32], t0), Claim::Proceed));
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = Replays::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        for i in 0..10 {
            let k = format!("k{i}");
            assert!(matches!(r.claim(&k, [0; 32], t0), Claim::Proceed));
            r.finish(&k, Some(answer(202)), t0 + Duration::from_millis(i));
        }
        assert!(r.map.lock().unwrap().len() <= 3);
        assert!(
            matches!(r.claim("k9", [0; 32], t0), Claim::Replay(_)),
            "the newest kept"
        );
    }
}
