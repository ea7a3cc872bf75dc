//! Hostile JSON and schemas through herald-schema's JSON-to-Avro encoder:
//! the input is a schema and a JSON value separated by a NUL byte. Any
//! input gives an error or bytes, never a panic; and whatever herald
//! writes, `apache-avro`'s reader reads back whole (an independent check
//! of the encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // herald-schema catches apache-avro's own panics on some invalid
    // schemas (turning them into errors); libfuzzer-sys's panic hook would
    // abort on those even though they are caught. A panic that escapes is
    // still a crash: fuzz_target! aborts on it.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (Ok(schema), Ok(value)) = (
        std::str::from_utf8(&data[..split]),
        serde_json::from_slice::<serde_json::Value>(&data[split + 1..]),
    ) else {
        return;
    };
    let Ok(enc) = herald_schema::AvroEncoder::new(schema) else {
        return;
    };
    if let Ok(bytes) = enc.to_vec(&value) {
        let mut rest = &bytes[..];
        let read = apache_avro::from_avro_datum(enc.schema(), &mut rest, None);
        assert!(read.is_ok(), "apache-avro cannot read what herald wrote: {read:?}");
        assert!(rest.is_empty(), "{} bytes left over", rest.len());
    }
});
