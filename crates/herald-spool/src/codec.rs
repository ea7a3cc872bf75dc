//! A spooled record's bytes (the payload of a segment frame): pure
//! functions, no I/O.
//!
//! Layout, all integers big-endian: version (u8, 1); timestamp (i64, -1:
//! none); partition (i32, -1: none); topic (u16 length, UTF-8); key and
//! value (i32 length, -1: null, then bytes); header count (u32), then per
//! header its name (u16 length, UTF-8) and value (i32 length, -1: null).

use std::sync::Arc;

use bytes::Bytes;
use herald::record::Header;
use herald::Record;

const VERSION: u8 = 1;

/// Encode `r` at the end of `out`.
pub fn encode(r: &Record, out: &mut Vec<u8>) -> Result<(), String> {
    if r.topic.len() > u16::MAX as usize {
        return Err(format!(
            "topic name of {} bytes (at most 65535)",
            r.topic.len()
        ));
    }
    out.push(VERSION);
    out.extend_from_slice(&r.timestamp.unwrap_or(-1).to_be_bytes());
    out.extend_from_slice(&r.partition.unwrap_or(-1).to_be_bytes());
    out.extend_from_slice(&(r.topic.len() as u16).to_be_bytes());
    out.extend_from_slice(r.topic.as_bytes());
    put_opt(out, r.key.as_deref())?;
    put_opt(out, r.value.as_deref())?;
    out.extend_from_slice(&(r.headers.len() as u32).to_be_bytes());
    for h in &r.headers {
        if h.key.len() > u16::MAX as usize {
            return Err(format!(
                "header name of {} bytes (at most 65535)",
                h.key.len()
            ));
        }
        out.extend_from_slice(&(h.key.len() as u16).to_be_bytes());
        out.extend_from_slice(h.key.as_bytes());
        put_opt(out, h.value.as_deref())?;
    }
    Ok(())
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) -> Result<(), String> {
    match b {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            let n = i32::try_from(b.len()).map_err(|_| format!("a field of {} bytes", b.len()))?;
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

/// Reads fields off the front of a payload.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    /// The buffer `b` is, when the fields may be slices of it (no copy).
    shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let left = self.b.len() - self.pos;
        if left < n {
            return Err(format!("{n} bytes wanted, {left} left"));
        }
        let head = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn opt(&mut self) -> Result<Option<Bytes>, String> {
        let n = i32::from_be_bytes(self.array()?);
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(format!("length {n}")),
            n => {
                let at = self.pos;
                let b = self.take(n as usize)?;
                Ok(Some(match self.shared {
                    Some(whole) => whole.slice(at..at + b.len()),
                    None => Bytes::copy_from_slice(b),
                }))
            }
        }
    }

    fn text(&mut self) -> Result<&'a str, String> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| "a name that is not UTF-8".into())
    }
}

/// The topic of an encoded record, without decoding the rest.
pub fn topic(b: &[u8]) -> Option<&str> {
    let len = u16::from_be_bytes(b.get(13..15)?.try_into().ok()?) as usize;
    std::str::from_utf8(b.get(15..15 + len)?).ok()
}

/// The timestamp of an encoded record, without decoding the rest.
pub fn timestamp(b: &[u8]) -> Option<i64> {
    let t = i64::from_be_bytes(b.get(1..9)?.try_into().ok()?);
    (t >= 0).then_some(t)
}

/// A record back from its spooled bytes (copied out of them).
pub fn decode(b: &[u8]) -> Result<Record, String> {
    decode_from(
        Reader {
            b,
            pos: 0,
            shared: None,
        },
        &mut None,
    )
}

/// As [`decode`], with the key and values as slices of `b` (no copy) and
/// the topic's name shared with the last record's when it is the same (the
/// forwarder decodes every record it sends: this keeps it to the
/// allocations the record's header needs).
pub fn decode_shared(b: &Bytes, topic: &mut Option<Arc<str>>) -> Result<Record, String> {
    decode_from(
        Reader {
            b,
            pos: 0,
            shared: Some(b),
        },
        topic,
    )
}

fn decode_from(mut r: Reader<'_>, last_topic: &mut Option<Arc<str>>) -> Result<Record, String> {
    let [version] = r.array::<1>()?;
    if version != VERSION {
        return Err(format!(
            "record version {version} (this build reads {VERSION})"
        ));
    }
    let timestamp = i64::from_be_bytes(r.array()?);
    let partition = i32::from_be_bytes(r.array()?);
    let name = r.text()?;
    let topic = match last_topic {
        Some(t) if &**t == name => t.clone(),
        _ => {
            let t: Arc<str> = Arc::from(name);
            *last_topic = Some(t.clone());
            t
        }
    };
    let key = r.opt()?;
    let value = r.opt()?;
    let count = u32::from_be_bytes(r.array()?);
    // One more: the forwarder adds the record's id header.
    let mut headers = Vec::with_capacity(count.min(1024) as usize + 1);
    for _ in 0..count {
        let key = r.text()?.to_string();
        let value = r.opt()?;
        headers.push(Header { key, value });
    }
    if r.pos != r.b.len() {
        return Err(format!("{} bytes after the record", r.b.len() - r.pos));
    }
    let mut rec = Record::new(topic, Bytes::new());
    rec.value = value;
    rec.key = key;
    rec.headers = headers;
    rec.partition = (partition >= 0).then_some(partition);
    rec.timestamp = (timestamp >= 0).then_some(timestamp);
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_as_they_went_in() {
        let mut full = Record::new("orders", Bytes::from_static(b"{\"id\":1}"))
            .key(Bytes::from_static(b"k"))
            .partition(3)
            .timestamp(1_700_000_000_000)
            .header("trace", Bytes::from_static(b"abc"));
        full.headers.push(Header {
            key: "trace".into(),
            value: None,
        });
        let mut bare: Record = Record::new("t", Bytes::new());
        bare.value = None;
        for r in [full, bare] {
            let mut b = Vec::new();
            encode(&r, &mut b).unwrap();
            assert_eq!(decode(&b).unwrap(), r);
            // Topic and timestamp read without decoding agree.
            assert_eq!(topic(&b), Some(&*r.topic));
            assert_eq!(timestamp(&b), r.timestamp);
            // Every strict prefix is refused, never misread.
            for cut in 0..b.len() {
                assert!(decode(&b[..cut]).is_err(), "prefix of {cut} bytes");
            }
        }
    }
}
