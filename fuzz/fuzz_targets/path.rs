//! The path normaliser (`ltigate::normalize_path`) on any UTF-8 path (hyper
//! hands the gateway nothing else). Checks, for every path it accepts: the
//! normal form normalises to itself; it has no `.`/`..` segment (nor one
//! before `;parameters`), no empty inner segment, no `\` or control byte;
//! every `%` left starts an upper-case triplet of a byte that must stay
//! encoded (never `/`, `\`, NUL or a control, never a double encoding of
//! one); the segments are the path; and it means what the raw path meant
//! (both percent-decode to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

fn decodes_safely(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b':' | b'@')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = ltigate::normalize_path(raw) else {
        return;
    };
    let s = p.as_str();
    let again = ltigate::normalize_path(s).expect("a normal path normalises");
    assert_eq!(again.as_str(), s, "idempotent");
    assert_eq!(again.len(), p.len());

    assert!(s.starts_with('/'));
    assert!(!s.contains('\\'), "{s:?}");
    assert!(!s.bytes().any(|b| b.is_ascii_control()), "{s:?}");
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                panic!("a % that is no upper-case triplet in {s:?}");
            };
            let d = hi << 4 | lo;
            assert!(!decodes_safely(d), "{s:?} keeps %{d:02X} encoded");
            assert!(d != b'/' && d != b'\\' && !d.is_ascii_control(), "{s:?}");
            if d == b'%' {
                // `%25` then a triplet's digits: a double encoding.
                let next: Vec<u8> = bytes[i + 3..].iter().take(2).copied().collect();
                if let [a, b] = next[..] {
                    let lower = |c: u8| c.to_ascii_uppercase();
                    if let (Some(a), Some(b)) = (hex(lower(a)), hex(lower(b))) {
                        let d2 = a << 4 | b;
                        assert!(
                            !matches!(d2, b'/' | b'\\' | b'.' | b'%') && !d2.is_ascii_control(),
                            "{s:?} holds a double encoding"
                        );
                    }
                }
            }
            i += 3;
        } else {
            i += 1;
        }
    }

    let segments: Vec<&str> = (0..p.len())
        .map(|i| p.segment(i).expect("segment"))
        .collect();
    if segments.is_empty() {
        assert_eq!(s, "/");
    } else {
        assert_eq!(
            format!("/{}", segments.join("/")),
            s,
            "the segments are the path"
        );
    }
    for (i, seg) in segments.iter().enumerate() {
        assert!(!seg.contains('/'));
        assert!(!seg.is_empty() || i + 1 == segments.len(), "{s:?}");
        let head_len = [seg.find(';'), seg.find("%3B")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(seg.len());
        let head = &seg[..head_len];
        assert!(head != "." && head != "..", "{s:?}");
        assert!(!head.is_empty() || head_len == seg.len(), "{s:?}");
    }

    let meant: Vec<u8> = percent_decode_str(raw).collect();
    let means: Vec<u8> = percent_decode_str(s).collect();
    assert_eq!(meant, means, "normalising changed what {raw:?} means");
});
