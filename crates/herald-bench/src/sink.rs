//! The brokers the clients produce to, each served by its own process so
//! that the client process is what is measured.

use std::io::{BufRead, Write};

use herald_test_support::{MockBroker, Tansu};
use rdkafka::mocking::MockCluster;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum SinkKind {
    /// librdkafka's mock cluster: a broker no one here wrote; stores what
    /// it gets.
    Mock,
    /// Our minimal broker: parses produce requests, checks each batch's
    /// CRC-32C, answers with offsets, stores nothing.
    Null,
    /// Tansu 0.6.0 on sqlite: the real end-to-end figure.
    Tansu,
}

/// Serve until standard input closes: print `BOOTSTRAP host:port` once the
/// topic exists.
pub fn serve(kind: SinkKind, topic: &str, partitions: i32) -> Result<(), String> {
    // Kept alive until stdin closes.
    let mut _mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>> = None;
    let mut _null: Option<MockBroker> = None;
    let mut _tansu: Option<Tansu> = None;
    let bootstrap = match kind {
        SinkKind::Mock => {
            let m = MockCluster::new(1).map_err(|e| e.to_string())?;
            m.create_topic(topic, partitions, 1)
                .map_err(|e| e.to_string())?;
            let b = m.bootstrap_servers();
            _mock = Some(m);
            b
        }
        SinkKind::Null => {
            let m = MockBroker::start_sink();
            m.create_topic(topic, partitions as usize);
            let b = m.bootstrap();
            _null = Some(m);
            b
        }
        SinkKind::Tansu => {
            let t = Tansu::start();
            t.create_topic(topic, partitions as u32);
            let b = t.bootstrap();
            _tansu = Some(t);
            b
        }
    };
    println!("BOOTSTRAP {bootstrap}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Block until the parent closes our standard input.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    if let Some(n) = &_null {
        if n.bad_crc() > 0 {
            return Err(format!("{} batches with a wrong CRC", n.bad_crc()));
        }
    }
    Ok(())
}
