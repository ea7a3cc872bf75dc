//! # herald-spool: a durable on-disk queue in front of a herald producer
//!
//! Work in progress (issue 13). What exists: the on-disk log with its
//! recovery rules (`log`), the segment format (`segment`), the checkpoint
//! (`checkpoint`), the record encoding (`codec`) and the group-commit thread
//! (`writer`). Not yet: forwarding through a `Producer`, `max.bytes`,
//! dead letters, the `herald spool` commands. See DESIGN.md, "The spool".

pub mod checkpoint;
pub mod codec;
mod error;
pub mod log;
pub mod segment;
pub mod writer;

pub use error::SpoolError;
pub use log::{Log, LogConfig, Recovery};
pub use writer::Writer;
