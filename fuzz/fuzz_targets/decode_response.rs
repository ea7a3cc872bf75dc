//! Broker responses are input from the network: decoding any bytes must
//! return an error or a value, never panic or allocate without bound.
//! Decodes every response type herald reads, at every version it speaks.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsResponse, InitProducerIdResponse, MetadataResponse, ProduceResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use libfuzzer_sys::fuzz_target;

fn decode<R: Decodable + HeaderVersion>(data: &[u8], version: i16) {
    let mut buf = Bytes::copy_from_slice(data);
    if ResponseHeader::decode(&mut buf, R::header_version(version)).is_ok() {
        let _ = R::decode(&mut buf, version);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let v = (selector >> 2) as i16;
    match selector & 3 {
        0 => decode::<ProduceResponse>(rest, 3 + v % 7),
        1 => decode::<MetadataResponse>(rest, 1 + v % 9),
        2 => decode::<ApiVersionsResponse>(rest, v % 4),
        _ => decode::<InitProducerIdResponse>(rest, v % 5),
    }
});
