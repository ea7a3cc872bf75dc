//! The on-disk log against a real directory: what comes back after a
//! reopen, torn tails, damage, checkpoints, the lock. (The simulated
//! filesystem with power losses, kill -9 loops and FUSE are issue 13's
//! next steps.)

use std::io::Write;
use std::path::Path;

use herald_spool::{Log, LogConfig, SpoolError};

fn small() -> LogConfig {
    LogConfig { segment_bytes: 300 }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 7) as usize)).into_bytes()
}

/// Append `n` records in groups of 3 (from the log's next sequence).
fn fill(log: &mut Log, n: u64) {
    let mut i = log.bounds().end;
    let end = i + n;
    while i < end {
        let group: Vec<Vec<u8>> = (i..end.min(i + 3)).map(payload).collect();
        let r = log.append(&[group]).unwrap().remove(0);
        assert_eq!(r.start, i);
        i = r.end;
    }
}

fn all(log: &Log) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = log.bounds().start;
    loop {
        let got = log.read_from(at, 1000).unwrap();
        let Some(last) = got.last() else { break };
        at = last.0 + 1;
        out.extend(got);
    }
    out
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn appended_records_come_back_in_order_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, rec) = Log::open(dir.path(), small()).unwrap();
        assert_eq!(rec, Default::default());
        fill(&mut log, 40);
    }
    assert!(segments(dir.path()).len() > 3, "small segments roll");
    let (log, rec) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(rec.truncated, None);
    assert_eq!(log.bounds(), 0..40);
    let got = all(&log);
    assert_eq!(got.len(), 40);
    for (i, (seq, p)) in got.into_iter().enumerate() {
        assert_eq!((seq, p), (i as u64, payload(i as u64)));
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
        fill(&mut log, 10);
    }
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // An 11th frame written halfway, then garbage: never acknowledged.
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2])
        .unwrap();
    drop(f);
    let (mut log, rec) = Log::open(dir.path(), LogConfig::default()).unwrap();
    let (file, at, _) = rec.truncated.expect("the torn tail was cut");
    assert_eq!((file, at), (seg.clone(), len));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    assert_eq!(log.bounds(), 0..10);
    fill(&mut log, 5);
    drop(log);
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(all(&log).len(), 15);
}

#[test]
fn damage_before_good_records_refuses_to_open_and_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(dir.path(), small()).unwrap();
        fill(&mut log, 40);
    }
    let segs = segments(dir.path());
    for (which, seg) in [("sealed", &segs[0]), ("last", segs.last().unwrap())] {
        let good = std::fs::read(seg).unwrap();
        let mut bad = good.clone();
        // Inside the first record's payload (header 20 + frame 16).
        bad[40] ^= 0x01;
        std::fs::write(seg, &bad).unwrap();
        let err = Log::open(dir.path(), small()).unwrap_err();
        match &err {
            SpoolError::Corrupt { file, offset, .. } => {
                assert_eq!((file, *offset), (seg, 20), "{which}: {err}")
            }
            other => panic!("{which}: {other}"),
        }
        let text = err.to_string();
        assert!(text.contains("repair") && text.contains(".seg"), "{text}");
        std::fs::write(seg, &good).unwrap();
    }
    assert_eq!(all(&Log::open(dir.path(), small()).unwrap().0).len(), 40);
}

#[test]
fn a_checkpoint_removes_delivered_segments_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    fill(&mut log, 40);
    let before = segments(dir.path()).len();
    let removed = log.checkpoint(25).unwrap();
    assert!(removed > 0);
    assert_eq!(segments(dir.path()).len(), before - removed);
    drop(log);
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.bounds(), 25..40);
    let got = all(&log);
    assert_eq!(got.first().unwrap().0, 25);
    assert_eq!(got.len(), 15);
    // Everything delivered: only the active segment stays.
    let mut log = log;
    log.checkpoint(40).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    drop(log);
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.bounds(), 40..40);
    fill(&mut log, 2);
    assert_eq!(log.bounds(), 40..42);
}

#[test]
fn a_second_opener_is_refused_with_the_directory_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = Log::open(dir.path(), small()).unwrap();
    let err = Log::open(dir.path(), small()).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

/// `inspect` reads a spool without opening it: segments, cursor, backlog,
/// and where the damage is when there is some.
#[test]
fn inspect_reports_segments_cursor_backlog_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(dir.path(), small()).unwrap();
        fill(&mut log, 40);
        log.checkpoint(10).unwrap();
    }
    let r = herald_spool::inspect(dir.path()).unwrap();
    assert_eq!(r.checkpoint.map(|c| c.1), Some(10));
    assert_eq!(r.backlog, 30);
    assert!(!r.damaged());
    let text = r.to_string();
    assert!(
        text.contains("backlog: 30 records") && text.contains("clean"),
        "{text}"
    );
    let seg = segments(dir.path()).remove(1);
    let mut b = std::fs::read(&seg).unwrap();
    b[40] ^= 1;
    std::fs::write(&seg, &b).unwrap();
    let r = herald_spool::inspect(dir.path()).unwrap();
    assert!(r.damaged());
    let text = r.to_string();
    assert!(
        text.contains("damaged at byte 20") && text.contains("DAMAGED"),
        "{text}"
    );
}

/// `repair` after a flipped bit in a sealed segment and in the middle of
/// the last one, and after a sealed segment's header is damaged: the spool
/// opens again, every good record at its sequence, each lost one a hole
/// (which forwarding makes a dead letter), the damaged bytes kept aside.
#[test]
fn repair_sets_the_damage_aside_and_keeps_every_good_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(dir.path(), small()).unwrap();
        fill(&mut log, 40);
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 4);
    let flip = |seg: &Path, at: usize| {
        let mut b = std::fs::read(seg).unwrap();
        b[at] ^= 0x01;
        std::fs::write(seg, &b).unwrap();
    };
    // A payload byte of the first record of the first segment, and of the
    // second record of the last one (a third follows it), then the header
    // of the second segment.
    let last = segs.last().unwrap();
    let last_first: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    {
        let (log, _) = Log::open(dir.path(), small()).unwrap();
        assert!(
            log.bounds().end - last_first >= 3,
            "the last segment has 3 records"
        );
    }
    let second_len = 20 + 16 + payload(last_first).len();
    flip(&segs[0], 40);
    flip(last, second_len + 16 + 2);
    flip(&segs[1], 9);
    assert!(matches!(
        Log::open(dir.path(), small()),
        Err(SpoolError::Corrupt { .. })
    ));
    let second_first: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let third_first: u64 = segs[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let report = herald_spool::repair(dir.path()).unwrap();
    let text = report.to_string();
    let lost_expected = 1 + (third_first - second_first) + 1;
    assert_eq!(report.lost, lost_expected, "{text}");
    assert!(text.contains("damaged header"), "{text}");

    let (log, _) = Log::open(dir.path(), small()).expect("opens after repair");
    assert_eq!(log.bounds(), 0..40);
    let got = all(&log);
    assert_eq!(got.len(), 40);
    let mut holes = Vec::new();
    for (seq, p) in got {
        match herald_spool::segment::hole_reason(&p) {
            Some(why) => {
                assert!(why.contains("herald spool repair"), "{why}");
                holes.push(seq);
            }
            None => assert_eq!(p, payload(seq), "record {seq}"),
        }
    }
    let mut want = vec![0];
    want.extend(second_first..third_first);
    want.push(last_first + 1);
    assert_eq!(holes, want);
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("damaged"))
        .unwrap()
        .collect();
    assert_eq!(aside.len(), 3, "the damaged bytes of the three places");
    drop(log);
    // Nothing left to repair; appends go on after it.
    assert_eq!(herald_spool::repair(dir.path()).unwrap().lost, 0);
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    fill(&mut log, 5);
    assert_eq!(all(&log).len(), 45);
}

/// A checkpoint lost (both slots unreadable) while the delivered segments
/// are gone: open refuses, naming the cursor file, instead of starting
/// from record 0 and failing later.
#[test]
fn a_lost_checkpoint_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(dir.path(), small()).unwrap();
        fill(&mut log, 40);
        assert!(
            log.checkpoint(25).unwrap() > 0,
            "delivered segments removed"
        );
    }
    let cursor = dir.path().join("cursor");
    std::fs::write(&cursor, vec![0u8; 1024]).unwrap();
    match Log::open(dir.path(), small()) {
        Err(SpoolError::Corrupt { file, what, .. }) => {
            assert_eq!(file, cursor);
            assert!(what.contains("checkpoint is lost"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

/// `repair` of the last segment's damaged header keeps its records at
/// their sequences (found by their own checked frames), so no sequence is
/// handed out twice.
#[test]
fn repair_of_the_last_segments_header_keeps_its_sequences() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(dir.path(), small()).unwrap();
        fill(&mut log, 40);
    }
    let last = segments(dir.path()).pop().unwrap();
    let mut b = std::fs::read(&last).unwrap();
    b[9] ^= 1; // in the header's first sequence
    std::fs::write(&last, &b).unwrap();
    assert!(matches!(
        Log::open(dir.path(), small()),
        Err(SpoolError::Corrupt { .. })
    ));
    let report = herald_spool::repair(dir.path()).unwrap();
    assert_eq!(report.lost, 0, "{report}");
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.bounds(), 0..40);
    assert_eq!(all(&log).len(), 40);
    fill(&mut log, 1);
    assert_eq!(log.bounds().end, 41);
}
