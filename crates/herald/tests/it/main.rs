//! herald's integration tests: one binary, one module per concern.
//!
//! - `tansu`: against a real Kafka-compatible broker (Tansu, sqlite
//!   storage), read back by librdkafka.
//! - `mock`: against librdkafka's mock cluster, an independent broker
//!   implementation that injects errors, delays and outages.
//! - `lifecycle`: flush, close and drop.

mod lifecycle;
mod mock;
mod tansu;

use std::time::Duration;

/// A bound on any single wait in these tests, so a bug fails a test
/// instead of hanging CI.
pub const BOUND: Duration = Duration::from_secs(120);
