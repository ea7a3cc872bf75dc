//! The spool's one error type. Every variant says what happened and what
//! to do; none carries a record's contents.

use std::fmt;
use std::path::PathBuf;

/// What went wrong in the spool.
#[derive(Debug, Clone)]
pub enum SpoolError {
    /// An I/O call failed (`what` names the call and the file).
    Io { what: String, error: String },
    /// Another process (or another `Spool` in this one) holds the directory.
    Locked { dir: PathBuf },
    /// Damage that recovery does not repair on its own: a bad record with
    /// good ones after it, a sealed segment that fails its check, a gap in
    /// sequence numbers.
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    /// A sync failed: the kernel may have dropped the written pages, so the
    /// spool no longer accepts appends (retrying would pretend they are
    /// safe). Restart the process to recover from what is on disk.
    Failed { why: String },
    /// The spool is full: the append does not fit under `max.bytes`.
    Full {
        needed: u64,
        backlog: u64,
        max_bytes: u64,
    },
    /// The filesystem holding the spool is out of space (ENOSPC): the
    /// appends in flight failed and were cut off again; everything
    /// acknowledged before is intact, and appends work again once space is
    /// freed.
    DiskFull { file: PathBuf },
    /// A record cannot be spooled as it is (e.g. a field over its limit).
    Invalid(String),
    /// The spool is closed.
    Closed,
}

impl SpoolError {
    /// Whether retrying later can succeed without a restart (full spool or
    /// full disk).
    pub fn is_retriable(&self) -> bool {
        matches!(self, SpoolError::Full { .. } | SpoolError::DiskFull { .. })
    }

    pub(crate) fn io(what: impl Into<String>, e: std::io::Error) -> SpoolError {
        SpoolError::Io {
            what: what.into(),
            error: e.to_string(),
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { what, error } => write!(f, "spool I/O: {what}: {error}"),
            SpoolError::Locked { dir } => write!(
                f,
                "spool directory {} is in use by another process (its lock file is held); \
                 stop that process or give this one its own directory",
                dir.display()
            ),
            SpoolError::Corrupt { file, offset, what } => write!(
                f,
                "spool file {} is damaged at byte {offset}: {what}; the spool will not open \
                 past damage it cannot explain. Run `herald spool inspect DIR` to see it and \
                 `herald spool repair DIR` to set the damaged part aside",
                file.display()
            ),
            SpoolError::Failed { why } => write!(
                f,
                "the spool stopped accepting appends: {why}; restart the process (recovery \
                 keeps every append that was acknowledged)"
            ),
            SpoolError::Full {
                needed,
                backlog,
                max_bytes,
            } => write!(
                f,
                "the spool is full: {needed} more bytes do not fit ({backlog} of max.bytes \
                 {max_bytes} in use); nothing in it was dropped. Retry once Kafka has taken \
                 some of the backlog, or raise max.bytes"
            ),
            SpoolError::DiskFull { file } => write!(
                f,
                "the disk holding the spool is full (writing {} failed with ENOSPC); this \
                 append was not stored, nothing stored before was lost. Free space on that \
                 filesystem (or lower max.bytes below it) and retry",
                file.display()
            ),
            SpoolError::Invalid(why) => write!(f, "cannot spool this record: {why}"),
            SpoolError::Closed => write!(f, "the spool is closed"),
        }
    }
}

impl std::error::Error for SpoolError {}
