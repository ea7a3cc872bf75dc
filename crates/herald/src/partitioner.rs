//! Choosing a partition.
//!
//! Keyed records: murmur2 of the key, as the Java client's
//! `Utils.murmur2` and librdkafka's `murmur2_random` compute it, made positive
//! with `& 0x7fffffff`, modulo the partition count. The same key lands on the
//! same partition whichever of the three clients wrote it.
//!
//! Keyless records: the uniform sticky partitioner (KIP-480, KIP-794). A topic
//! has one "sticky" partition that takes every keyless record until its batch
//! is full or sent; then a new sticky partition is picked at random among the
//! others. Whole batches go to one partition, so keyless traffic makes large
//! batches instead of one tiny batch per partition.

use std::collections::HashMap;
use std::fmt::Debug;

use rand::Rng;

/// Picks a partition for a record. Return `None` to let the built-in sticky
/// partitioner place it (what the default does for keyless records).
pub trait Partitioner: Send + Sync + Debug {
    /// `partitions` is the topic's current partition count (at least 1).
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partitions: usize,
    ) -> Option<i32>;
}

/// The default: murmur2 for keyed records, sticky for keyless ones.
#[derive(Debug, Default, Clone)]
pub struct DefaultPartitioner {
    /// `partitioner.ignore.keys`: treat keyed records as keyless.
    pub ignore_keys: bool,
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        _topic: &str,
        key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partitions: usize,
    ) -> Option<i32> {
        match key {
            Some(k) if !self.ignore_keys => Some(partition_for_key(k, partitions)),
            _ => None,
        }
    }
}

/// The partition the Java client and librdkafka's `murmur2_random` pick for a key.
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    partition_for_hash(murmur2(key), partitions)
}

/// [`partition_for_key`] from the key's murmur2 hash.
pub(crate) fn partition_for_hash(hash: u32, partitions: usize) -> i32 {
    ((hash & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

/// Kafka's murmur2 (seed 0x9747b28c), bit for bit as `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    // Java sign-extends each byte before masking with 0xff: same bits.
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The sticky partition of each topic; driven by the accumulator, which
/// knows when a batch is full or sent.
///
/// Only partitions with a known leader are chosen, as the Java client
/// (since 2.4) and librdkafka do: a keyless record placed on a partition
/// whose leader is down would wait there until its delivery timeout while
/// healthy partitions sit idle. `available` lists them; empty means none
/// is known, and any partition will do.
#[derive(Debug, Default)]
pub(crate) struct StickyPartitions {
    current: HashMap<String, i32, rustc_hash::FxBuildHasher>,
}

impl StickyPartitions {
    /// The topic's sticky partition, picking one if it has none, or if the
    /// partition count shrank under it, or its leader went away.
    pub(crate) fn current(&mut self, topic: &str, partitions: usize, available: &[i32]) -> i32 {
        if let Some(&p) = self.current.get(topic) {
            if (p as usize) < partitions && (available.is_empty() || available.contains(&p)) {
                return p;
            }
        }
        let p = pick(partitions, available, None);
        self.current.insert(topic.to_string(), p);
        p
    }

    /// The sticky partition's batch is full or was sent: move to another
    /// partition, chosen uniformly among the rest.
    pub(crate) fn next(
        &mut self,
        topic: &str,
        from: i32,
        partitions: usize,
        available: &[i32],
    ) -> i32 {
        let p = pick(partitions, available, Some(from));
        self.current.insert(topic.to_string(), p);
        p
    }

    /// Forget idle topics.
    pub(crate) fn forget(&mut self, topic: &str) {
        self.current.remove(topic);
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.current.shrink_to_fit();
    }
}

/// A partition uniformly at random among the available ones (all of
/// `0..partitions` if none is known), other than `except` when there is
/// another.
fn pick(partitions: usize, available: &[i32], except: Option<i32>) -> i32 {
    let mut rng = rand::thread_rng();
    let all = partitions.max(1);
    let n = if available.is_empty() {
        all
    } else {
        available.len()
    };
    let at = |i: usize| -> i32 {
        if available.is_empty() {
            i as i32
        } else {
            available[i]
        }
    };
    let skip = except.and_then(|e| (0..n).position(|i| at(i) == e));
    match skip {
        Some(s) if n > 1 => {
            let r = rng.gen_range(0..n - 1);
            at(if r >= s { r + 1 } else { r })
        }
        _ => at(rng.gen_range(0..n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the Java client's `UtilsTest.testMurmur2` and Kafka's
    /// `DefaultPartitionerTest` (key "foo"-style inputs).
    #[test]
    fn murmur2_matches_java() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (input, want) in cases {
            assert_eq!(
                murmur2(input) as i32,
                *want,
                "{:?}",
                std::str::from_utf8(input)
            );
        }
    }

    #[test]
    fn keyed_partition_is_positive_modulo() {
        // toPositive(murmur2("foobar")) % 7
        let want = ((-790332482i32 as u32 & 0x7fff_ffff) % 7) as i32;
        assert_eq!(partition_for_key(b"foobar", 7), want);
        for n in 1..50 {
            let p = partition_for_key(b"a-little-bit-long-string", n);
            assert!((0..n as i32).contains(&p));
        }
    }

    #[test]
    fn sticky_moves_to_a_different_partition() {
        let mut s = StickyPartitions::default();
        let first = s.current("t", 4, &[]);
        assert_eq!(s.current("t", 4, &[]), first, "sticks until told to move");
        let mut seen = std::collections::HashSet::new();
        let mut p = first;
        for _ in 0..200 {
            let q = s.next("t", p, 4, &[]);
            assert_ne!(q, p);
            seen.insert(q);
            p = q;
        }
        assert_eq!(seen.len(), 4, "every partition is used");
        assert_eq!(s.next("t", 0, 1, &[]), 0);
    }

    /// Only partitions with a leader are chosen; a sticky partition whose
    /// leader went away is left at once.
    #[test]
    fn sticky_chooses_only_available_partitions() {
        let mut s = StickyPartitions::default();
        let available = [0, 2, 4];
        let mut seen = std::collections::HashSet::new();
        let mut p = s.current("t", 6, &available);
        for _ in 0..300 {
            assert!(available.contains(&p), "{p}");
            seen.insert(p);
            p = s.next("t", p, 6, &available);
        }
        assert_eq!(seen.len(), 3);
        // Partition 4 loses its leader: the next record moves.
        let mut s = StickyPartitions::default();
        while s.current("t", 6, &available) != 4 {
            s.forget("t");
        }
        assert_ne!(s.current("t", 6, &[0, 2]), 4);
        // Only one available: it is chosen again, there is no other.
        assert_eq!(s.next("t", 2, 6, &[2]), 2);
    }
}
