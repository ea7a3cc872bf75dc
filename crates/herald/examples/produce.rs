//! The three ways of sending from seed 002, against a broker on
//! `localhost:9092` (or the address given as the first argument), to
//! `topic1`:
//!
//! ```sh
//! scripts/demo                       # or any broker with a topic1
//! cargo run -p herald --example produce -- 127.0.0.1:9092
//! ```

use std::time::Duration;

use herald::{JsonSerializer, Producer, ProducerConfig, Record, StringSerializer, TypedProducer};
use serde::Serialize;

#[derive(Serialize)]
struct Order {
    id: u32,
    customer: String,
}

#[tokio::main]
async fn main() -> Result<(), herald::Error> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:9092".into());
    let producer = Producer::new(ProducerConfig::new(&bootstrap))?;

    // Synchronous style: wait for each record's metadata.
    let md = producer
        .send(Record::new("topic1", "Hello Kafka"))
        .await?
        .await?;
    println!("sync: {}[{}]@{}", md.topic, md.partition, md.offset);

    // Asynchronous, with a callback (callbacks of a partition run in send order).
    for i in 0..3 {
        let record = Record::new("topic1", format!("event {i}")).key("same-key");
        producer
            .send_with_callback(record, move |outcome| match outcome {
                Ok(md) => println!("callback {i}: {}[{}]@{}", md.topic, md.partition, md.offset),
                Err(e) => eprintln!("callback {i}: {e}"),
            })
            .await?;
    }

    // Fire-and-forget: the handle is dropped, the record is still delivered.
    drop(
        producer
            .send(Record::new("topic1", "fire and forget"))
            .await?,
    );

    // Typed records: a string key and a JSON value.
    let orders: TypedProducer<String, Order, _, _> =
        TypedProducer::new(producer.clone(), StringSerializer, JsonSerializer);
    let order = Order {
        id: 7,
        customer: "ada".into(),
    };
    let md = orders
        .send(
            Record::new("topic1", order)
                .key("ada".to_string())
                .header("type", "order"),
        )
        .await?
        .await?;
    println!("typed: {}[{}]@{}", md.topic, md.partition, md.offset);

    producer.flush().await;
    producer.close(Duration::from_secs(10)).await
}
