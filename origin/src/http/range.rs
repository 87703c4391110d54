//! The `Range` header of a blob request: one range of bytes, as agents send
//! for pieces and clients for resumes.

use std::ops::Range;

/// What the header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The whole blob (no header, or one this server ignores, such as
    /// several ranges: RFC 9110 lets a server answer those with 200).
    Whole,
    /// These bytes.
    Part(Range<u64>),
    /// A range that lies outside the blob: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against a blob of `len`.
pub(crate) fn parse(header: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => Wanted::Whole,
        (true, false) => match number(last) {
            Some(0) => Wanted::Unsatisfiable,
            Some(n) if len > 0 => Wanted::Part(len.saturating_sub(n)..len),
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::Whole,
        },
        (false, open) => {
            let Some(start) = number(first) else {
                return Wanted::Whole;
            };
            let end = if open {
                Some(len)
            } else {
                match number(last) {
                    Some(last) if last >= start => Some(last.saturating_add(1).min(len)),
                    Some(_) => return Wanted::Whole,
                    None => return Wanted::Whole,
                }
            };
            match end {
                Some(end) if start < len => Wanted::Part(start..end),
                _ => Wanted::Unsatisfiable,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_and_their_edges() {
        assert_eq!(parse(None, 10), Wanted::Whole);
        assert_eq!(parse(Some("bytes=2-4"), 10), Wanted::Part(2..5));
        assert_eq!(parse(Some("bytes=2-100"), 10), Wanted::Part(2..10));
        assert_eq!(parse(Some("bytes=7-"), 10), Wanted::Part(7..10));
        assert_eq!(parse(Some("bytes=-3"), 10), Wanted::Part(7..10));
        assert_eq!(parse(Some("bytes=-30"), 10), Wanted::Part(0..10));
        assert_eq!(parse(Some("bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Wanted::Whole);
        assert_eq!(parse(Some("bytes=5-2"), 10), Wanted::Whole);
        assert_eq!(parse(Some("items=1-2"), 10), Wanted::Whole);
        assert_eq!(parse(Some("bytes=x-2"), 10), Wanted::Whole);
    }
}
