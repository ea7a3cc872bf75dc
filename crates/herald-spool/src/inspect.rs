//! `herald spool inspect DIR`: what a spool directory holds, read without
//! opening it (so it works on a damaged spool, and while another process
//! has it open: it reads, it never writes).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::SpoolError;
use crate::segment::{self, End};

/// One segment file.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    pub file: PathBuf,
    pub first_seq: Option<u64>,
    pub records: u64,
    pub bytes: u64,
    /// `clean`, `torn tail at N (…)`, `damaged at N (…)` or the header's fault.
    pub state: String,
    pub damaged: bool,
}

/// What a spool directory holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub dir: PathBuf,
    pub id: Option<String>,
    /// The newest valid checkpoint: (generation, cursor).
    pub checkpoint: Option<(u64, u64)>,
    pub segments: Vec<SegmentReport>,
    /// Records after the cursor (in clean records).
    pub backlog: u64,
    pub dead_letters: usize,
}

impl Report {
    /// Whether anything is damaged (the spool would refuse to open).
    pub fn damaged(&self) -> bool {
        self.segments.iter().any(|s| s.damaged)
    }
}

/// Read `dir` and report on it.
pub fn inspect(dir: &Path) -> Result<Report, SpoolError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| SpoolError::io(format!("reading {}", p.display()), e))
    };
    if !dir.is_dir() {
        return Err(SpoolError::Invalid(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let cursor_path = dir.join("cursor");
    let checkpoint = if cursor_path.exists() {
        checkpoint::newest(&read(&cursor_path)?)
    } else {
        None
    };
    let cursor = checkpoint.map_or(0, |c| c.1);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| SpoolError::io(format!("listing {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    let mut segments = Vec::new();
    let mut backlog = 0;
    for (i, file) in files.iter().enumerate() {
        let b = read(file)?;
        let last = i + 1 == files.len();
        let report = match segment::parse_header(&b) {
            Err(why) => SegmentReport {
                file: file.clone(),
                first_seq: None,
                records: 0,
                bytes: b.len() as u64,
                state: why,
                damaged: !(last && b.len() < segment::HEADER_LEN),
            },
            Ok(first) => {
                let scan = segment::scan(&b, first);
                backlog += scan
                    .records
                    .iter()
                    .filter(|(seq, _)| *seq >= cursor)
                    .count() as u64;
                let (state, damaged) = match scan.end {
                    End::Clean => ("clean".to_string(), false),
                    End::Torn { at, why } => (format!("torn tail at byte {at} ({why})"), !last),
                    End::Corrupt { at, why } => (format!("damaged at byte {at} ({why})"), true),
                };
                SegmentReport {
                    file: file.clone(),
                    first_seq: Some(first),
                    records: scan.records.len() as u64,
                    bytes: b.len() as u64,
                    state,
                    damaged,
                }
            }
        };
        segments.push(report);
    }
    let dead_path = dir.join("dead-letters");
    let dead_letters = if dead_path.exists() {
        segment::count_frames(&read(&dead_path)?)
    } else {
        0
    };
    let id = std::fs::read_to_string(dir.join("id"))
        .ok()
        .map(|s| s.trim().to_string());
    Ok(Report {
        dir: dir.to_path_buf(),
        id,
        checkpoint,
        segments,
        backlog,
        dead_letters,
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "spool {}", self.dir.display())?;
        writeln!(f, "  id: {}", self.id.as_deref().unwrap_or("(none yet)"))?;
        match self.checkpoint {
            Some((g, c)) => writeln!(
                f,
                "  cursor: {c} (checkpoint generation {g}): records below it were delivered"
            )?,
            None => writeln!(f, "  cursor: 0 (no checkpoint yet)")?,
        }
        writeln!(f, "  backlog: {} records", self.backlog)?;
        writeln!(f, "  dead letters: {}", self.dead_letters)?;
        writeln!(f, "  segments: {}", self.segments.len())?;
        for s in &self.segments {
            let name = s
                .file
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            writeln!(
                f,
                "    {name}: {} records, {} bytes, {}",
                s.records, s.bytes, s.state
            )?;
        }
        if self.damaged() {
            writeln!(
                f,
                "  DAMAGED: the spool will not open; `herald spool repair DIR` (with the spool \
                 closed) copies the damaged bytes to DIR/damaged/ and keeps every good record"
            )?;
        }
        Ok(())
    }
}
