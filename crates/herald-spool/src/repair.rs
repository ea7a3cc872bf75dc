//! `herald spool repair DIR`: set damage aside explicitly, so a spool that
//! refuses to open (`SpoolError::Corrupt`) opens again, with every good
//! record kept at its sequence. The damaged bytes are copied to
//! `DIR/damaged/` (for a look, or a rescue by hand); each record lost is
//! replaced by a *hole* frame at its sequence, which the forwarder turns
//! into a dead letter with the reason. Sequences stay contiguous and keep
//! their numbers, so the record ids already sent (`herald.spool.id`) stay
//! true.
//!
//! Each rewritten segment is written to a temporary file, synced, renamed
//! over the old one, and the directory synced: an interrupted repair
//! leaves the old segment or the new one, never half of each.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::SpoolError;
use crate::fs::{Fs, RealFs};
use crate::segment::{self, End};

/// What a repair did.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// One line per thing done.
    pub actions: Vec<String>,
    /// Records lost (replaced by holes, which become dead letters).
    pub lost: u64,
    /// Where the damaged bytes were copied.
    pub damaged_dir: PathBuf,
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            return writeln!(f, "nothing to repair: every segment is clean");
        }
        for a in &self.actions {
            writeln!(f, "{a}")?;
        }
        writeln!(
            f,
            "{} record(s) lost; they will be dead letters with the reason. Damaged bytes: {}",
            self.lost,
            self.damaged_dir.display()
        )
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SpoolError {
    move |e| SpoolError::io(what, e)
}

/// Repair the spool in `dir` (not while it is open: the lock is taken).
pub fn repair(dir: &Path) -> Result<RepairReport, SpoolError> {
    let fs = RealFs;
    let _lock = fs
        .try_lock(&dir.join("lock"))
        .map_err(io(format!("locking {}", dir.display())))?
        .ok_or_else(|| SpoolError::Locked {
            dir: dir.to_path_buf(),
        })?;
    let aside = dir.join("damaged");
    let mut report = RepairReport {
        damaged_dir: aside.clone(),
        ..RepairReport::default()
    };
    let mut names: Vec<u64> = fs
        .list(dir)
        .map_err(io(format!("listing {}", dir.display())))?
        .iter()
        .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
        .collect();
    names.sort();
    let path = |first: u64| dir.join(format!("{first:020}.seg"));
    let save = |name: String, bytes: &[u8]| -> Result<PathBuf, SpoolError> {
        std::fs::create_dir_all(&aside).map_err(io(format!("creating {}", aside.display())))?;
        let to = aside.join(name);
        // Synced (file and directory) before the original is replaced.
        std::fs::File::create(&to)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, bytes)?;
                f.sync_all()
            })
            .and_then(|()| RealFs.sync_dir(&aside))
            .map_err(io(format!("writing {}", to.display())))?;
        Ok(to)
    };
    // Where the previous segment's records end (a gap after it is lost).
    let mut prev_end: Option<u64> = None;
    for (i, &first) in names.iter().enumerate() {
        let p = path(first);
        let next_first = names.get(i + 1).copied();
        let last = next_first.is_none();
        if let Some(end) = prev_end.filter(|e| *e < first) {
            let why = format!(
                "records {end}..{first} were missing (no segment held them) when \
                 `herald spool repair` ran"
            );
            write_segment(dir, end, &holes(end..first, &why))?;
            report.lost += first - end;
            report
                .actions
                .push(format!("records {end}..{first}: missing; holes written"));
        }
        let bytes = std::fs::read(&p).map_err(io(format!("reading {}", p.display())))?;
        let file = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if last && bytes.len() < segment::HEADER_LEN {
            prev_end = Some(first);
            continue; // a segment header cut short: opening removes it
        }
        let header_ok = segment::parse_header(&bytes).is_ok_and(|s| s == first);
        if !header_ok {
            let to = save(file.clone(), &bytes)?;
            std::fs::remove_file(&p).map_err(io(format!("removing {}", p.display())))?;
            match next_first {
                Some(next) => {
                    let why = format!(
                        "record in {file}, whose header was damaged; `herald spool repair` \
                         copied it to {}",
                        to.display()
                    );
                    write_segment(dir, first, &holes(first..next, &why))?;
                    report.lost += next - first;
                    report.actions.push(format!(
                        "{file}: damaged header; moved to {}, records {first}..{next} lost",
                        to.display()
                    ));
                    prev_end = Some(next);
                }
                None => {
                    // The last segment: its records are found by their own
                    // checked frames (their sequences start at its name),
                    // so none of its sequences is ever handed out again.
                    let s = segment::salvage(&bytes, first, None);
                    let why = format!(
                        "record in {file}, whose header was damaged; `herald spool repair` \
                         copied it to {}",
                        to.display()
                    );
                    let end = rewrite(dir, first, &bytes, &s, &why, &mut report)?;
                    report.actions.push(format!(
                        "{file}: damaged header (the last segment); copied to {}, {} good \
                         records kept",
                        to.display(),
                        s.frames.len()
                    ));
                    prev_end = Some(end);
                }
            }
            continue;
        }
        let scan = segment::scan(&bytes, first);
        let damaged = match scan.end {
            End::Clean => false,
            End::Torn { .. } => !last, // the last one's torn tail: opening cuts it
            End::Corrupt { .. } => true,
        };
        if !damaged {
            prev_end = Some(first + scan.records.len() as u64);
            continue;
        }
        let s = segment::salvage(&bytes, first, next_first);
        let mut saved = Vec::new();
        for r in &s.damaged {
            saved.push(save(format!("{file}.{}", r.start), &bytes[r.clone()])?);
        }
        let where_ = saved
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let why = format!(
            "damaged on disk in {file}; `herald spool repair` copied the bytes to {where_}"
        );
        let end = rewrite(dir, first, &bytes, &s, &why, &mut report)?;
        report.actions.push(format!(
            "{file}: damaged; records lost: {}; good records kept: {}; bytes set aside: {where_}",
            s.lost
                .iter()
                .map(|r| format!("{}..{}", r.start, r.end))
                .collect::<Vec<_>>()
                .join(", "),
            s.frames.len()
        ));
        prev_end = Some(end);
    }
    Ok(report)
}

/// Rewrite segment `first` with what `s` salvaged of `bytes`: its good
/// frames and a hole (with `why`) for each record lost, in sequence order.
/// Counts the lost records; returns where the segment's records end.
fn rewrite(
    dir: &Path,
    first: u64,
    bytes: &[u8],
    s: &segment::Salvage,
    why: &str,
    report: &mut RepairReport,
) -> Result<u64, SpoolError> {
    let mut out: Vec<(u64, Vec<u8>, bool)> = s
        .frames
        .iter()
        .map(|(seq, r, more)| (*seq, bytes[r.clone()].to_vec(), *more))
        .collect();
    for r in &s.lost {
        out.extend(holes(r.clone(), why));
        report.lost += r.end - r.start;
    }
    out.sort_by_key(|(seq, _, _)| *seq);
    write_segment(dir, first, &out)?;
    Ok(out.last().map_or(first, |(seq, _, _)| seq + 1))
}

fn holes(seqs: std::ops::Range<u64>, why: &str) -> Vec<(u64, Vec<u8>, bool)> {
    seqs.map(|s| (s, segment::hole(why), false)).collect()
}

/// Write segment `first` with these frames: to a temporary file, synced,
/// renamed over, directory synced.
fn write_segment(
    dir: &Path,
    first: u64,
    frames: &[(u64, Vec<u8>, bool)],
) -> Result<(), SpoolError> {
    use std::io::Write;
    let mut b = segment::header(first).to_vec();
    for (seq, payload, more) in frames {
        segment::put_frame(&mut b, *seq, payload, *more);
    }
    let to = dir.join(format!("{first:020}.seg"));
    let tmp = dir.join(format!("{first:020}.seg.repair"));
    std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&b)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &to))
        .and_then(|()| RealFs.sync_dir(dir))
        .map_err(io(format!("writing {}", to.display())))
}
