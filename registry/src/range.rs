//! The `Range` header of a blob `GET`, read one way by both servers (RFC
//! 9110 section 14), so that the origin and the agent answer the same
//! header with the same status:
//!
//! - no header, a unit other than `bytes`, or a header that does not parse
//!   as a byte-range set (`bytes=a-b`, `bytes=5-4`, `bytes=`): ignored, the
//!   whole blob with 200 (section 14.2 lets a server ignore an invalid
//!   range, and a client that sent garbage still gets correct bytes);
//! - one range that selects bytes of the blob: 206 with those bytes;
//! - a valid set of which no range selects a byte (`bytes=<len>-`,
//!   `bytes=-0`): 416 with `Content-Range: bytes */<len>` (section 15.5.17);
//! - several ranges, one of them satisfiable: the whole blob with 200
//!   (section 14.2: a server may ignore Range; nobody pulling images asks
//!   for `multipart/byteranges`).
//!
//! Numbers too long for a `u64` are still numbers: a first byte beyond u64
//! is past any blob's end (416), a last byte beyond it means "to the end"
//! (206).
//!
//! Only `GET` has range semantics (section 14.2); callers answer `HEAD`
//! without looking at the header.

use std::ops::Range;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};

use crate::error::{ErrorCode, OciError};

/// What a `Range` header asks of a blob of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// The whole blob, 200: no header, or one that is ignored.
    Whole,
    /// These bytes (never empty, within the blob), 206.
    Part(Range<u64>),
    /// No range in the header selects a byte of the blob: 416.
    Unsatisfiable,
}

/// One element of a byte-range set, its positions saturated at `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl Spec {
    /// Parses one range-spec; None if it is not a valid byte range.
    fn parse(text: &str) -> Option<Spec> {
        let (first, last) = text.split_once('-')?;
        match (first.is_empty(), last.is_empty()) {
            (true, true) => None,
            (true, false) => digits(last).map(Spec::Suffix),
            (false, open) => {
                let first = digits(first)?;
                let last = if open { None } else { Some(digits(last)?) };
                // Section 14.1.1: an int-range with last < first is invalid.
                match last {
                    Some(last) if last < first => None,
                    _ => Some(Spec::From { first, last }),
                }
            }
        }
    }

    /// The bytes it selects of a blob of `length`, if any.
    fn select(self, length: u64) -> Option<Range<u64>> {
        let range = match self {
            Spec::From { first, last } => {
                let end = last.map_or(length, |last| last.saturating_add(1).min(length));
                first..end
            }
            Spec::Suffix(suffix) => length.saturating_sub(suffix)..length,
        };
        (!range.is_empty()).then_some(range)
    }
}

/// `1*DIGIT` as a number, saturated at `u64::MAX`; None for anything else.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// Interprets the `Range` header of a `GET` for a blob of `length` bytes.
pub fn requested(header: Option<&str>, length: u64) -> Requested {
    let Some((unit, set)) = header.and_then(|h| h.trim().split_once('=')) else {
        return Requested::Whole;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return Requested::Whole;
    }
    // A list may hold empty elements and whitespace around its commas
    // (RFC 9110 section 5.6.1); any element that is not a byte range makes
    // the whole header invalid.
    let mut specs = Vec::new();
    for element in set.split(',').map(|e| e.trim_matches([' ', '\t'])) {
        if element.is_empty() {
            continue;
        }
        match Spec::parse(element) {
            Some(spec) => specs.push(spec),
            None => return Requested::Whole,
        }
    }
    let mut selected = specs.iter().filter_map(|spec| spec.select(length));
    match (specs.len(), selected.next()) {
        (0, _) => Requested::Whole,
        (_, None) => {
            // A suffix of an empty blob is satisfiable (section 14.1.3) yet
            // selects nothing a 206 could name: the whole, empty blob.
            let empty_suffix =
                length == 0 && specs.iter().any(|s| matches!(s, Spec::Suffix(n) if *n > 0));
            if empty_suffix {
                Requested::Whole
            } else {
                Requested::Unsatisfiable
            }
        }
        (1, Some(range)) => Requested::Part(range),
        (_, Some(_)) => Requested::Whole,
    }
}

/// The `Content-Range` of a 206 carrying `part` of a blob of `length`.
pub fn content_range(part: &Range<u64>, length: u64) -> Option<HeaderValue> {
    let last = part.end.saturating_sub(1);
    HeaderValue::try_from(format!("bytes {}-{last}/{length}", part.start)).ok()
}

/// The 416 answer to an unsatisfiable range: OCI error JSON with
/// `RANGE_INVALID`, and `Content-Range: bytes */<length>` so that the client
/// learns the blob's length (RFC 9110 section 15.5.17).
pub fn unsatisfiable(length: u64) -> Response {
    let mut response = OciError::new(
        ErrorCode::RangeInvalid,
        format!("range not satisfiable for a blob of {length} bytes"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::try_from(format!("bytes */{length}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: u64 = 100;

    fn part(range: Range<u64>) -> Requested {
        Requested::Part(range)
    }

    #[test]
    fn one_satisfiable_range_is_a_part() {
        for (header, want) in [
            ("bytes=0-0", part(0..1)),
            ("bytes=0-9", part(0..10)),
            ("bytes=90-", part(90..100)),
            ("bytes=90-1000", part(90..100)),
            ("bytes=99-99", part(99..100)),
            ("bytes=-10", part(90..100)),
            ("bytes=-1000", part(0..100)),
            ("bytes=0-99999999999999999999999", part(0..100)),
            ("bytes=-99999999999999999999999", part(0..100)),
            ("Bytes=0-0", part(0..1)),
            ("bytes=0-0, ", part(0..1)),
            ("bytes=,5-6", part(5..7)),
        ] {
            assert_eq!(requested(Some(header), LEN), want, "{header}");
        }
    }

    #[test]
    fn valid_but_unsatisfiable_is_416() {
        for header in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=-0",
            "bytes=99999999999999999999999-",
            "bytes=100-,200-",
            "bytes=-0, 100-",
        ] {
            assert_eq!(
                requested(Some(header), LEN),
                Requested::Unsatisfiable,
                "{header}"
            );
        }
        assert_eq!(requested(Some("bytes=0-"), 0), Requested::Unsatisfiable);
    }

    #[test]
    fn unparseable_headers_are_ignored() {
        for header in [
            "bytes=",
            "bytes=-",
            "bytes=1",
            "bytes=a-b",
            "bytes=5-4",
            "bytes=--5",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=0x10-",
            "bytes=0-1,a-b",
            "bytes=100-,5-4",
            "bytes 0-1",
            "items=0-1",
            "=0-1",
            "bytes=٣-",
        ] {
            assert_eq!(requested(Some(header), LEN), Requested::Whole, "{header}");
        }
        assert_eq!(requested(None, LEN), Requested::Whole);
    }

    #[test]
    fn several_ranges_get_the_whole_blob() {
        let thousand = format!("bytes={}", vec!["0-0"; 1000].join(","));
        assert_eq!(requested(Some(&thousand), LEN), Requested::Whole);
        assert_eq!(requested(Some("bytes=0-1,4-5"), LEN), Requested::Whole);
        assert_eq!(requested(Some("bytes=100-,4-5"), LEN), Requested::Whole);
    }

    #[test]
    fn a_suffix_of_an_empty_blob_is_the_empty_blob() {
        assert_eq!(requested(Some("bytes=-5"), 0), Requested::Whole);
        assert_eq!(requested(Some("bytes=-0"), 0), Requested::Unsatisfiable);
    }

    #[test]
    fn headers_name_the_bytes_and_the_length() {
        assert_eq!(
            content_range(&(90..100), LEN)
                .as_ref()
                .map(HeaderValue::as_bytes),
            Some(&b"bytes 90-99/100"[..])
        );
        let response = unsatisfiable(LEN);
        assert_eq!(response.status(), 416);
        assert_eq!(
            response.headers().get(header::CONTENT_RANGE),
            Some(&HeaderValue::from_static("bytes */100"))
        );
    }
}
