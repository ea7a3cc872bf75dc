//! The delivered cursor's checkpoint: two slots in one file, written
//! alternately, each with a generation and a CRC-32C, so that a write torn
//! by a power loss leaves the other slot (the previous checkpoint) intact.
//! Pure functions, no I/O.
//!
//! ```text
//! slot (24 bytes, at offset 0 or 512): magic "HCUR" | generation u64 | cursor u64 | CRC-32C u32 of the 20 before
//! ```
//! The cursor is the first sequence not yet known to be delivered: every
//! record below it was acknowledged by Kafka. The slots sit in different
//! 512-byte sectors so that one torn write cannot touch both.

pub const SLOT_LEN: usize = 24;
pub const SLOT_STRIDE: usize = 512;
pub const FILE_LEN: usize = 2 * SLOT_STRIDE;
const MAGIC: [u8; 4] = *b"HCUR";

/// The slot a generation is written to, and its bytes.
pub fn slot(generation: u64, cursor: u64) -> (usize, [u8; SLOT_LEN]) {
    let mut b = [0u8; SLOT_LEN];
    b[..4].copy_from_slice(&MAGIC);
    b[4..12].copy_from_slice(&generation.to_be_bytes());
    b[12..20].copy_from_slice(&cursor.to_be_bytes());
    let crc = crc32c::crc32c(&b[..20]);
    b[20..].copy_from_slice(&crc.to_be_bytes());
    ((generation % 2) as usize * SLOT_STRIDE, b)
}

fn read_slot(b: &[u8]) -> Option<(u64, u64)> {
    let b = b.get(..SLOT_LEN)?;
    if b[..4] != MAGIC || u32::from_be_bytes(b[20..24].try_into().ok()?) != crc32c::crc32c(&b[..20])
    {
        return None;
    }
    Some((
        u64::from_be_bytes(b[4..12].try_into().ok()?),
        u64::from_be_bytes(b[12..20].try_into().ok()?),
    ))
}

/// The newest valid checkpoint in a checkpoint file's bytes: (generation,
/// cursor). `None` if neither slot checks (a new spool).
pub fn newest(file: &[u8]) -> Option<(u64, u64)> {
    let a = file.get(..SLOT_LEN).and_then(read_slot);
    let b = file.get(SLOT_STRIDE..).and_then(read_slot);
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(writes: &[(u64, u64)]) -> Vec<u8> {
        let mut f = vec![0u8; FILE_LEN];
        for &(g, c) in writes {
            let (at, b) = slot(g, c);
            f[at..at + SLOT_LEN].copy_from_slice(&b);
        }
        f
    }

    #[test]
    fn the_newest_generation_wins_and_a_torn_slot_falls_back() {
        assert_eq!(newest(&vec![0u8; FILE_LEN]), None);
        let f = file_with(&[(1, 10), (2, 20), (3, 30)]);
        assert_eq!(newest(&f), Some((3, 30)));
        // Generation 4 torn mid-write (slot 0): generation 3 stays.
        let mut torn = file_with(&[(1, 10), (2, 20), (3, 30), (4, 40)]);
        torn[5] ^= 0xFF;
        assert_eq!(newest(&torn), Some((3, 30)));
        // A file cut short after the first slot.
        assert_eq!(newest(&f[..SLOT_LEN]), Some((2, 20)));
    }
}
