//! The Produce request frame, written in one pass into one buffer of the
//! exact size, with each batch's records written in place.
//!
//! Why not `kafka_protocol`'s `ProduceRequest` here (it encodes every other
//! request): it takes each batch as finished bytes and copies them into the
//! request. That meant a buffer per batch, written and then copied, on the
//! one path every record takes; the profile (BENCHMARKS.md "Profiling")
//! showed the copy and the allocations at about a tenth of the client's
//! instructions. The frame itself is small: versions 3 to 8 use the classic
//! encoding, 9 the flexible one (compact lengths, empty tagged fields). A
//! unit test checks it byte for byte against `kafka_protocol` for every
//! version herald sends.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::ProducerBatch;
use crate::record_batch::{encoded_len, write_batch};

/// Produce's API key.
const API_KEY: i16 = 0;
/// The first flexible version (compact lengths and tagged fields).
const FIRST_FLEXIBLE: i16 = 9;

fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Writes lengths and counts the way the version asks.
#[derive(Clone, Copy)]
struct Form {
    flexible: bool,
}

impl Form {
    fn array_len(self, n: usize) -> usize {
        if self.flexible {
            uvarint_len(n as u64 + 1)
        } else {
            4
        }
    }
    fn put_array_len(self, buf: &mut BytesMut, n: usize) {
        if self.flexible {
            put_uvarint(buf, n as u64 + 1);
        } else {
            buf.put_i32(n as i32);
        }
    }
    fn string_len(self, s: &str) -> usize {
        if self.flexible {
            uvarint_len(s.len() as u64 + 1) + s.len()
        } else {
            2 + s.len()
        }
    }
    fn put_string(self, buf: &mut BytesMut, s: &str) {
        if self.flexible {
            put_uvarint(buf, s.len() as u64 + 1);
        } else {
            buf.put_i16(s.len() as i16);
        }
        buf.put_slice(s.as_bytes());
    }
    /// Empty tagged fields: one zero byte in flexible versions.
    fn tags_len(self) -> usize {
        usize::from(self.flexible)
    }
    fn put_tags(self, buf: &mut BytesMut) {
        if self.flexible {
            buf.put_u8(0);
        }
    }
}

/// The batches grouped by topic, in order of first appearance (what one
/// request carries: each topic once, with its partitions).
fn by_topic(batches: &[ProducerBatch]) -> Vec<(&str, Vec<usize>)> {
    let mut topics: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        match topics.iter_mut().find(|(t, _)| *t == &*b.tp.topic) {
            Some((_, idx)) => idx.push(i),
            None => topics.push((&b.tp.topic, vec![i])),
        }
    }
    topics
}

/// One Produce request of `version` (3 to 9) for these batches, framed:
/// the 4-byte size, the request header, then the body.
pub(crate) fn encode(
    version: i16,
    correlation_id: i32,
    client_id: &str,
    acks: i16,
    timeout_ms: i32,
    batches: &[ProducerBatch],
) -> Bytes {
    debug_assert!((3..=9).contains(&version), "Produce v{version}");
    let f = Form {
        flexible: version >= FIRST_FLEXIBLE,
    };
    let topics = by_topic(batches);
    let batch_lens: Vec<usize> = batches
        .iter()
        .map(|b| encoded_len(b.wire_records(), b.compressed()))
        .collect();

    // Header: key, version, correlation id, client id (a classic nullable
    // string even in the flexible header), then tags if flexible.
    let mut size = 2 + 2 + 4 + 2 + client_id.len() + f.tags_len();
    // Body: transactional id (null), acks, timeout, topics.
    size += if f.flexible { 1 } else { 2 } + 2 + 4 + f.array_len(topics.len());
    for (topic, idx) in &topics {
        size += f.string_len(topic) + f.array_len(idx.len());
        for &i in idx {
            let n = batch_lens[i];
            size += 4 + f.array_len(n) + n + f.tags_len();
        }
        size += f.tags_len();
    }
    size += f.tags_len();

    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    buf.put_i16(API_KEY);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(client_id.len() as i16);
    buf.put_slice(client_id.as_bytes());
    f.put_tags(&mut buf);
    // transactional_id: null
    if f.flexible {
        buf.put_u8(0);
    } else {
        buf.put_i16(-1);
    }
    buf.put_i16(acks);
    buf.put_i32(timeout_ms);
    f.put_array_len(&mut buf, topics.len());
    for (topic, idx) in &topics {
        f.put_string(&mut buf, topic);
        f.put_array_len(&mut buf, idx.len());
        for &i in idx {
            let b = &batches[i];
            buf.put_i32(b.tp.partition);
            // records: (compact) bytes of the batch's exact length
            f.put_array_len(&mut buf, batch_lens[i]);
            let (pid, seq) = b.identity();
            let before = buf.len();
            write_batch(&mut buf, b.wire_records(), b.compressed(), pid, seq);
            debug_assert_eq!(buf.len() - before, batch_lens[i]);
            f.put_tags(&mut buf);
        }
        f.put_tags(&mut buf);
    }
    f.put_tags(&mut buf);
    debug_assert_eq!(buf.len(), 4 + size);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Completion, PendingRecord};
    use crate::error::TopicPartition;
    use crate::record::Header;
    use crate::record_batch::ProducerIdentity;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
    use std::time::Instant;

    fn batch(topic: &str, p: i32, records: usize, seq: Option<i32>) -> ProducerBatch {
        let mut b = ProducerBatch::new(p as u64, TopicPartition::new(topic, p), Instant::now(), 4);
        for i in 0..records {
            b.push(
                PendingRecord {
                    key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                    value: Some(Bytes::from(vec![b'v'; 10 + 40 * i])),
                    headers: vec![Header {
                        key: "h".into(),
                        value: (i % 3 != 0).then(|| Bytes::from_static(b"x")),
                    }],
                    timestamp: 1_700_000_000_000 + i as i64,
                    completion: Completion::future(),
                },
                50,
            );
        }
        b.sequence = seq.map(|s| (ProducerIdentity { id: 9, epoch: 2 }, s));
        b
    }

    /// What `kafka_protocol` writes for the same request, with each batch
    /// written on its own first.
    fn reference(version: i16, corr: i32, client: &str, batches: &[ProducerBatch]) -> Bytes {
        let mut topics: Vec<TopicProduceData> = Vec::new();
        for b in batches {
            let (pid, seq) = b.identity();
            let data = PartitionProduceData::default()
                .with_index(b.tp.partition)
                .with_records(Some(crate::record_batch::encode_batch(
                    b.wire_records(),
                    pid,
                    seq,
                )));
            match topics
                .iter_mut()
                .find(|t| t.name.0.as_str() == &*b.tp.topic)
            {
                Some(t) => t.partition_data.push(data),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(b.tp.topic.to_string())))
                        .with_partition_data(vec![data]),
                ),
            }
        }
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(topics);
        let header = RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_string(client.to_string())));
        let hv = ProduceRequest::header_version(version);
        let mut body = BytesMut::new();
        header.encode(&mut body, hv).unwrap();
        req.encode(&mut body, version).unwrap();
        let mut framed = BytesMut::new();
        framed.put_i32(body.len() as i32);
        framed.extend_from_slice(&body);
        framed.freeze()
    }

    #[test]
    fn every_version_matches_kafka_protocol_byte_for_byte() {
        // Two topics interleaved, sequenced and unsequenced batches, one
        // batch large enough for a two-byte compact length.
        let batches = vec![
            batch("orders", 0, 3, Some(0)),
            batch("clicks", 2, 1, Some(7)),
            batch("orders", 1, 5, None),
            batch("clicks", 0, 0, Some(1)),
        ];
        for version in 3..=9 {
            let ours = encode(version, 77, "herald", -1, 30_000, &batches);
            let theirs = reference(version, 77, "herald", &batches);
            assert_eq!(ours, theirs, "Produce v{version}");
        }
    }
}
