//! Broker responses are input from the network: decoding any bytes the way
//! herald does (shape check, then kafka-protocol) must return an error or a
//! value, never panic or allocate without bound. Covers every response
//! type herald reads, at every version it speaks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let v = (selector >> 2) as i16;
    let (key, version) = match selector & 3 {
        0 => (0, 3 + v % 7),  // Produce v3-9
        1 => (3, 1 + v % 9),  // Metadata v1-9
        2 => (18, v % 4),     // ApiVersions v0-3
        _ => (22, v % 5),     // InitProducerId v0-4
    };
    let _ = herald::fuzzing::decode_response(key, version, rest);
});
