//! A producer for code without an async runtime.

use std::time::Duration;

use crate::config::ProducerConfig;
use crate::delivery::DeliveryFuture;
use crate::error::Error;
use crate::producer::Producer;
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
        self.block("send", self.producer.send(record))?
    }

    /// Send and wait for the outcome (seed 002's synchronous send).
    pub fn send_sync(&self, record: Record) -> Result<RecordMetadata, Error> {
        self.send(record)?.wait()
    }

    /// See [`Producer::flush`].
    /// Fails only where it cannot block (on an async runtime's thread,
    /// such as inside a delivery callback).
    pub fn flush(&self) -> Result<(), Error> {
        self.block("flush", self.producer.flush())
    }

    /// See [`Producer::close`].
    pub fn close(mut self, timeout: Duration) -> Result<(), Error> {
        let closed = self.block("close", self.producer.close(timeout));
        if closed.is_ok() {
            // Closed: nothing for `drop` to do.
            if let Some(rt) = self.runtime.take() {
                rt.shutdown_background();
            }
        }
        closed?
    }

    /// Run `f` on the producer's runtime, blocking this thread. tokio
    /// refuses (panics) where this thread already runs async code, such as
    /// in a delivery callback, where blocking would deadlock anyway: that
    /// comes back as an error saying what to do instead.
    fn block<F: std::future::Future>(&self, what: &str, f: F) -> Result<F::Output, Error> {
        let rt = self.runtime.as_ref().expect("runtime present until drop");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f))).map_err(|_| {
            Error::Usage(format!(
                "BlockingProducer::{what} blocks its thread and cannot run on an async runtime's \
                 thread (delivery callbacks run on one); use BlockingProducer::producer() and \
                 .await there"
            ))
        })
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
            let close = std::panic::AssertUnwindSafe(|| rt.block_on(self.producer.close(timeout)));
            if std::panic::catch_unwind(close).is_err() {
                tracing::error!(
                    "a BlockingProducer was dropped on an async runtime's thread: its buffered \
                     records were not waited for"
                );
            }
            rt.shutdown_background();
        }
    }
}
