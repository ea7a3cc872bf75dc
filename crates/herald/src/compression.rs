//! Batch compression (`compression.type`): gzip, snappy, lz4 and zstd, all
//! in pure Rust, so the library still needs no C toolchain.
//!
//! A compressed RecordBatch v2 keeps its 61-byte header in the clear and
//! compresses the records after it; the codec goes in the low three bits of
//! the batch's attributes. Each codec writes what Kafka's own readers take:
//! - gzip: a gzip member (flate2 on zlib-rs, a Rust port of zlib-ng:
//!   1.9x miniz_oxide's throughput in BENCHMARKS.md's compression table);
//! - snappy: one raw snappy block, as librdkafka writes it (Java brokers read
//!   it through snappy-java's fallback for unframed input, and Tansu reads
//!   only this form; the xerial framing the Java client writes is not
//!   needed by any reader);
//! - lz4: an LZ4 frame with independent 64 KB blocks and no checksums but
//!   the header's (KIP-57), what the Java client's `KafkaLZ4BlockOutputStream`
//!   writes (lz4_flex);
//! - zstd: a zstd frame with a content checksum (ruzstd, whose encoder
//!   implements one level, "fastest", about zstd's level 1; its other
//!   levels are not implemented yet, so the level settings are accepted
//!   and do not change the output).
//!
//! A batch is compressed once, when it is first sent, by the sender task
//! (not on `send`'s path), and the bytes are kept for its retries, which
//! must be the same batch byte for byte.

use std::fmt;
use std::io::Write;

use crate::error::Error;

/// A codec and its level, from `compression.type` and the level settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `none` (the default).
    #[default]
    None,
    /// `gzip`, level 1 (fastest) to 9 (smallest); Kafka's default is 6.
    Gzip {
        /// `compression.gzip.level` or `compression.level`.
        level: u32,
    },
    /// `snappy`; no levels.
    Snappy,
    /// `lz4`; lz4_flex has one (fast) mode, so the level settings are
    /// accepted for compatibility and do not change the output.
    Lz4,
    /// `zstd`; Kafka's default level is 3. ruzstd writes one level (about
    /// zstd's 1), so the level is kept for compatibility only.
    Zstd {
        /// `compression.zstd.level` or `compression.level`.
        level: i32,
    },
}

/// Kafka's default gzip level (`compression.gzip.level`).
pub const GZIP_DEFAULT_LEVEL: u32 = 6;
/// Kafka's default zstd level (`compression.zstd.level`).
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Compression {
    /// The `compression.type` name.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd { .. } => "zstd",
        }
    }

    /// The codec named by `compression.type`, at its default level.
    pub fn from_name(key: &str, name: &str) -> Result<Compression, Error> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "none" => Compression::None,
            "gzip" => Compression::Gzip {
                level: GZIP_DEFAULT_LEVEL,
            },
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd {
                level: ZSTD_DEFAULT_LEVEL,
            },
            _ => {
                return Err(Error::config(
                    key,
                    format!("expected none, gzip, snappy, lz4 or zstd, got `{name}`"),
                ))
            }
        })
    }

    /// The codec's id in a batch's attributes (bits 0-2).
    pub(crate) fn attribute(&self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip { .. } => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd { .. } => 4,
        }
    }

    /// Compress a batch's records section.
    pub(crate) fn compress(&self, records: &[u8]) -> Result<Vec<u8>, String> {
        match *self {
            Compression::None => Ok(records.to_vec()),
            Compression::Gzip { level } => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(records.len() / 2 + 64),
                    flate2::Compression::new(level),
                );
                enc.write_all(records).map_err(|e| e.to_string())?;
                enc.finish().map_err(|e| e.to_string())
            }
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(records)
                .map_err(|e| e.to_string()),
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent)
                    .content_checksum(false)
                    .block_checksums(false);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                    info,
                    Vec::with_capacity(records.len() / 2 + 64),
                );
                enc.write_all(records).map_err(|e| e.to_string())?;
                enc.finish().map_err(|e| e.to_string())
            }
            Compression::Zstd { .. } => Ok(ruzstd::encoding::compress_to_vec(
                records,
                ruzstd::encoding::CompressionLevel::Fastest,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A records section like a real one: repetitive, with some noise.
    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..2_000u32 {
            v.extend_from_slice(format!("record {i} value {} ", i % 17).as_bytes());
            v.extend_from_slice(&i.to_be_bytes());
        }
        v
    }

    fn all() -> Vec<Compression> {
        vec![
            Compression::Gzip { level: 1 },
            Compression::Gzip { level: 6 },
            Compression::Gzip { level: 9 },
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd { level: 1 },
            Compression::Zstd { level: 3 },
            Compression::Zstd { level: 9 },
        ]
    }

    /// Each codec's output, read back by that format's reference reader,
    /// gives the input byte for byte, and is smaller than it.
    #[test]
    fn each_codec_round_trips_through_its_reference_reader() {
        let input = sample();
        for c in all() {
            let out = c.compress(&input).unwrap();
            assert!(out.len() < input.len() / 2, "{c:?}: {} bytes", out.len());
            let back = match c {
                Compression::Gzip { .. } => {
                    let mut v = Vec::new();
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::Snappy => snap::raw::Decoder::new().decompress_vec(&out).unwrap(),
                Compression::Lz4 => {
                    let mut v = Vec::new();
                    lz4_flex::frame::FrameDecoder::new(&out[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::Zstd { .. } => {
                    let mut v = Vec::new();
                    ruzstd::decoding::StreamingDecoder::new(&out[..])
                        .unwrap()
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::None => unreachable!(),
            };
            assert_eq!(back, input, "{c:?}");
        }
    }

    /// The format details Kafka's readers depend on.
    #[test]
    fn headers_are_what_kafka_readers_expect() {
        let input = sample();
        let gz = Compression::Gzip { level: 6 }.compress(&input).unwrap();
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8], "gzip magic, deflate");
        let lz = Compression::Lz4.compress(&input).unwrap();
        assert_eq!(&lz[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        // FLG: version 01, block independence set, no block checksum, no
        // content size, no content checksum; BD: 64 KB blocks.
        assert_eq!(lz[4], 0b0110_0000, "FLG");
        assert_eq!(lz[5], 0b0100_0000, "BD");
        let zs = Compression::Zstd { level: 3 }.compress(&input).unwrap();
        assert_eq!(&zs[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
        let sn = Compression::Snappy.compress(&input).unwrap();
        assert_ne!(&sn[..8], b"\x82SNAPPY\0", "raw snappy, not xerial-framed");
    }

    /// A whole batch written with each codec decodes with kafka-protocol's
    /// decoder (an independent reader, which checks the CRC and
    /// decompresses) to the records that went in.
    #[test]
    fn compressed_batches_decode_with_kafka_protocol() {
        use crate::batch::{Completion, PendingRecord, ProducerBatch};
        use crate::error::TopicPartition;
        use crate::record::Header;
        use crate::record_batch::{encoded_len, write_batch, ProducerIdentity};
        use bytes::{Bytes, BytesMut};
        use kafka_protocol::records::{Compression as KpCompression, RecordBatchDecoder};

        let batch = || {
            let mut b =
                ProducerBatch::new(0, TopicPartition::new("t", 0), std::time::Instant::now(), 8);
            for i in 0..300 {
                b.push(
                    PendingRecord {
                        key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                        value: Some(Bytes::from(format!("value {i} {}", "x".repeat(i % 50)))),
                        headers: vec![Header {
                            key: "trace".into(),
                            value: Some(Bytes::from(format!("{i}"))),
                        }],
                        timestamp: 1_700_000_000_000 + i as i64,
                        completion: Completion::future(),
                    },
                    64,
                );
            }
            b.sequence = Some((ProducerIdentity { id: 5, epoch: 1 }, 40));
            b
        };
        let plain_len = encoded_len(batch().wire_records(), None);
        for (c, kp) in [
            (Compression::Gzip { level: 6 }, KpCompression::Gzip),
            (Compression::Snappy, KpCompression::Snappy),
            (Compression::Lz4, KpCompression::Lz4),
            (Compression::Zstd { level: 3 }, KpCompression::Zstd),
        ] {
            let mut whole = batch(); // fresh: no compressed bytes kept yet
            whole.compress(c).unwrap();
            let (pid, seq) = whole.identity();
            let mut buf = BytesMut::new();
            write_batch(&mut buf, whole.wire_records(), whole.compressed(), pid, seq);
            assert!(
                buf.len() < plain_len / 2,
                "{c:?}: {} of {plain_len}",
                buf.len()
            );
            let mut bytes = buf.freeze();
            let set = RecordBatchDecoder::decode(&mut bytes).expect("valid batch and CRC");
            assert_eq!(
                set.compression,
                kafka_protocol::records::RecordCompression::RecordBatch(kp),
                "{c:?}: the attributes name the codec"
            );
            assert_eq!(set.records.len(), whole.records.len(), "{c:?}");
            for (i, (got, sent)) in set.records.iter().zip(&whole.records).enumerate() {
                assert_eq!(got.key, sent.key, "{c:?} record {i}");
                assert_eq!(got.value, sent.value, "{c:?} record {i}");
                assert_eq!(got.timestamp, sent.timestamp, "{c:?} record {i}");
                assert_eq!(got.offset, i as i64);
                assert_eq!(got.sequence, 40 + i as i32);
                assert_eq!(got.producer_id, 5);
                assert_eq!(
                    got.headers.get(&b"trace"[..]).cloned().flatten(),
                    sent.headers[0].value
                );
            }
        }
    }
}
