//! The `Range` header of blob requests: one `bytes=` range (first-last,
//! first-, or -suffix), as registries and their clients use it. Several
//! ranges in one request are answered with the whole blob, which HTTP
//! allows; a range that cannot be satisfied is 416.

use std::ops::Range;

/// What a `Range` header asks of a blob of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// No (usable) range: the whole blob, 200.
    Whole,
    /// These bytes, 206.
    Part(Range<u64>),
    /// Nothing of the blob can satisfy it: 416.
    Unsatisfiable,
}

/// Interprets `header` for a blob of `length` bytes.
pub fn requested(header: Option<&str>, length: u64) -> Requested {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Requested::Whole;
    };
    if spec.contains(',') {
        return Requested::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Unsatisfiable;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Requested::Unsatisfiable,
        (true, false) => match number(last) {
            Some(0) | None => return Requested::Unsatisfiable,
            Some(suffix) => length.saturating_sub(suffix)..length,
        },
        (false, open_end) => {
            let Some(start) = number(first) else {
                return Requested::Unsatisfiable;
            };
            let end = if open_end {
                length
            } else {
                match number(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(length),
                    _ => return Requested::Unsatisfiable,
                }
            };
            start..end
        }
    };
    if range.start >= length || range.is_empty() {
        return Requested::Unsatisfiable;
    }
    Requested::Part(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let len = 100;
        assert_eq!(requested(None, len), Requested::Whole);
        assert_eq!(requested(Some("bytes=0-9"), len), Requested::Part(0..10));
        assert_eq!(requested(Some("bytes=90-"), len), Requested::Part(90..100));
        assert_eq!(
            requested(Some("bytes=90-1000"), len),
            Requested::Part(90..100)
        );
        assert_eq!(requested(Some("bytes=-10"), len), Requested::Part(90..100));
        assert_eq!(requested(Some("bytes=-1000"), len), Requested::Part(0..100));
        assert_eq!(requested(Some("bytes=0-0,5-6"), len), Requested::Whole);
        assert_eq!(requested(Some("items=0-1"), len), Requested::Whole);
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=-",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(requested(Some(bad), len), Requested::Unsatisfiable, "{bad}");
        }
        assert_eq!(requested(Some("bytes=0-"), 0), Requested::Unsatisfiable);
    }
}
