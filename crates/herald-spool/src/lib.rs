//! # herald-spool: a durable on-disk queue in front of a herald producer
//!
//! Appends are durable when they return (group commit: one `write` and one
//! `fdatasync` per group); records go to Kafka in append order through an
//! idempotent producer that never gives a record up while Kafka is away,
//! and leave the disk only once Kafka acknowledged them; records no resend
//! can deliver become dead letters; each carries [`ID_HEADER`] so consumers
//! can drop the repeats a crash causes. Modules, one stage each: `segment`
//! (the on-disk frames), `checkpoint`, `codec`, `fs` (the filesystem calls,
//! simulated in the tests), `log` (recovery, append, checkpoint), `reader`,
//! `writer` (group commit), [`Spool`], [`repair`](repair()), [`inspect`](inspect()).
//! README "The spool" has the promises; DESIGN.md "The spool" the format,
//! the sync order and the recovery rules.
//!
//! ```no_run
//! # async fn demo() -> Result<(), herald_spool::SpoolError> {
//! use herald::{ProducerConfig, Record};
//! use herald_spool::{Spool, SpoolConfig};
//! let (spool, _recovery) = Spool::open(
//!     std::path::Path::new("/var/lib/myapp/spool"),
//!     SpoolConfig::default(),
//!     ProducerConfig::new("kafka:9092"),
//! )?;
//! // Returns once the record is on disk (fdatasync'd); Kafka may be down.
//! let seq = spool.append(&Record::new("events", "hello")).await?;
//! println!("spooled as {seq}; backlog {:?}", spool.stats());
//! spool.close(std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod codec;
mod error;
pub mod fs;
pub mod inspect;
pub mod log;
pub mod reader;
mod repair;
pub mod segment;
mod spool;
pub mod writer;

pub use error::SpoolError;
pub use fs::{Fs, FsFile, OpenHow, RealFs};
pub use inspect::{inspect, Report};
pub use log::{Log, LogConfig, Recovery};
pub use reader::Reader;
pub use repair::{repair, RepairReport};
pub use spool::{
    forwarding_config, spool_id, with_id, Delivery, SettleObserver, Settled, Spool, SpoolConfig,
    SpoolStats, ID_HEADER,
};
pub use writer::Writer;
