//! Record batches, both ways:
//! - any records herald writes decode (CRC included) to the same keys,
//!   values, timestamps and headers with kafka-protocol's decoder;
//! - any bytes given to that decoder (the one our test broker stores
//!   batches with) give an error or a batch, never a panic.
#![no_main]

use bytes::Bytes;
use herald::Header;
use kafka_protocol::records::RecordBatchDecoder;
use libfuzzer_sys::fuzz_target;

/// Reads fields off the fuzzer's bytes.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self) -> Option<Option<Vec<u8>>> {
        let len = self.byte()?;
        if len == 255 {
            return Some(None);
        }
        let n = (len as usize).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(Some(b.to_vec()))
    }
}

type Parts = (Option<Vec<u8>>, Option<Vec<u8>>, i64, Vec<Header>);

fn records(mut input: Input<'_>) -> Vec<Parts> {
    let mut out = Vec::new();
    while let (Some(k), Some(v), Some(ts), Some(nh)) =
        (input.bytes(), input.bytes(), input.byte(), input.byte())
    {
        let mut headers = Vec::new();
        for i in 0..nh % 4 {
            // Distinct names: kafka-protocol's decoder merges repeated ones,
            // and cannot read null values (herald writes both; librdkafka
            // checks those in the integration tests).
            let value = input.bytes().flatten().unwrap_or_default();
            headers.push(Header {
                key: format!("h{i}"),
                value: Some(Bytes::from(value)),
            });
        }
        let ts = 1_700_000_000_000i64 + (ts as i64 - 128) * 1_000_003;
        out.push((k, v, ts, headers));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let recs = records(Input(rest));
        if recs.is_empty() {
            return;
        }
        let mut batch = herald::fuzzing::write_batch(&recs);
        let set = RecordBatchDecoder::decode(&mut batch).expect("herald's batch decodes");
        assert_eq!(set.records.len(), recs.len());
        for (i, (got, (k, v, ts, h))) in set.records.iter().zip(&recs).enumerate() {
            assert_eq!(got.offset, i as i64);
            assert_eq!(got.key.as_deref(), k.as_deref());
            assert_eq!(got.value.as_deref(), v.as_deref());
            assert_eq!(got.timestamp, *ts);
            assert_eq!(got.headers.len(), h.len());
            for hd in h {
                assert_eq!(
                    got.headers.get(hd.key.as_bytes()).cloned().flatten(),
                    hd.value
                );
            }
        }
    } else {
        let mut buf = Bytes::copy_from_slice(rest);
        let _ = RecordBatchDecoder::decode(&mut buf);
    }
});
