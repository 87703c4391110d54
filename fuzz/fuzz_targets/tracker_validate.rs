//! The tracker's request validation on arbitrary protobuf: the first byte
//! picks the request type (modulo 6: 0 announce, 1 metainfo, 2 announce
//! with a remote address, 3 prefetch, 4 prefetch progress report, 5 watch
//! of prefetch jobs), the rest is decoded with prost and validated.
//! Whatever validates is re-encoded and must validate to the same value,
//! within the bounds the validator promises.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use shoal_proto::tracker::{
    AnnounceRequest, GetMetainfoRequest, PrefetchRequest, ReportProgressRequest, WatchJobsRequest,
};
use shoal_tracker::prefetch::validate as prefetch;
use shoal_tracker::validate;

/// Decodes `body` as `M`, or returns from the fuzz case.
macro_rules! decode_or_skip {
    ($message:ty, $body:expr) => {
        match <$message>::decode($body) {
            Ok(request) => request,
            Err(_) => return,
        }
    };
}

/// The request re-encoded and decoded, as a second client would send it.
fn again<M: Message + Default>(request: &M) -> M {
    M::decode(request.encode_to_vec().as_slice()).expect("a re-encoded request decodes")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 | 2 => {
            let request = decode_or_skip!(AnnounceRequest, body);
            let remote: Option<SocketAddr> =
                (selector % 6 == 2).then(|| SocketAddr::from(([10, 0, 0, 7], 40_000)));
            if let Ok(announce) = validate::announce(&request, remote) {
                assert_eq!(
                    validate::announce(&again(&request), remote).as_ref(),
                    Ok(&announce)
                );
            }
        }
        1 => {
            let request = decode_or_skip!(GetMetainfoRequest, body);
            if let Ok(query) = validate::metainfo_query(&request) {
                assert_eq!(query.digest.to_string(), request.digest);
                assert_eq!(
                    validate::metainfo_query(&again(&request)).as_ref(),
                    Ok(&query)
                );
            }
        }
        3 => {
            let request = decode_or_skip!(PrefetchRequest, body);
            if let Ok(job) = prefetch::prefetch(&request) {
                assert_eq!(job.repository.to_string(), request.repository);
                assert!(job.selector.len() <= prefetch::MAX_LABELS);
                assert!(job.timeout.as_secs() <= u64::from(prefetch::MAX_TIMEOUT_SECONDS));
                assert_eq!(prefetch::prefetch(&again(&request)).as_ref(), Ok(&job));
            }
        }
        4 => {
            let request = decode_or_skip!(ReportProgressRequest, body);
            if let Ok(report) = prefetch::report(&request) {
                assert!(report.blobs.len() <= prefetch::MAX_BLOBS);
                assert!(report.blobs.iter().all(|b| b.done <= b.size));
                assert!(report.message.len() <= prefetch::MAX_MESSAGE_LEN);
                assert!(!report.node.is_empty() && report.node.len() <= prefetch::MAX_NODE_LEN);
                assert_eq!(prefetch::report(&again(&request)).as_ref(), Ok(&report));
            }
        }
        _ => {
            let request = decode_or_skip!(WatchJobsRequest, body);
            if let Ok(watch) = prefetch::watch(&request) {
                assert!(!watch.node.is_empty() && watch.node.len() <= prefetch::MAX_NODE_LEN);
                assert!(watch.labels.len() <= prefetch::MAX_LABELS);
                assert_eq!(prefetch::watch(&again(&request)).as_ref(), Ok(&watch));
            }
        }
    }
});
