//! Seed 004's producer with herald: SASL_SSL with AWS_MSK_IAM, the schema
//! registry's URL, no auto-registration, no latest version, and the schema
//! id the bus team handed out (as the Java sample sets them). The README
//! shows this code; `cargo clippy --all-targets` keeps it compiling.
//!
//!   cargo run -p herald-schema --example event_bus -- BROKERS REGISTRY_URL SCHEMA_ID

use herald::{Producer, ProducerConfig, Record, StringSerializer, TypedProducer};
use herald_schema::{AvroSerializer, RegistryClient, RegistryConfig, SerializerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, registry_url, schema_id] = &args[..] else {
        return Err("usage: event_bus BROKERS REGISTRY_URL SCHEMA_ID".into());
    };
    let producer = Producer::new(ProducerConfig::from_properties(&[
        ("bootstrap.servers", brokers.as_str()),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "AWS_MSK_IAM"),
    ])?)?;
    let registry = RegistryClient::new(RegistryConfig::new(registry_url))?;
    let mut cfg = SerializerConfig::new(false);
    cfg.set("auto.register.schemas", "false")?; // producers may not write to the registry
    cfg.set("use.latest.version", "false")?;
    cfg.set("use.schema.id", schema_id)?; // the id the bus team handed out
    let values = AvroSerializer::new(registry, cfg, None)?;
    values.prepare("orders").await?; // one read: the schema of that id
    let orders: TypedProducer<String, serde_json::Value, _, _> =
        TypedProducer::new(producer, StringSerializer, values);
    let delivered = orders
        .send(
            Record::new("orders", serde_json::json!({"id": 42, "status": "PAID"}))
                .key("c-7".to_string()),
        )
        .await?
        .await?;
    println!(
        "{}[{}]@{}",
        delivered.topic, delivered.partition, delivered.offset
    );
    orders
        .producer()
        .close(std::time::Duration::from_secs(10))
        .await?;
    Ok(())
}
