//! Compressed batches (issue 5, done-when 1): each codec, produced by
//! herald and read back by librdkafka, gives back every record as sent.
//!
//! Against Tansu for gzip, lz4 and zstd. Tansu 0.6.0 takes snappy batches
//! (it decompresses them to store the records) but cannot serve them: its
//! fetch compresses again with the batch's codec and has no snappy encoder
//! (`UnexpectedType("Snappy")` in its log). So snappy, and the other three
//! again, are also read back from librdkafka's mock cluster, which stores
//! the batches as herald wrote them.

use std::collections::HashMap;

use herald::compression::Compression;
use herald::{Producer, ProducerConfig, Record};
use herald_test_support::Tansu;
use rdkafka::mocking::MockCluster;

use crate::{read_back, BOUND};

const N: usize = 3_000;

fn value(i: usize) -> String {
    // Compressible values of varied length.
    format!("value {i} {}", "v".repeat(i % 300))
}

fn key(i: usize) -> Option<Vec<u8>> {
    (!i.is_multiple_of(4)).then(|| format!("key-{}", i % 101).into_bytes())
}

/// Send N records with `codec`, read them back with librdkafka, and check
/// each is at the partition and offset herald reported, as sent.
async fn round_trip(bootstrap: &str, topic: &str, codec: Compression) {
    let cfg = ProducerConfig::new(bootstrap).compression(codec);
    let producer = Producer::new(cfg).unwrap();
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let mut r = Record::new(topic, value(i))
            .header("i", i.to_string())
            .header("codec", codec.name());
        if let Some(k) = key(i) {
            r = r.key(k);
        }
        handles.push(producer.send(r).await.expect("buffered"));
    }
    let mut at: HashMap<(i32, i64), usize> = HashMap::new();
    for (i, h) in handles.into_iter().enumerate() {
        let md = tokio::time::timeout(BOUND, h)
            .await
            .expect("outcome in time")
            .unwrap_or_else(|e| panic!("{codec}: record {i}: {e}"));
        at.insert((md.partition, md.offset), i);
    }
    let requests = producer.stats().requests;
    producer.close(BOUND).await.expect("closed");

    let read = read_back(bootstrap, topic, 2, N).await;
    for r in &read {
        let i = *at
            .get(&(r.partition, r.offset))
            .unwrap_or_else(|| panic!("{codec}: nothing sent is at {}@{}", r.partition, r.offset));
        assert_eq!(
            r.value.as_deref(),
            Some(value(i).as_bytes()),
            "{codec}: {i}"
        );
        assert_eq!(r.key, key(i), "{codec}: record {i}");
        assert_eq!(
            r.headers,
            vec![
                ("i".to_string(), Some(i.to_string().into_bytes())),
                ("codec".to_string(), Some(codec.name().as_bytes().to_vec())),
            ],
            "{codec}: record {i}"
        );
    }
    eprintln!(
        "{codec}: {N} records in {requests} requests to {bootstrap}, read back by librdkafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_lz4_and_zstd_are_read_back_by_librdkafka_from_tansu() {
    let tansu = Tansu::start();
    for codec in [
        Compression::Gzip { level: 6 },
        Compression::Lz4,
        Compression::Zstd { level: 3 },
    ] {
        let topic = format!("compressed-{}", codec.name());
        tansu.create_topic(&topic, 2);
        round_trip(&tansu.bootstrap(), &topic, codec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_is_read_back_by_librdkafka_from_its_mock_cluster() {
    let mock = MockCluster::new(1).unwrap();
    for codec in [
        Compression::Gzip { level: 1 },
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd { level: 3 },
    ] {
        let topic = format!("compressed-{}", codec.name());
        mock.create_topic(&topic, 2, 1).unwrap();
        round_trip(&mock.bootstrap_servers(), &topic, codec).await;
    }
}
