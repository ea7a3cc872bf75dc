//! Confluent's wire format: byte 0 (the "magic byte"), the schema id as 4
//! big-endian bytes, then the serialized payload. Every Confluent
//! serializer and deserializer (Java, Go, Python, librdkafka's) reads and
//! writes it.

/// The magic byte.
pub const MAGIC: u8 = 0;

/// The 5-byte header for `schema_id`.
pub fn header(schema_id: u32) -> [u8; 5] {
    let id = schema_id.to_be_bytes();
    [MAGIC, id[0], id[1], id[2], id[3]]
}

/// `payload` framed for `schema_id`.
pub fn frame(schema_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.extend_from_slice(&header(schema_id));
    out.extend_from_slice(payload);
    out
}

/// The schema id and the payload of a framed message, or why it is not one.
pub fn unframe(message: &[u8]) -> Result<(u32, &[u8]), String> {
    match message {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if *m != MAGIC => Err(format!(
            "not in the Confluent wire format: the first byte is {m}, not 0"
        )),
        _ => Err(format!(
            "not in the Confluent wire format: {} bytes, fewer than the 5 of the header",
            message.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_refuses_what_is_not_framed() {
        let m = frame(0x0102_0304, b"abc");
        assert_eq!(m, [0, 1, 2, 3, 4, b'a', b'b', b'c']);
        assert_eq!(unframe(&m).unwrap(), (0x0102_0304, &b"abc"[..]));
        assert!(unframe(&[1, 0, 0, 0, 1])
            .unwrap_err()
            .contains("first byte is 1"));
        assert!(unframe(&[0, 0, 1]).unwrap_err().contains("3 bytes"));
    }
}
