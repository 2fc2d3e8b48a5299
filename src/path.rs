//! Normalising a request path before it is matched and forwarded.
//!
//! A gateway that decides on one spelling of a path and forwards another is
//! an open door, so this module produces the one form that is both checked
//! and forwarded. Percent-encoded unreserved characters and the characters of
//! Open edX keys (`+`, `:`, `@`) are decoded; other encodings are kept
//! (upper-cased). An encoded `/`, `\` or NUL, a raw `\`, a control character,
//! an empty segment (`//`) or a `.`/`..` segment (encoded or not) is refused
//! outright: none of them can then widen a match. So are spellings that a
//! server between ltigate and Django could read as one of those: a segment
//! that is `.`, `..` or empty before a `;` (`..;/`: Tomcat and Spring cut
//! `;parameters` off a segment before resolving dots), and a double-encoded
//! `/`, `\`, `.`, `%` or control character (`%252f`, `%252e`, `%255c`,
//! `%2500`: one more decoding turns them into what is refused above). Raw
//! non-ASCII bytes (hyper passes only valid UTF-8) are kept exactly as sent,
//! never re-encoded. The query string is never part of the path. [`segment_bytes`] is the one percent-decoding step of
//! the gateway; content keys read their segments through it too.

use percent_encoding::{percent_decode, percent_encode_byte};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with /")]
    NotAbsolute,
    #[error("the path has an empty segment")]
    EmptySegment,
    #[error("the path has a . or .. segment (or one before ;parameters)")]
    DotSegment,
    #[error("the path holds a double-encoded separator, dot, % or control character")]
    DoubleEncoding,
    #[error("the path holds an encoded slash, backslash or control character")]
    ForbiddenCharacter,
    #[error("the path holds a malformed percent-encoding")]
    BadEncoding,
}

/// A normalised path: its segments, and the exact string that is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    path: String,
    /// Byte ranges of each segment in `path` (after the leading `/`).
    bounds: Vec<(usize, usize)>,
}

impl NormalPath {
    /// The path to forward.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Segment `i`.
    pub fn segment(&self, i: usize) -> Option<&str> {
        self.bounds.get(i).map(|&(a, b)| &self.path[a..b])
    }

    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }
}

/// Whether a byte may be decoded without changing what a path means: the
/// unreserved characters and the three that Open edX keys use (`+`, `:`, `@`).
pub fn decodes_safely(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b':' | b'@')
}

/// One byte of a path segment, as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentByte {
    /// Sent as itself.
    Plain(u8),
    /// Sent as a `%XX` triplet: the byte it stands for.
    Encoded(u8),
}

/// Reads a segment's bytes in order, the percent-encoding crate decoding each
/// `%XX`. A `%` that does not start a well-formed triplet yields
/// [`PathError::BadEncoding`] and ends the reading.
///
/// Why this walk sits beside the crate: its decoder passes a malformed `%`
/// through as itself and does not say which bytes came encoded, while a
/// gateway must refuse the first and forward a non-safe encoding as sent; so
/// each triplet goes to the crate alone, and is well-formed exactly when the
/// crate turns it into one byte.
pub fn segment_bytes(seg: &str) -> impl Iterator<Item = Result<SegmentByte, PathError>> + '_ {
    let mut rest = seg.as_bytes();
    std::iter::from_fn(move || {
        let (&first, tail) = rest.split_first()?;
        if first != b'%' {
            rest = tail;
            return Some(Ok(SegmentByte::Plain(first)));
        }
        let (triplet, after) = rest.split_at_checked(3).unwrap_or((rest, &[]));
        let mut decoded = percent_decode(triplet);
        match (decoded.next(), decoded.next(), triplet.len()) {
            (Some(byte), None, 3) => {
                rest = after;
                Some(Ok(SegmentByte::Encoded(byte)))
            }
            _ => {
                rest = &[];
                Some(Err(PathError::BadEncoding))
            }
        }
    })
}

/// Normalises a raw request path (as sent, without its query).
///
/// A single trailing `/` is kept as an empty last segment; any other empty
/// segment is refused.
pub fn normalize(raw: &str) -> Result<NormalPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    // Bytes, not chars: a raw UTF-8 sequence is copied byte for byte.
    let mut path: Vec<u8> = Vec::with_capacity(raw.len());
    let mut bounds = Vec::new();
    if rest.is_empty() {
        return Ok(NormalPath {
            path: "/".to_owned(),
            bounds,
        });
    }
    let raw_segments: Vec<&str> = rest.split('/').collect();
    let last = raw_segments.len() - 1;
    for (i, seg) in raw_segments.into_iter().enumerate() {
        path.push(b'/');
        let start = path.len();
        if seg.is_empty() && i != last {
            return Err(PathError::EmptySegment);
        }
        for byte in segment_bytes(seg) {
            match byte? {
                SegmentByte::Encoded(d) if d == b'/' || d == b'\\' || d.is_ascii_control() => {
                    return Err(PathError::ForbiddenCharacter);
                }
                SegmentByte::Encoded(d) if decodes_safely(d) => path.push(d),
                // Kept encoded, in the crate's upper-case spelling.
                SegmentByte::Encoded(d) => {
                    path.extend_from_slice(percent_encode_byte(d).as_bytes());
                }
                SegmentByte::Plain(b) if b == b'\\' || b.is_ascii_control() => {
                    return Err(PathError::ForbiddenCharacter);
                }
                // Raw bytes, including each byte of a UTF-8 sequence (which
                // hyper has checked), are forwarded as they came.
                SegmentByte::Plain(b) => path.push(b),
            }
        }
        check_segment(&path[start..])?;
        bounds.push((start, path.len()));
    }
    // Every byte came from `raw` (valid UTF-8, cut only at ASCII bytes) or
    // is ASCII, so this never fails; if it did, the path is refused.
    let path = String::from_utf8(path).map_err(|_| PathError::BadEncoding)?;
    Ok(NormalPath { path, bounds })
}

/// Refuses a normalised segment that some server could still resolve as a
/// dot segment or a separator.
fn check_segment(segment: &[u8]) -> Result<(), PathError> {
    // What Tomcat and Spring resolve: the segment before its `;parameters`
    // (`;` raw or, as kept in normal form, `%3B`).
    let head_len = segment
        .windows(3)
        .position(|w| w == b"%3B")
        .into_iter()
        .chain(segment.iter().position(|&b| b == b';'))
        .min()
        .unwrap_or(segment.len());
    let head = &segment[..head_len];
    if head == b"." || head == b".." {
        return Err(PathError::DotSegment);
    }
    if head.is_empty() && head_len < segment.len() {
        return Err(PathError::EmptySegment);
    }
    // `%25` (an encoded `%`, always spelled so in normal form) followed by
    // a triplet's two hex digits: one more decoding makes that byte.
    for at in segment
        .windows(5)
        .filter(|w| w.starts_with(b"%25"))
        .map(|w| [b'%', w[3], w[4]])
    {
        let mut decoded = percent_decode(&at);
        // Well-formed exactly when the crate turns it into one byte.
        if let (Some(d), None) = (decoded.next(), decoded.next())
            && (matches!(d, b'/' | b'\\' | b'.' | b'%') || d.is_ascii_control())
        {
            return Err(PathError::DoubleEncoding);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_keys_and_unreserved_only() {
        let p = normalize("/courses/course-v1%3AOrg%2BC%2BR/xblock/a%40b/%7Efile%20name.js")
            .expect("ok");
        assert_eq!(
            p.as_str(),
            "/courses/course-v1:Org+C+R/xblock/a@b/~file%20name.js"
        );
        assert_eq!(p.segment(1), Some("course-v1:Org+C+R"));
        assert_eq!(p.len(), 5);
        assert_eq!(
            normalize("/static/x%2a").expect("ok").as_str(),
            "/static/x%2A"
        );
    }

    #[test]
    fn refuses_what_could_widen_a_match() {
        for (raw, err) in [
            ("static/x", PathError::NotAbsolute),
            ("/static/../admin", PathError::DotSegment),
            ("/static/%2e%2e/admin", PathError::DotSegment),
            ("/static/%2E/admin", PathError::DotSegment),
            ("/static/./x", PathError::DotSegment),
            ("//admin", PathError::EmptySegment),
            ("/static//x", PathError::EmptySegment),
            ("/static/..%2Fadmin", PathError::ForbiddenCharacter),
            ("/static/%2fadmin", PathError::ForbiddenCharacter),
            ("/static/%5Cadmin", PathError::ForbiddenCharacter),
            ("/static\\..\\admin", PathError::ForbiddenCharacter),
            ("/static/%00", PathError::ForbiddenCharacter),
            ("/static/%0a", PathError::ForbiddenCharacter),
            ("/static/%", PathError::BadEncoding),
            ("/static/%g1", PathError::BadEncoding),
        ] {
            assert_eq!(normalize(raw), Err(err), "{raw}");
        }
    }

    #[test]
    fn refuses_what_another_server_could_resolve() {
        for (raw, err) in [
            ("/static/..;/admin", PathError::DotSegment),
            ("/static/..;jsessionid=x/admin", PathError::DotSegment),
            ("/static/.;/admin", PathError::DotSegment),
            ("/static/%2e%2E;a/admin", PathError::DotSegment),
            ("/static/..%3b/admin", PathError::DotSegment),
            ("/static/..%3B;/admin", PathError::DotSegment),
            ("/static/;/admin", PathError::EmptySegment),
            ("/static/;x", PathError::EmptySegment),
            ("/static/%3b", PathError::EmptySegment),
            ("/static/%252e%252e/admin", PathError::DoubleEncoding),
            ("/static/%252E./admin", PathError::DoubleEncoding),
            ("/static/..%252fadmin", PathError::DoubleEncoding),
            ("/static/..%252Fadmin", PathError::DoubleEncoding),
            ("/static/..%255cadmin", PathError::DoubleEncoding),
            ("/static/..%255Cadmin", PathError::DoubleEncoding),
            ("/static/%25%32%66admin", PathError::DoubleEncoding),
            ("/static/%25252f", PathError::DoubleEncoding),
            ("/static/x%2500", PathError::DoubleEncoding),
            ("/static/x%250A", PathError::DoubleEncoding),
        ] {
            assert_eq!(normalize(raw), Err(err), "{raw}");
        }
        for (raw, normal) in [
            ("/static/a;v=1.js", "/static/a;v=1.js"),
            ("/static/..a;b", "/static/..a;b"),
            ("/static/100%25.js", "/static/100%25.js"),
            ("/static/a%25zz", "/static/a%25zz"),
            ("/static/a%2541", "/static/a%2541"),
        ] {
            assert_eq!(
                normalize(raw).map(|p| p.path),
                Ok(normal.to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn keeps_raw_utf8_byte_for_byte() {
        let p = normalize("/static/caf\u{e9}/\u{65e5}\u{672c}.js").expect("ok");
        assert_eq!(
            p.as_str().as_bytes(),
            "/static/caf\u{e9}/\u{65e5}\u{672c}.js".as_bytes()
        );
        assert_eq!(p.segment(1), Some("caf\u{e9}"));
        assert_eq!(p.segment(2), Some("\u{65e5}\u{672c}.js"));
    }

    #[test]
    fn keeps_other_encodings_as_sent_in_upper_case() {
        assert_eq!(
            normalize("/a%25b/%c3%a9/x%3b").expect("ok").as_str(),
            "/a%25b/%C3%A9/x%3B"
        );
        assert_eq!(normalize("/a;b=c").expect("ok").as_str(), "/a;b=c");
    }

    #[test]
    fn malformed_triplets_and_the_first_fault_wins() {
        for (raw, err) in [
            ("/static/%2", PathError::BadEncoding),
            ("/static/x%", PathError::BadEncoding),
            // A triplet is `%` and two hex digits: `%+1` is no encoding of 0x01.
            ("/static/%+1", PathError::BadEncoding),
            ("/static/%\u{e9}", PathError::BadEncoding),
            ("/static/%2e%2", PathError::BadEncoding),
            ("/static/\\%zz", PathError::ForbiddenCharacter),
            ("/static/%zz\\", PathError::BadEncoding),
            ("/%zz//x", PathError::BadEncoding),
        ] {
            assert_eq!(normalize(raw), Err(err), "{raw}");
        }
    }

    #[test]
    fn segment_bytes_tells_plain_from_encoded() {
        use SegmentByte::{Encoded, Plain};
        let read: Vec<_> = segment_bytes("a%2Fb%41").collect();
        assert_eq!(
            read,
            [
                Ok(Plain(b'a')),
                Ok(Encoded(b'/')),
                Ok(Plain(b'b')),
                Ok(Encoded(b'A'))
            ]
        );
        let read: Vec<_> = segment_bytes("a%zzb").collect();
        assert_eq!(read, [Ok(Plain(b'a')), Err(PathError::BadEncoding)]);
    }

    #[test]
    fn keeps_a_trailing_slash_and_the_root() {
        let p = normalize("/static/").expect("ok");
        assert_eq!(
            (p.as_str(), p.len(), p.segment(1)),
            ("/static/", 2, Some(""))
        );
        assert!(normalize("/").expect("root").is_empty());
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Normalising is idempotent and the result holds no dot segment,
            /// empty inner segment, backslash or encoded slash.
            #[test]
            fn normal_form_is_stable(raw in "/[a-zA-Z0-9%./\\\\+:@_~;\u{e9}-]{0,60}") {
                if let Ok(p) = normalize(&raw) {
                    let again = normalize(p.as_str()).expect("a normal path normalises");
                    prop_assert_eq!(again.as_str(), p.as_str());
                    let s = p.as_str();
                    prop_assert!(!s.contains('\\'));
                    prop_assert!(!s.to_ascii_uppercase().contains("%2F"));
                    prop_assert!(!s.to_ascii_uppercase().contains("%2E"));
                    prop_assert!(!s.contains("%252") && !s.contains("%255C"));
                    for i in 0..p.len() {
                        let seg = p.segment(i).unwrap_or_default();
                        let head = seg.split(';').next().unwrap_or_default();
                        prop_assert!(head != "." && head != "..");
                        prop_assert!(!seg.is_empty() || i + 1 == p.len());
                    }
                }
            }
        }
    }
}
