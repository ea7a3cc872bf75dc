//! A segment file's bytes: its header and its record frames, and the scan
//! that recovery runs over them. Pure functions, no I/O.
//!
//! ```text
//! header  (20 bytes): magic "HSPL" | version u32 = 1 | first sequence u64 | CRC-32C u32 of the 16 before
//! frame   (16 bytes + payload): more (1 bit) + payload length (31 bits) u32 | sequence u64 |
//!                                CRC-32C u32 of the length word, sequence and payload | payload
//! ```
//! All integers big-endian. The CRC covers the sequence, so stale bytes
//! (an older frame left where a new one was being written) cannot pass as
//! the record expected at that place. "More" marks a frame of an atomic
//! batch with more frames after it: a scan keeps a batch whole or not at
//! all (the frames of a batch cut short are part of the torn tail).

use std::ops::Range;

pub const MAGIC: [u8; 4] = *b"HSPL";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 20;
pub const FRAME_LEN: usize = 16;
/// The largest payload a frame may declare: a bigger length is damage.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// A segment's header.
pub fn header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_be_bytes());
    h[8..16].copy_from_slice(&first_seq.to_be_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..].copy_from_slice(&crc.to_be_bytes());
    h
}

/// The first sequence a header names, or what is wrong with it.
pub fn parse_header(b: &[u8]) -> Result<u64, String> {
    if b.len() < HEADER_LEN {
        return Err(format!("a header of {} bytes (20 expected)", b.len()));
    }
    if b[..4] != MAGIC {
        return Err("not a spool segment (bad magic number)".into());
    }
    let crc = u32::from_be_bytes(b[16..20].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&b[..16]) {
        return Err("the segment header fails its checksum".into());
    }
    let version = u32::from_be_bytes(b[4..8].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "segment format version {version} (this build reads {VERSION})"
        ));
    }
    Ok(u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")))
}

const MORE: u32 = 1 << 31;

fn frame_crc(word: u32, seq: u64, payload: &[u8]) -> u32 {
    let head = crc32c::crc32c_append(crc32c::crc32c(&word.to_be_bytes()), &seq.to_be_bytes());
    crc32c::crc32c_append(head, payload)
}

/// Append record `seq`'s frame to `out`; `more`: a frame of an atomic
/// batch that is not its last.
pub fn put_frame(out: &mut Vec<u8>, seq: u64, payload: &[u8], more: bool) {
    let word = payload.len() as u32 | if more { MORE } else { 0 };
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&frame_crc(word, seq, payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The whole frames at the start of `b` (a file of frames without a
/// header, such as the dead letters), each checked: their count.
pub fn count_frames(b: &[u8]) -> usize {
    let (mut at, mut n) = (0, 0);
    while b.len() - at >= FRAME_LEN {
        let word = u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let seq = u64::from_be_bytes(b[at + 4..at + 12].try_into().expect("8 bytes"));
        match frame_at(b, at, seq) {
            Ok((payload, _)) if word & !MORE == payload.len() as u32 => {
                at = payload.end;
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a good frame.
    Clean,
    /// From `at` on, bytes that are no good frame, and no good frame after
    /// them: a write cut short (never acknowledged), or garbage after it.
    Torn { at: usize, why: String },
    /// A bad frame at `at` with the next record intact after it, or a
    /// sequence out of order: damage, not a torn write.
    Corrupt { at: usize, why: String },
}

/// What a segment holds: each good record's sequence and payload range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<(u64, Range<usize>)>,
    /// Bytes up to the end of the last good frame.
    pub valid_len: usize,
    pub end: End,
}

/// Why the bytes at a place are not the record expected there.
enum Bad {
    /// Cut short, a length that does not fit, or a failed checksum.
    Broken(String),
    /// A whole, checked frame of another record: never a torn write.
    OutOfOrder(String),
}

/// The frame at `at`, if it is whole, checks, and is record `seq`: its
/// payload and its "more" flag.
fn frame_at(b: &[u8], at: usize, seq: u64) -> Result<(Range<usize>, bool), Bad> {
    if b.len() - at < FRAME_LEN {
        return Err(Bad::Broken("a frame header cut short".into()));
    }
    let word = u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let len = (word & !MORE) as usize;
    let found = u64::from_be_bytes(b[at + 4..at + 12].try_into().expect("8 bytes"));
    let crc = u32::from_be_bytes(b[at + 12..at + 16].try_into().expect("4 bytes"));
    let start = at + FRAME_LEN;
    if len > MAX_PAYLOAD || b.len() - start < len {
        return Err(Bad::Broken(format!(
            "a frame of {len} bytes that does not fit"
        )));
    }
    if crc != frame_crc(word, found, &b[start..start + len]) {
        return Err(Bad::Broken("a frame that fails its checksum".into()));
    }
    if found != seq {
        return Err(Bad::OutOfOrder(format!(
            "record {found} where record {seq} was expected"
        )));
    }
    Ok((start..start + len, word & MORE != 0))
}

/// The length a frame starting at `b[0..4]` declares, header included.
pub fn frame_len(b: &[u8]) -> Option<usize> {
    let word = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
    Some(FRAME_LEN + (word & !MORE) as usize)
}

/// As [`frame`], with the frame's "more" flag (a batch goes on after it).
pub fn frame_more(b: &[u8], at: usize, seq: u64) -> Result<(Range<usize>, bool), String> {
    frame_at(b, at, seq).map_err(|(Bad::Broken(why) | Bad::OutOfOrder(why))| why)
}

/// The payload range of the frame at `at`, which must be whole, check,
/// and be record `seq`; or what is wrong with it.
pub fn frame(b: &[u8], at: usize, seq: u64) -> Result<Range<usize>, String> {
    match frame_at(b, at, seq) {
        Ok((payload, _)) => Ok(payload),
        Err(Bad::Broken(why) | Bad::OutOfOrder(why)) => Err(why),
    }
}

/// Scan a segment's bytes (header included) whose first record is
/// `first_seq`. A bad frame is damage if record after it (the next
/// sequence) is found intact anywhere after it; otherwise it is a torn
/// tail. (A flipped bit in the very last record looks the same as a torn
/// write: nothing after it can tell them apart.)
pub fn scan(b: &[u8], first_seq: u64) -> Scan {
    let mut records = Vec::new();
    let mut at = HEADER_LEN.min(b.len());
    let mut seq = first_seq;
    // Where the last whole batch ends, and its record count.
    let (mut whole_len, mut whole_records) = (at, 0);
    let end = loop {
        if at == b.len() {
            break End::Clean;
        }
        match frame_at(b, at, seq) {
            Ok((payload, more)) => {
                at = payload.end;
                records.push((seq, payload));
                seq += 1;
                if !more {
                    (whole_len, whole_records) = (at, records.len());
                }
            }
            Err(Bad::OutOfOrder(why)) => break End::Corrupt { at, why },
            Err(Bad::Broken(why)) => {
                let next = (seq + 1).to_be_bytes();
                let later = (at + 1..b.len().saturating_sub(FRAME_LEN - 1))
                    .any(|o| b[o + 4..o + 12] == next && frame_at(b, o, seq + 1).is_ok());
                break if later {
                    End::Corrupt { at, why }
                } else {
                    End::Torn { at, why }
                };
            }
        }
    };
    match end {
        // The frames of a batch cut short go with the torn tail.
        End::Clean | End::Torn { .. } if whole_records < records.len() => {
            records.truncate(whole_records);
            Scan {
                records,
                valid_len: whole_len,
                end: End::Torn {
                    at: whole_len,
                    why: "an atomic batch cut short".into(),
                },
            }
        }
        End::Corrupt { at, why } => Scan {
            records,
            valid_len: at,
            end: End::Corrupt { at, why },
        },
        end => Scan {
            records,
            valid_len: whole_len,
            end,
        },
    }
}

/// The payload of a record that `herald spool repair` put in place of a
/// damaged one, so sequences stay contiguous: the forwarder makes it a
/// dead letter with the text after the marker as the reason.
pub const HOLE: &[u8] = b"\0herald-spool-hole\0";

/// A hole's payload.
pub fn hole(why: &str) -> Vec<u8> {
    let mut p = HOLE.to_vec();
    p.extend_from_slice(why.as_bytes());
    p
}

/// If `payload` is a hole, why.
pub fn hole_reason(payload: &[u8]) -> Option<String> {
    payload
        .strip_prefix(HOLE)
        .map(|w| String::from_utf8_lossy(w).into_owned())
}

/// What a damaged segment still holds: its good frames (sequence, payload
/// range, "more" flag), the sequences lost, and the byte ranges that are
/// no good frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Salvage {
    pub frames: Vec<(u64, Range<usize>, bool)>,
    pub lost: Vec<Range<u64>>,
    pub damaged: Vec<Range<usize>>,
}

/// Read every good frame of a segment past its damage. After a bad frame
/// the next good one is searched for (a checked frame of a later sequence,
/// below `end_seq` when the segment is followed by another starting
/// there); the sequences in between are lost. Past the last good frame, a
/// sealed segment (`end_seq` given) has lost the sequences up to `end_seq`.
pub fn salvage(b: &[u8], first_seq: u64, end_seq: Option<u64>) -> Salvage {
    let mut out = Salvage::default();
    let mut at = HEADER_LEN.min(b.len());
    let mut seq = first_seq;
    while at < b.len() {
        if let Ok((payload, more)) = frame_at(b, at, seq) {
            at = payload.end;
            out.frames.push((seq, payload, more));
            seq += 1;
            continue;
        }
        // The next checked frame of a later sequence.
        let found = (at + 1..b.len().saturating_sub(FRAME_LEN - 1)).find_map(|o| {
            let s = u64::from_be_bytes(b[o + 4..o + 12].try_into().expect("8 bytes"));
            let plausible = s > seq && end_seq.is_none_or(|e| s < e);
            (plausible && frame_at(b, o, s).is_ok()).then_some((o, s))
        });
        match found {
            Some((o, s)) => {
                out.damaged.push(at..o);
                out.lost.push(seq..s);
                at = o;
                seq = s;
            }
            None => {
                out.damaged.push(at..b.len());
                at = b.len();
            }
        }
    }
    if let Some(end) = end_seq.filter(|e| *e > seq) {
        out.lost.push(seq..end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: u64, payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut b = header(first).to_vec();
        let mut starts = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            starts.push(b.len());
            put_frame(&mut b, first + i as u64, p, false);
        }
        (b, starts)
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let (b, _) = segment(7, &[b"a", b"bb", b""]);
        assert_eq!(parse_header(&b).unwrap(), 7);
        let s = scan(&b, 7);
        assert_eq!(s.end, End::Clean);
        assert_eq!(s.valid_len, b.len());
        let seqs: Vec<u64> = s.records.iter().map(|r| r.0).collect();
        assert_eq!(seqs, [7, 8, 9]);
        assert_eq!(&b[s.records[1].1.clone()], b"bb");
    }

    /// Every cut of the last frame, and garbage after the last good one,
    /// is a torn tail: the good records stay, nothing else comes back.
    #[test]
    fn a_cut_or_garbage_tail_is_torn() {
        let (b, starts) = segment(0, &[b"first", b"second", b"third"]);
        for cut in starts[2] + 1..b.len() {
            let s = scan(&b[..cut], 0);
            assert!(
                matches!(s.end, End::Torn { at, .. } if at == starts[2]),
                "cut at {cut}"
            );
            assert_eq!(s.records.len(), 2);
        }
        let mut g = b.clone();
        g.extend_from_slice(&[0xAB; 100]);
        let s = scan(&g, 0);
        assert!(matches!(s.end, End::Torn { at, .. } if at == b.len()));
        assert_eq!(s.records.len(), 3);
        let mut z = b;
        z.extend_from_slice(&[0; 4096]);
        assert_eq!(scan(&z, 0).records.len(), 3);
    }

    /// A flipped bit in a record with good records after it is damage,
    /// wherever the bit is (length, sequence, checksum or payload).
    #[test]
    fn a_bad_record_before_good_ones_is_corruption() {
        let (b, starts) = segment(0, &[b"first", b"second", b"third"]);
        for at in starts[1]..starts[2] {
            let mut c = b.clone();
            c[at] ^= 0x10;
            let s = scan(&c, 0);
            assert!(
                matches!(s.end, End::Corrupt { at: bad, .. } if bad == starts[1]),
                "bit flipped at {at}: {:?}",
                s.end
            );
        }
    }

    #[test]
    fn a_gap_in_sequences_is_corruption() {
        let mut b = header(0).to_vec();
        put_frame(&mut b, 0, b"a", false);
        put_frame(&mut b, 2, b"c", false);
        put_frame(&mut b, 3, b"d", false);
        let s = scan(&b, 0);
        assert!(
            matches!(s.end, End::Corrupt { ref why, .. } if why.contains("record 2 where record 1")),
            "{:?}",
            s.end
        );
        assert_eq!(s.records.len(), 1);
    }

    /// A batch is kept whole or not at all: cut anywhere inside it, its
    /// first frames go with the torn tail.
    #[test]
    fn an_atomic_batch_cut_short_is_dropped_whole() {
        let mut b = header(0).to_vec();
        put_frame(&mut b, 0, b"alone", false);
        let batch_at = b.len();
        put_frame(&mut b, 1, b"one", true);
        put_frame(&mut b, 2, b"two", true);
        put_frame(&mut b, 3, b"three", false);
        assert_eq!(scan(&b, 0).records.len(), 4);
        for cut in batch_at + 1..b.len() {
            let s = scan(&b[..cut], 0);
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, batch_at);
            assert!(matches!(s.end, End::Torn { at, .. } if at == batch_at));
        }
    }

    #[test]
    fn bad_headers_are_refused_with_the_reason() {
        let h = header(1);
        let mut bad = h;
        bad[9] ^= 1;
        assert!(parse_header(&bad).unwrap_err().contains("checksum"));
        assert!(parse_header(b"HSP").is_err());
        assert!(parse_header(&[0u8; 20]).unwrap_err().contains("magic"));
    }
}
