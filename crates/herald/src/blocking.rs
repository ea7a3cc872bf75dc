//! A producer for code without an async runtime.

use std::time::Duration;

use crate::config::ProducerConfig;
use crate::error::Error;
use crate::producer::{DeliveryFuture, Producer};
use crate::record::{Record, RecordMetadata};

/// Owns a small tokio runtime and a [`Producer`]; every method blocks the
/// calling thread. Do not use it from inside an async runtime.
///
/// Dropping it closes the producer, waiting up to `delivery.timeout.ms` for
/// buffered records, like the Java client's `close()`: the runtime that
/// delivers them goes away with it.
#[derive(Debug)]
pub struct BlockingProducer {
    runtime: Option<tokio::runtime::Runtime>,
    producer: Producer,
}

impl BlockingProducer {
    /// Start a producer on its own runtime thread.
    pub fn new(config: ProducerConfig) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("herald-producer")
            .enable_all()
            .build()
            .map_err(|e| Error::config("runtime", format!("cannot start a tokio runtime: {e}")))?;
        let producer = runtime.block_on(async { Producer::new(config) })?;
        Ok(Self {
            runtime: Some(runtime),
            producer,
        })
    }

    /// Buffer a record; see [`Producer::send`]. Call
    /// [`DeliveryFuture::wait`] on the handle for the outcome.
    pub fn send(&self, record: Record) -> Result<DeliveryFuture, Error> {
        self.rt().block_on(self.producer.send(record))
    }

    /// Send and wait for the outcome (seed 002's synchronous send).
    pub fn send_sync(&self, record: Record) -> Result<RecordMetadata, Error> {
        self.send(record)?.wait()
    }

    /// See [`Producer::flush`].
    pub fn flush(&self) {
        self.rt().block_on(self.producer.flush())
    }

    /// See [`Producer::close`].
    pub fn close(mut self, timeout: Duration) -> Result<(), Error> {
        let rt = self.runtime.take().expect("runtime present until drop");
        rt.block_on(self.producer.close(timeout))
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime present until drop")
    }

    /// The async producer inside, for use from the runtime's tasks.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

impl Drop for BlockingProducer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let timeout = self.producer.config().delivery_timeout;
            let _ = rt.block_on(self.producer.close(timeout));
        }
    }
}
