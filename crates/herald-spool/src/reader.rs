//! Reading records back, in order, from the segment files: a position
//! (segment, byte offset, sequence) that moves forward, reading a chunk at
//! a time, so a backlog of any size is read without holding it in memory
//! and without going through the log's thread. A reader only reads records
//! below the limit it is given (the log's next sequence after a synced
//! group), so it never sees a group being written.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::SpoolError;
use crate::fs::{Fs, FsFile, OpenHow};
use crate::segment;

/// The bytes read at a time (more when one record is larger).
const CHUNK: usize = 1 << 20;

/// A forward reader of a spool's records.
#[derive(Debug)]
pub struct Reader {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// The next record to read.
    next: u64,
    /// The segment being read and its path.
    file: Option<(Box<dyn FsFile>, PathBuf)>,
    /// The file offset of the next record's frame.
    pos: u64,
    /// Bytes read from the file at `chunk_at`; records are slices of it.
    chunk: Bytes,
    chunk_at: u64,
    /// The limit when the chunk was read: its frames below it are final.
    chunk_limit: u64,
}

impl Reader {
    pub(crate) fn new(fs: Arc<dyn Fs>, dir: PathBuf, from: u64) -> Reader {
        Reader {
            fs,
            dir,
            next: from,
            file: None,
            pos: 0,
            chunk: Bytes::new(),
            chunk_at: 0,
            chunk_limit: 0,
        }
    }

    /// The next sequence this reader will return.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Up to `max` records (and about `max_bytes` of payload) from the
    /// reader's position on, all below `limit`.
    pub fn read(
        &mut self,
        limit: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, SpoolError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while self.next < limit && out.len() < max && bytes < max_bytes {
            let payload = self.one(limit)?;
            bytes += payload.len();
            out.push((self.next, payload));
            self.next += 1;
        }
        Ok(out)
    }

    /// The record at `self.next`, which is below `limit` (so on disk).
    fn one(&mut self, limit: u64) -> Result<Bytes, SpoolError> {
        if self.file.is_none() {
            self.locate(limit)?;
        }
        loop {
            let at = (self.pos - self.chunk_at) as usize;
            // Bytes read when this record was not yet below the limit may
            // be from a group being written (or cut off again after a
            // failed write): read again.
            let have = if self.next < self.chunk_limit {
                &self.chunk[at.min(self.chunk.len())..]
            } else {
                &[][..]
            };
            if let Some(len) = segment::frame_len(have).filter(|l| *l <= have.len()) {
                let (_, path) = self.file.as_ref().expect("located");
                let range =
                    segment::frame(have, 0, self.next).map_err(|why| SpoolError::Corrupt {
                        file: path.clone(),
                        offset: self.pos,
                        what: format!("{why} while reading back"),
                    })?;
                let payload = self.chunk.slice(at + range.start..at + range.end);
                self.pos += len as u64;
                return Ok(payload);
            }
            let need = segment::frame_len(have).unwrap_or(segment::FRAME_LEN);
            if need > segment::MAX_PAYLOAD + segment::FRAME_LEN {
                let (_, path) = self.file.as_ref().expect("located");
                return Err(SpoolError::Corrupt {
                    file: path.clone(),
                    offset: self.pos,
                    what: format!("record {} declares {need} bytes", self.next),
                });
            }
            let got = self.fill(need.max(CHUNK), limit)?;
            if got == 0 {
                // The segment ends here: the record is the first of the next.
                self.file = None;
                self.open_segment(self.next)?;
            } else if segment::frame_len(&self.chunk).is_none_or(|l| l > got) {
                let (_, path) = self.file.as_ref().expect("located");
                return Err(SpoolError::Corrupt {
                    file: path.clone(),
                    offset: self.pos,
                    what: format!("record {} is cut short", self.next),
                });
            }
        }
    }

    /// Read up to `want` bytes at `pos` into the chunk: the bytes read.
    fn fill(&mut self, want: usize, limit: u64) -> Result<usize, SpoolError> {
        let (file, path) = self.file.as_ref().expect("located");
        // A new buffer each time: records handed out hold the old one.
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            let n = file
                .read_at(self.pos + got as u64, &mut buf[got..])
                .map_err(|e| SpoolError::io(format!("reading {}", path.display()), e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        // Records handed out keep their chunk alive: a chunk mostly empty
        // (a trickle of appends) is shrunk, or each in-flight record could
        // pin a whole chunk.
        if got < want / 2 {
            buf.shrink_to_fit();
        }
        self.chunk = Bytes::from(buf);
        self.chunk_at = self.pos;
        self.chunk_limit = limit;
        Ok(got)
    }

    /// Open the segment that starts at `first` and check its header.
    fn open_segment(&mut self, first: u64) -> Result<(), SpoolError> {
        let path = self.dir.join(format!("{first:020}.seg"));
        let file = self.fs.open(&path, OpenHow::Read).map_err(|e| {
            SpoolError::io(
                format!(
                    "opening {} (record {} expected there)",
                    path.display(),
                    self.next
                ),
                e,
            )
        })?;
        let mut h = [0; segment::HEADER_LEN];
        let n = file
            .read_at(0, &mut h)
            .map_err(|e| SpoolError::io(format!("reading {}", path.display()), e))?;
        let named = segment::parse_header(&h[..n]).map_err(|what| SpoolError::Corrupt {
            file: path.clone(),
            offset: 0,
            what,
        })?;
        if named != first {
            return Err(SpoolError::Corrupt {
                file: path,
                offset: 0,
                what: format!("its header says it starts at record {named}"),
            });
        }
        self.file = Some((file, path));
        self.pos = segment::HEADER_LEN as u64;
        self.chunk = Bytes::new();
        self.chunk_at = self.pos;
        self.chunk_limit = 0;
        Ok(())
    }

    /// Find the segment holding `next` and move to its frame (once, at the
    /// start: later segments follow one another by name).
    fn locate(&mut self, limit: u64) -> Result<(), SpoolError> {
        let names = self
            .fs
            .list(&self.dir)
            .map_err(|e| SpoolError::io(format!("listing {}", self.dir.display()), e))?;
        let first = names
            .iter()
            .filter_map(|n| n.strip_suffix(".seg")?.parse::<u64>().ok())
            .filter(|s| *s <= self.next)
            .max()
            .unwrap_or(self.next);
        let target = self.next;
        self.next = first;
        self.open_segment(first)?;
        while self.next < target {
            self.one(limit)?;
            self.next += 1;
        }
        Ok(())
    }
}
