//! The tracker's request validation on arbitrary protobuf: the first byte
//! picks the request type, the rest is decoded with prost and validated.
//! Whatever validates is re-encoded and must validate to the same value.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use shoal_proto::tracker::{AnnounceRequest, GetMetainfoRequest};
use shoal_tracker::validate;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        let Ok(request) = AnnounceRequest::decode(body) else {
            return;
        };
        let remote: Option<SocketAddr> =
            (selector & 2 != 0).then(|| SocketAddr::from(([10, 0, 0, 7], 40_000)));
        if let Ok(announce) = validate::announce(&request, remote) {
            let again = AnnounceRequest::decode(request.encode_to_vec().as_slice())
                .expect("a re-encoded request decodes");
            assert_eq!(validate::announce(&again, remote).as_ref(), Ok(&announce));
        }
    } else {
        let Ok(request) = GetMetainfoRequest::decode(body) else {
            return;
        };
        if let Ok(query) = validate::metainfo_query(&request) {
            assert_eq!(query.digest.to_string(), request.digest);
            let again = GetMetainfoRequest::decode(request.encode_to_vec().as_slice())
                .expect("a re-encoded request decodes");
            assert_eq!(validate::metainfo_query(&again).as_ref(), Ok(&query));
        }
    }
});
