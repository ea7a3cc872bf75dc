//! The RecordBatch v2 writer (magic 2), the one piece of wire format herald
//! owns.
//!
//! Batches are written straight into the Produce request's buffer (see
//! `produce_request`), sized exactly beforehand by `encoded_len`.
//!
//! Why not `kafka_protocol::records::RecordBatchEncoder`: its `Record` keeps
//! headers in an `IndexMap`, so repeated header names (legal in Kafka) would
//! be merged, and every record would be copied into its struct first. This
//! writer takes our records as they are and writes each byte once. Requests
//! and responses around it are still encoded by `kafka-protocol`; tests decode
//! what this writes with `kafka-protocol`'s decoder and with librdkafka.

use bytes::{BufMut, BytesMut};

use crate::record::Header;

/// The identity of an idempotent write; `NONE` when idempotence is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

impl ProducerIdentity {
    pub(crate) const NONE: ProducerIdentity = ProducerIdentity { id: -1, epoch: -1 };
}

/// A record as the writer needs it.
pub(crate) struct WireRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub headers: &'a [Header],
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut BytesMut, v: i32) {
    put_uvarint(buf, zigzag32(v) as u64)
}

fn put_bytes(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_len(zigzag32(b.len() as i32) as u64) + b.len(),
    }
}

const HEADER_LEN: usize = 61;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

/// The bytes of one record after its length prefix (its "body").
fn body_len(r: &WireRecord<'_>, index: usize, base_ts: i64) -> usize {
    let mut body = 1 // attributes
        + varint_len(zigzag64(r.timestamp - base_ts))
        + varint_len(zigzag32(index as i32) as u64)
        + bytes_len(r.key)
        + bytes_len(r.value)
        + varint_len(zigzag32(r.headers.len() as i32) as u64);
    for h in r.headers {
        body += bytes_len(Some(h.key.as_bytes())) + bytes_len(h.value.as_deref());
    }
    body
}

/// The records section of a compressed batch: the codec's id (the
/// attributes' low bits) and the compressed records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compressed<'a> {
    pub codec: i16,
    pub bytes: &'a [u8],
}

/// The bytes the records section takes uncompressed.
pub(crate) fn records_len<'a>(
    records: impl ExactSizeIterator<Item = WireRecord<'a>> + Clone,
) -> usize {
    let base_ts = records.clone().next().map_or(0, |r| r.timestamp);
    records
        .enumerate()
        .map(|(i, r)| {
            let body = body_len(&r, i, base_ts);
            varint_len(zigzag32(body as i32) as u64) + body
        })
        .sum::<usize>()
}

/// The exact size `write_batch` will write, so that the request around it
/// is sized once and its length prefixes are known up front.
pub(crate) fn encoded_len<'a>(
    records: impl ExactSizeIterator<Item = WireRecord<'a>> + Clone,
    compressed: Option<Compressed<'_>>,
) -> usize {
    HEADER_LEN + compressed.map_or_else(|| records_len(records), |c| c.bytes.len())
}

/// Write the records section (uncompressed) at the end of `buf`: what a
/// batch carries after its header, or what its codec compresses.
pub(crate) fn write_records<'a>(
    buf: &mut BytesMut,
    records: impl ExactSizeIterator<Item = WireRecord<'a>> + Clone,
) {
    let base_ts = records.clone().next().map_or(0, |r| r.timestamp);
    for (i, r) in records.enumerate() {
        let body = body_len(&r, i, base_ts);
        put_varint(buf, body as i32);
        let start = buf.len();
        buf.put_i8(0);
        put_uvarint(buf, zigzag64(r.timestamp - base_ts));
        put_varint(buf, i as i32);
        put_bytes(buf, r.key);
        put_bytes(buf, r.value);
        put_varint(buf, r.headers.len() as i32);
        for h in r.headers {
            put_bytes(buf, Some(h.key.as_bytes()));
            put_bytes(buf, h.value.as_deref());
        }
        debug_assert_eq!(buf.len() - start, body);
    }
}

/// Write one batch at the end of `buf`: the header, then the records
/// straight from the application's buffers (or, compressed, the bytes the
/// batch keeps for its retries), with no batch buffer between. The result
/// depends only on the records, the compressed bytes, the producer
/// identity and the base sequence, so a retried batch is written byte for
/// byte as before (the broker may already have it). `base_sequence` is -1
/// without idempotence.
pub(crate) fn write_batch<'a>(
    buf: &mut BytesMut,
    records: impl ExactSizeIterator<Item = WireRecord<'a>> + Clone,
    compressed: Option<Compressed<'_>>,
    producer: ProducerIdentity,
    base_sequence: i32,
) {
    let count = records.len();
    let base_ts = records.clone().next().map_or(0, |r| r.timestamp);
    let max_ts = records
        .clone()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(base_ts);
    let at = buf.len();
    buf.put_i64(0); // baseOffset: the broker assigns offsets
    buf.put_i32(0); // batchLength, filled in below
    buf.put_i32(-1); // partitionLeaderEpoch
    buf.put_i8(2); // magic
    buf.put_u32(0); // crc, filled in below
                    // attributes: the codec; CreateTime, not transactional, not control
    buf.put_i16(compressed.map_or(0, |c| c.codec));
    buf.put_i32(count.saturating_sub(1) as i32); // lastOffsetDelta
    buf.put_i64(base_ts);
    buf.put_i64(max_ts);
    buf.put_i64(producer.id);
    buf.put_i16(producer.epoch);
    buf.put_i32(base_sequence);
    buf.put_i32(count as i32);
    debug_assert_eq!(buf.len() - at, HEADER_LEN);

    match compressed {
        Some(c) => buf.put_slice(c.bytes),
        None => write_records(buf, records),
    }

    let batch = &mut buf[at..];
    let batch_len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&batch_len.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One batch in a buffer of its own (tests and the fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_batch<'a>(
    records: impl ExactSizeIterator<Item = WireRecord<'a>> + Clone,
    producer: ProducerIdentity,
    base_sequence: i32,
) -> bytes::Bytes {
    let len = encoded_len(records.clone(), None);
    let mut buf = BytesMut::with_capacity(len);
    write_batch(&mut buf, records, None, producer, base_sequence);
    debug_assert_eq!(buf.len(), len);
    buf.freeze()
}

/// A record as owned parts: key, value, timestamp, headers.
#[cfg(feature = "fuzzing")]
pub type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>, i64, Vec<Header>);

/// Write a batch from owned parts (the fuzz target's entry point).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_write(records: &[RawRecord]) -> bytes::Bytes {
    let iter = records.iter().map(|(k, v, ts, h)| WireRecord {
        key: k.as_deref(),
        value: v.as_deref(),
        timestamp: *ts,
        headers: h,
    });
    encode_batch(iter, ProducerIdentity { id: 7, epoch: 1 }, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn kafka_protocol_decodes_what_we_write() {
        let headers = vec![
            Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"1")),
            },
            // kafka-protocol 0.15 decodes a null header value (-1, as the
            // Java client writes it) as an error, so the cross-check uses an
            // empty one; null values are checked against librdkafka.
            Header {
                key: "n".into(),
                value: Some(Bytes::new()),
            },
        ];
        let recs = [
            (Some(&b"k1"[..]), Some(&b"v1"[..]), 1_700_000_000_000i64),
            (None, Some(&b"a longer value"[..]), 1_700_000_000_005),
            (Some(&b"k3"[..]), None, 1_699_999_999_999),
        ];
        let iter = recs.iter().map(|(k, v, ts)| WireRecord {
            key: *k,
            value: *v,
            timestamp: *ts,
            headers: &headers,
        });
        let bytes = encode_batch(iter, ProducerIdentity { id: 42, epoch: 3 }, 7);
        let mut b = bytes.clone();
        let set = RecordBatchDecoder::decode(&mut b).expect("valid batch, valid crc");
        assert_eq!(set.records.len(), 3);
        for (i, (r, (k, v, ts))) in set.records.iter().zip(recs.iter()).enumerate() {
            assert_eq!(r.key.as_deref(), *k);
            assert_eq!(r.value.as_deref(), *v);
            assert_eq!(r.timestamp, *ts);
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.sequence, 7 + i as i32);
            assert_eq!(r.producer_id, 42);
            assert_eq!(r.producer_epoch, 3);
            assert_eq!(r.headers.len(), 2);
            assert_eq!(r.headers.get(&b"n"[..]).cloned(), Some(Some(Bytes::new())));
        }
    }
}
