//! The spool's directory: segment files, the checkpoint and the lock, and
//! the synchronous operations on them (open with recovery, append a group,
//! read back, checkpoint). The thread that batches appenders into groups
//! and the forwarding to Kafka sit on top of this.
//!
//! ```text
//! DIR/lock                         held (flock) by the one process using DIR
//! DIR/cursor                       the checkpoint (checkpoint.rs)
//! DIR/00000000000000000000.seg     segments, named by their first sequence (segment.rs)
//! ```
//!
//! Sync order, and why each sync is where it is:
//! - a group: one `write` of all its frames, then `fdatasync`, then the
//!   appends are acknowledged (acknowledged means on disk);
//! - a new segment: its header written and the file `fdatasync`ed, then the
//!   directory `fsync`ed (its entry), before any record in it is
//!   acknowledged: otherwise a power loss could forget the whole file;
//! - a checkpoint: the slot written and `fdatasync`ed before any segment it
//!   covers is unlinked, and the directory synced after the unlinks (an
//!   unlink that did not survive is redone at the next open);
//! - a failed `fdatasync` stops all appends (`SpoolError::Failed`): the
//!   kernel may have dropped the pages, so retrying would claim durability
//!   for data that may be gone.

use std::any::Any;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint;
use crate::error::SpoolError;
use crate::fs::{Fs, FsFile, OpenHow, RealFs};
use crate::reader::Reader;
use crate::segment::{self, End};

/// Settings of the on-disk log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment is closed and a new one started past this many bytes.
    pub segment_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
        }
    }
}

/// A segment file.
#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    records: u64,
    bytes: u64,
    path: PathBuf,
}

impl Segment {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.records
    }
}

/// What recovery did at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A torn tail cut off the last segment: (file, offset, why). Nothing
    /// in it was acknowledged.
    pub truncated: Option<(PathBuf, u64, String)>,
    /// Segments below the checkpoint removed (an interrupted deletion).
    pub removed: usize,
}

/// The open log of one spool directory.
#[derive(Debug)]
pub struct Log {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    cfg: LogConfig,
    _lock: Box<dyn Any + Send + Sync>,
    segments: Vec<Segment>,
    /// The last segment, open for appending.
    active: Option<Box<dyn FsFile>>,
    next_seq: u64,
    cursor: u64,
    generation: u64,
    failed: Option<String>,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), SpoolError> {
    fs.sync_dir(dir)
        .map_err(|e| SpoolError::io(format!("syncing directory {}", dir.display()), e))
}

fn open(fs: &dyn Fs, path: &Path, how: OpenHow) -> Result<Box<dyn FsFile>, SpoolError> {
    fs.open(path, how)
        .map_err(|e| SpoolError::io(format!("opening {}", path.display()), e))
}

fn sync_file(fs: &dyn Fs, path: &Path) -> Result<(), SpoolError> {
    open(fs, path, OpenHow::Write)?
        .sync_data()
        .map_err(|e| SpoolError::io(format!("syncing {}", path.display()), e))
}

/// If segment `path` is clean (its header names `first_seq`, every frame
/// checks, in sequence, and no batch is cut short): its records and bytes.
/// `None` when anything is off (the caller then reads it whole).
fn scan_clean(fs: &dyn Fs, path: &Path, first_seq: u64) -> Result<Option<(u64, u64)>, SpoolError> {
    const CHUNK: usize = 1 << 20;
    let file = open(fs, path, OpenHow::Read)?;
    let read = |at: u64, want: usize| -> Result<Vec<u8>, SpoolError> {
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            match file.read_at(at + got as u64, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(SpoolError::io(format!("reading {}", path.display()), e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    };
    let header = read(0, segment::HEADER_LEN)?;
    if segment::parse_header(&header) != Ok(first_seq) {
        return Ok(None);
    }
    let (mut pos, mut seq) = (segment::HEADER_LEN as u64, first_seq);
    let mut more = false;
    loop {
        let chunk = read(pos, CHUNK)?;
        if chunk.is_empty() {
            return Ok((!more).then_some((seq - first_seq, pos)));
        }
        let mut at = 0;
        while let Some(len) = segment::frame_len(&chunk[at..]).filter(|l| at + l <= chunk.len()) {
            match segment::frame_more(&chunk, at, seq) {
                Ok((_, m)) => more = m,
                Err(_) => return Ok(None),
            }
            at += len;
            seq += 1;
        }
        if at == 0 {
            // A frame longer than a chunk, or bytes cut short at the end
            // (a length past the largest payload is damage: not read).
            let Some(len) = segment::frame_len(&chunk)
                .filter(|l| *l <= segment::MAX_PAYLOAD + segment::FRAME_LEN)
            else {
                return Ok(None);
            };
            let whole = read(pos, len)?;
            match segment::frame_more(&whole, 0, seq) {
                Ok((_, m)) => more = m,
                Err(_) => return Ok(None),
            }
            at = len;
            seq += 1;
        }
        pos += at as u64;
    }
}

fn read_all(fs: &dyn Fs, path: &Path) -> Result<Vec<u8>, SpoolError> {
    fs.read(path)
        .map_err(|e| SpoolError::io(format!("reading {}", path.display()), e))
}

impl Log {
    /// Open (creating it if needed) and recover the log in `dir`.
    pub fn open(dir: &Path, cfg: LogConfig) -> Result<(Log, Recovery), SpoolError> {
        Log::open_on(Arc::new(RealFs), dir, cfg)
    }

    /// [`Log::open`] on a given filesystem (the tests' simulated one).
    pub fn open_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        cfg: LogConfig,
    ) -> Result<(Log, Recovery), SpoolError> {
        let f = &*fs;
        f.create_dir_all(dir)
            .map_err(|e| SpoolError::io(format!("creating {}", dir.display()), e))?;
        let lock_path = dir.join("lock");
        let lock = f
            .try_lock(&lock_path)
            .map_err(|e| SpoolError::io(format!("locking {}", lock_path.display()), e))?
            .ok_or_else(|| SpoolError::Locked {
                dir: dir.to_path_buf(),
            })?;
        let cursor_path = dir.join("cursor");
        let (generation, cursor) = if f.exists(&cursor_path) {
            // What recovery reads may be a write whose sync failed before a
            // restart, still in the page cache: make it durable before
            // relying on it (and likewise the last segment, below).
            sync_file(f, &cursor_path)?;
            checkpoint::newest(&read_all(f, &cursor_path)?).unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        let mut names: Vec<(u64, PathBuf)> = f
            .list(dir)
            .map_err(|e| SpoolError::io(format!("listing {}", dir.display()), e))?
            .into_iter()
            .filter_map(|name| {
                let seq = name.strip_suffix(".seg")?.parse().ok()?;
                Some((seq, dir.join(name)))
            })
            .collect();
        names.sort();
        let mut recovery = Recovery::default();
        let mut segments: Vec<Segment> = Vec::new();
        let count = names.len();
        for (i, (first_seq, path)) in names.into_iter().enumerate() {
            let last = i + 1 == count;
            // The common case, a clean segment, is checked a chunk at a
            // time (memory stays bounded whatever the segment size); any
            // doubt reads the whole file for the exact diagnosis below.
            if let Some((records, bytes)) = scan_clean(f, &path, first_seq)? {
                if let Some(prev) = segments.last() {
                    if prev.end_seq() != first_seq {
                        return Err(SpoolError::Corrupt {
                            file: path,
                            offset: 0,
                            what: format!(
                                "it starts at record {first_seq} but the segment before ends at {}",
                                prev.end_seq()
                            ),
                        });
                    }
                }
                if last {
                    sync_file(f, &path)?;
                }
                segments.push(Segment {
                    first_seq,
                    records,
                    bytes,
                    path,
                });
                continue;
            }
            let bytes = read_all(f, &path)?;
            let corrupt = |offset: u64, what: String| SpoolError::Corrupt {
                file: path.clone(),
                offset,
                what,
            };
            if last && bytes.len() < segment::HEADER_LEN {
                // A new segment is synced before anything in it is
                // acknowledged: a torn header holds nothing acknowledged.
                f.remove(&path)
                    .map_err(|e| SpoolError::io(format!("removing {}", path.display()), e))?;
                sync_dir(f, dir)?;
                recovery.truncated = Some((path, 0, "a segment header cut short".into()));
                continue;
            }
            let named = segment::parse_header(&bytes).map_err(|w| corrupt(0, w))?;
            if named != first_seq {
                return Err(corrupt(
                    0,
                    format!("its header says it starts at record {named}, its name {first_seq}"),
                ));
            }
            if let Some(prev) = segments.last() {
                if prev.end_seq() != first_seq {
                    return Err(corrupt(
                        0,
                        format!(
                            "it starts at record {first_seq} but the segment before ends at {}",
                            prev.end_seq()
                        ),
                    ));
                }
            }
            let scan = segment::scan(&bytes, first_seq);
            match scan.end {
                End::Clean if last => sync_file(f, &path)?,
                End::Clean => {}
                End::Torn { at, why } if last => {
                    let file = open(f, &path, OpenHow::Write)?;
                    file.set_len(at as u64)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| SpoolError::io(format!("truncating {}", path.display()), e))?;
                    recovery.truncated = Some((path.clone(), at as u64, why));
                }
                End::Torn { at, why } | End::Corrupt { at, why } => {
                    return Err(corrupt(at as u64, why))
                }
            }
            segments.push(Segment {
                first_seq,
                records: scan.records.len() as u64,
                bytes: scan.valid_len as u64,
                path,
            });
        }
        let next_seq = segments.last().map_or(cursor, Segment::end_seq);
        if let Some(first) = segments.first().filter(|s| s.first_seq > cursor) {
            return Err(SpoolError::Corrupt {
                file: cursor_path,
                offset: 0,
                what: format!(
                    "the checkpoint says records from {cursor} on are not yet delivered, but the \
                     first segment starts at {}: the checkpoint is lost or records are missing",
                    first.first_seq
                ),
            });
        }
        if cursor > next_seq {
            return Err(SpoolError::Corrupt {
                file: cursor_path,
                offset: 0,
                what: format!(
                    "the checkpoint says records below {cursor} were delivered, but the \
                     segments end at {next_seq}: acknowledged records are missing"
                ),
            });
        }
        let mut log = Log {
            fs,
            dir: dir.to_path_buf(),
            cfg,
            _lock: lock,
            segments,
            active: None,
            next_seq,
            cursor,
            generation,
            failed: None,
        };
        recovery.removed = log.remove_delivered()?;
        // Entries made before a crash whose directory sync never happened
        // (a segment rolled, the cursor file created, then a failed sync or
        // a kill): recovery relies on them now, so make them durable.
        sync_dir(&*log.fs, dir)?;
        if let Some(s) = log.segments.last() {
            if s.bytes < log.cfg.segment_bytes {
                log.active = Some(open(&*log.fs, &s.path, OpenHow::Write)?);
            }
        }
        Ok((log, recovery))
    }

    /// The first record not yet delivered, and the next sequence to assign.
    pub fn bounds(&self) -> Range<u64> {
        self.cursor..self.next_seq
    }

    /// Bytes on disk in segments (the backlog, and delivered records not
    /// yet removed with their segment).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Append one group of atomic batches of record payloads: one write,
    /// one `fdatasync`. Returns each batch's sequences once durable. Each
    /// batch comes back whole after a crash, or not at all.
    pub fn append(&mut self, batches: &[Vec<Vec<u8>>]) -> Result<Vec<Range<u64>>, SpoolError> {
        if let Some(why) = &self.failed {
            return Err(SpoolError::Failed { why: why.clone() });
        }
        let first = self.next_seq;
        let mut buf = Vec::with_capacity(
            batches
                .iter()
                .flatten()
                .map(|p| p.len() + segment::FRAME_LEN)
                .sum(),
        );
        let mut ranges = Vec::with_capacity(batches.len());
        let mut seq = first;
        for batch in batches {
            let start = seq;
            for (i, p) in batch.iter().enumerate() {
                if p.len() > segment::MAX_PAYLOAD {
                    return Err(SpoolError::Invalid(format!(
                        "a record of {} bytes (at most {})",
                        p.len(),
                        segment::MAX_PAYLOAD
                    )));
                }
                segment::put_frame(&mut buf, seq, p, i + 1 < batch.len());
                seq += 1;
            }
            ranges.push(start..seq);
        }
        let full = self.segments.last().is_none_or(|s| {
            self.active.is_none()
                || (s.records > 0 && s.bytes + buf.len() as u64 > self.cfg.segment_bytes)
        });
        if full {
            self.roll()?;
        }
        let seg = self
            .segments
            .last_mut()
            .expect("a segment was just ensured");
        let file = self.active.as_ref().expect("the active segment is open");
        if let Err(e) = file.write_at(seg.bytes, &buf) {
            // Out of space, say: cut the partial group off again so the
            // segment stays a whole number of frames, and fail this group.
            let undo = file.set_len(seg.bytes).and_then(|()| file.sync_data());
            if let Err(u) = undo {
                let why = format!(
                    "writing {} failed ({e}) and undoing the partial write failed ({u})",
                    seg.path.display()
                );
                self.failed = Some(why.clone());
                return Err(SpoolError::Failed { why });
            }
            if e.kind() == std::io::ErrorKind::StorageFull {
                return Err(SpoolError::DiskFull {
                    file: seg.path.clone(),
                });
            }
            return Err(SpoolError::io(format!("writing {}", seg.path.display()), e));
        }
        if let Err(e) = file.sync_data() {
            let why = format!("fdatasync of {} failed: {e}", seg.path.display());
            self.failed = Some(why.clone());
            return Err(SpoolError::Failed { why });
        }
        seg.bytes += buf.len() as u64;
        seg.records += seq - first;
        self.next_seq = seq;
        Ok(ranges)
    }

    /// Start a new segment at `next_seq`: header written and synced, then
    /// the directory entry synced.
    fn roll(&mut self) -> Result<(), SpoolError> {
        let path = segment_path(&self.dir, self.next_seq);
        let f = self.fs.open(&path, OpenHow::New).map_err(|e| {
            if e.kind() == std::io::ErrorKind::StorageFull {
                SpoolError::DiskFull { file: path.clone() }
            } else {
                SpoolError::io(format!("creating {}", path.display()), e)
            }
        })?;
        let header = segment::header(self.next_seq);
        if let Err(e) = f.write_at(0, &header) {
            let _ = self.fs.remove(&path);
            if e.kind() == std::io::ErrorKind::StorageFull {
                return Err(SpoolError::DiskFull { file: path });
            }
            return Err(SpoolError::io(format!("writing {}", path.display()), e));
        }
        if let Err(e) = f.sync_data() {
            let why = format!("fdatasync of {} failed: {e}", path.display());
            self.failed = Some(why.clone());
            return Err(SpoolError::Failed { why });
        }
        if let Err(e) = sync_dir(&*self.fs, &self.dir) {
            self.failed = Some(e.to_string());
            return Err(SpoolError::Failed { why: e.to_string() });
        }
        self.segments.push(Segment {
            first_seq: self.next_seq,
            records: 0,
            bytes: segment::HEADER_LEN as u64,
            path,
        });
        self.active = Some(f);
        Ok(())
    }

    /// A reader of the records from sequence `from` on. It reads the files
    /// itself (not through the log), so it can run on another thread.
    pub fn reader(&self, from: u64) -> Reader {
        Reader::new(self.fs.clone(), self.dir.clone(), from)
    }

    /// Up to `max` records from sequence `from` on, read back from disk.
    pub fn read_from(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        let got = self.reader(from).read(self.next_seq, max, usize::MAX)?;
        Ok(got.into_iter().map(|(s, p)| (s, p.to_vec())).collect())
    }

    /// Every record below `cursor` was delivered: checkpoint it (durably),
    /// then remove the segments it covers.
    pub fn checkpoint(&mut self, cursor: u64) -> Result<usize, SpoolError> {
        if let Some(why) = &self.failed {
            return Err(SpoolError::Failed { why: why.clone() });
        }
        if cursor <= self.cursor {
            return Ok(0);
        }
        let cursor = cursor.min(self.next_seq);
        let path = self.dir.join("cursor");
        let fs = &*self.fs;
        let f = open(fs, &path, OpenHow::OrCreate)?;
        // Not yet set up (new, or its setup failed part way, e.g. on a full
        // disk): zeros, synced, and its name synced, before a slot counts.
        let size = f
            .size()
            .map_err(|e| SpoolError::io(format!("reading {}", path.display()), e))?;
        if size < checkpoint::FILE_LEN as u64 {
            // Zeros written, not a sparse `set_len`: a later slot write must
            // not need a new block (it would fail on a full disk, and the
            // checkpoint is what frees the disk).
            f.write_at(0, &[0; checkpoint::FILE_LEN])
                .and_then(|()| f.sync_data())
                .map_err(|e| SpoolError::io(format!("creating {}", path.display()), e))?;
            sync_dir(fs, &self.dir)?;
        }
        let generation = self.generation + 1;
        let (at, slot) = checkpoint::slot(generation, cursor);
        f.write_at(at as u64, &slot)
            .map_err(|e| SpoolError::io(format!("writing {}", path.display()), e))?;
        if let Err(e) = f.sync_data() {
            let why = format!("fdatasync of {} failed: {e}", path.display());
            self.failed = Some(why.clone());
            return Err(SpoolError::Failed { why });
        }
        self.generation = generation;
        self.cursor = cursor;
        self.remove_delivered()
    }

    /// Remove the sealed segments every record of which is below the
    /// cursor (never the active one), then sync the directory.
    fn remove_delivered(&mut self) -> Result<usize, SpoolError> {
        let keep_from = self
            .segments
            .iter()
            .position(|s| s.end_seq() > self.cursor)
            .unwrap_or(self.segments.len())
            .min(self.segments.len().saturating_sub(1));
        let gone: Vec<Segment> = self.segments.drain(..keep_from).collect();
        for s in &gone {
            self.fs
                .remove(&s.path)
                .map_err(|e| SpoolError::io(format!("removing {}", s.path.display()), e))?;
        }
        if !gone.is_empty() {
            sync_dir(&*self.fs, &self.dir)?;
        }
        Ok(gone.len())
    }
}
