//! # herald-spool: a durable on-disk queue in front of a herald producer
//!
//! Work in progress (issue 13). What exists: the on-disk log with its
//! recovery rules (`log`), the segment format (`segment`), the checkpoint
//! (`checkpoint`), the record encoding (`codec`), the group-commit thread
//! (`writer`), and [`Spool`]: durable appends (`max.bytes` enforced),
//! forwarding to Kafka in append order through an idempotent producer that
//! never gives a record up while Kafka is away, removal only after Kafka's
//! acknowledgement, dead letters, the record id header ([`ID_HEADER`]). Not
//! yet: the `herald spool` commands, the crash tests (simulated filesystem, kill -9,
//! FUSE, ENOSPC) and the benchmark. See DESIGN.md, "The spool".
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
pub use spool::{forwarding_config, spool_id, with_id, Spool, SpoolConfig, SpoolStats, ID_HEADER};
pub use writer::Writer;
