//! Broker responses are input from the network: decoding any bytes the way
//! herald does (shape check, then kafka-protocol) must return an error or a
//! value, never panic or allocate without bound. Covers every response
//! type herald reads, at every version it speaks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = herald::fuzzing::decode_selected(data);
});
