//! Open edX content keys and the gateway's display path.
//!
//! Owns the grammar of course keys (`course-v1:Org+Course+Run`), usage keys
//! (`block-v1:Org+Course+Run+type@problem+block@id`) and of the display path
//! `/lti/1p3/launch/<course_key>/<usage_key>`. Parsing is strict: a key is
//! accepted only in its published, canonical form after percent-decoding, so
//! two spellings of the same content always compare equal and no spelling can
//! smuggle a `/`, `..` or `\` into a comparison. This module never consults a
//! query string.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::path::{SegmentByte, decodes_safely, segment_bytes};

/// Where the LTI endpoints live. These are the Open edX plugin's paths.
pub const LOGIN_PATH: &str = "/lti/1p3/login/";
pub const LAUNCH_PATH: &str = "/lti/1p3/launch/";
pub const DEEP_LINKING_LAUNCH_PATH: &str = "/lti/1p3/deep-linking/launch/";
pub const JWKS_PATH: &str = "/lti/1p3/pub/jwks/";
/// The display path is this prefix followed by `<course_key>/<usage_key>`.
pub const DISPLAY_PREFIX: &str = "/lti/1p3/launch/";

const COURSE_PREFIX: &str = "course-v1:";
const USAGE_PREFIX: &str = "block-v1:";

/// Why a string is not a content key or display path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a course key of the form course-v1:Org+Course+Run")]
    BadCourseKey,
    #[error("not a usage key of the form block-v1:Org+Course+Run+type@TYPE+block@ID")]
    BadUsageKey,
    #[error("the usage key does not belong to the course in the path")]
    CourseMismatch,
    #[error("not a display path of the form {DISPLAY_PREFIX}<course_key>/<usage_key>")]
    NotDisplayPath,
    #[error("the path holds an encoded character that keys never contain")]
    ForbiddenEncoding,
}

/// Characters Open edX allows inside one key component (`[\w\-~.:]`, ASCII).
fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'~' | b'.' | b':')
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_id_char)
}

/// A course key, `course-v1:Org+Course+Run`, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CourseKey(String);

impl CourseKey {
    /// Parses a course key that is already percent-decoded.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let body = s
            .strip_prefix(COURSE_PREFIX)
            .ok_or(KeyError::BadCourseKey)?;
        let parts: Vec<&str> = body.split('+').collect();
        if parts.len() != 3 || !parts.iter().all(|p| is_id(p)) {
            return Err(KeyError::BadCourseKey);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `Org+Course+Run`.
    fn body(&self) -> &str {
        &self.0[COURSE_PREFIX.len()..]
    }

    pub fn org(&self) -> &str {
        self.body().split('+').next().unwrap_or_default()
    }
}

impl TryFrom<String> for CourseKey {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        Self::parse(&s)
    }
}

impl From<CourseKey> for String {
    fn from(k: CourseKey) -> String {
        k.0
    }
}

impl fmt::Display for CourseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A usage key, `block-v1:Org+Course+Run+type@TYPE+block@ID`, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UsageKey {
    raw: String,
    /// Byte range of `Org+Course+Run` inside `raw`.
    course_end: usize,
    /// Byte range of the block type inside `raw`.
    type_start: usize,
    type_end: usize,
}

impl UsageKey {
    /// Parses a usage key that is already percent-decoded.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let body = s.strip_prefix(USAGE_PREFIX).ok_or(KeyError::BadUsageKey)?;
        let parts: Vec<&str> = body.split('+').collect();
        let [org, course, run, block_type, block_id] = parts.as_slice() else {
            return Err(KeyError::BadUsageKey);
        };
        let block_type = block_type
            .strip_prefix("type@")
            .ok_or(KeyError::BadUsageKey)?;
        let block_id = block_id
            .strip_prefix("block@")
            .ok_or(KeyError::BadUsageKey)?;
        if ![org, course, run, &block_type, &block_id]
            .iter()
            .all(|p| is_id(p))
        {
            return Err(KeyError::BadUsageKey);
        }
        let course_end = USAGE_PREFIX.len() + org.len() + course.len() + run.len() + 2;
        let type_start = course_end + "+type@".len();
        Ok(Self {
            raw: s.to_owned(),
            course_end,
            type_start,
            type_end: type_start + block_type.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The block type, for example `problem` or `vertical`.
    pub fn block_type(&self) -> &str {
        &self.raw[self.type_start..self.type_end]
    }

    pub fn org(&self) -> &str {
        self.raw[USAGE_PREFIX.len()..self.course_end]
            .split('+')
            .next()
            .unwrap_or_default()
    }

    /// The course this block belongs to.
    pub fn course_key(&self) -> CourseKey {
        CourseKey(format!(
            "{COURSE_PREFIX}{}",
            &self.raw[USAGE_PREFIX.len()..self.course_end]
        ))
    }
}

impl TryFrom<String> for UsageKey {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        Self::parse(&s)
    }
}

impl From<UsageKey> for String {
    fn from(k: UsageKey) -> String {
        k.raw
    }
}

impl fmt::Display for UsageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// One piece of launchable content: a block and the course it lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentPath {
    pub course: CourseKey,
    pub usage: UsageKey,
}

impl ContentPath {
    pub fn new(course: CourseKey, usage: UsageKey) -> Result<Self, KeyError> {
        if usage.course_key() != course {
            return Err(KeyError::CourseMismatch);
        }
        Ok(Self { course, usage })
    }

    /// Parses a raw (still percent-encoded) request path such as
    /// `/lti/1p3/launch/course-v1:A+B+C/block-v1:A+B+C+type@html+block@x`.
    /// One trailing `/` is allowed. Anything else is refused.
    pub fn from_path(raw_path: &str) -> Result<Self, KeyError> {
        let rest = raw_path
            .strip_prefix(DISPLAY_PREFIX)
            .ok_or(KeyError::NotDisplayPath)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = rest.split('/');
        let (Some(course), Some(usage), None) = (segments.next(), segments.next(), segments.next())
        else {
            return Err(KeyError::NotDisplayPath);
        };
        let course = CourseKey::parse(&decode_key_segment(course)?)?;
        let usage = UsageKey::parse(&decode_key_segment(usage)?)?;
        Self::new(course, usage)
    }

    /// The canonical display path, with keys unencoded (`+`, `:` and `@` are
    /// legal in a path segment).
    pub fn display_path(&self) -> String {
        format!("{DISPLAY_PREFIX}{}/{}", self.course, self.usage)
    }
}

/// Decodes one path segment that should hold a key.
///
/// Only the unreserved characters and the three characters keys use (`+`, `:`,
/// `@`) may be percent-encoded. An encoded `/`, `\`, `%`, `;` or anything else
/// is refused outright rather than decoded, so no encoding can change which
/// segment a character belongs to.
pub fn decode_key_segment(seg: &str) -> Result<String, KeyError> {
    segment_bytes(seg)
        .map(|byte| match byte {
            Ok(SegmentByte::Plain(b)) => Ok(b as char),
            Ok(SegmentByte::Encoded(b)) if decodes_safely(b) => Ok(b as char),
            Ok(SegmentByte::Encoded(_)) | Err(_) => Err(KeyError::ForbiddenEncoding),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURSE: &str = "course-v1:OrgX+CS101+2026";
    const USAGE: &str = "block-v1:OrgX+CS101+2026+type@problem+block@abc123";

    #[test]
    fn parses_keys() {
        let u = UsageKey::parse(USAGE).expect("usage");
        assert_eq!(u.block_type(), "problem");
        assert_eq!(u.org(), "OrgX");
        assert_eq!(u.course_key().as_str(), COURSE);
        assert_eq!(CourseKey::parse(COURSE).expect("course").org(), "OrgX");
    }

    #[test]
    fn rejects_malformed_keys() {
        for bad in [
            "course-v1:OrgX+CS101",
            "course-v1:OrgX+CS101+2026+x",
            "course-v1:Org/X+CS101+2026",
            "course-v1:+CS101+2026",
            "course-v1:OrgX+CS101+20 26",
        ] {
            assert!(CourseKey::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "block-v1:OrgX+CS101+2026+type@problem",
            "block-v1:OrgX+CS101+2026+problem+block@x",
            "block-v1:OrgX+CS101+2026+type@problem+block@a/b",
            "block-v1:OrgX+CS101+2026+type@+block@x",
            "i4x://OrgX/CS101/problem/x",
        ] {
            assert!(UsageKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_path_accepts_encoded_key_characters() {
        let plain = format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}");
        let encoded = plain
            .replace('+', "%2B")
            .replace("v1:", "v1%3a")
            .replace("@", "%40");
        let a = ContentPath::from_path(&plain).expect("plain");
        let b = ContentPath::from_path(&encoded).expect("encoded");
        assert_eq!(a, b);
        assert_eq!(a.display_path(), plain);
        assert_eq!(
            ContentPath::from_path(&format!("{plain}/")).expect("slash"),
            a
        );
    }

    #[test]
    fn display_path_refuses_tricks() {
        let good = format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}");
        for bad in [
            format!("{good}//"),
            format!("{DISPLAY_PREFIX}{COURSE}//{USAGE}"),
            format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}/.."),
            format!("{DISPLAY_PREFIX}{COURSE}/../{USAGE}"),
            format!("{DISPLAY_PREFIX}{COURSE}%2F{USAGE}"),
            format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}%2F"),
            format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}%5C"),
            format!("{DISPLAY_PREFIX}{COURSE}/{USAGE};x=1"),
            format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}%"),
            format!("{DISPLAY_PREFIX}{COURSE}/{USAGE}%zz"),
            format!("{DISPLAY_PREFIX}{COURSE}\\{USAGE}"),
            format!("{DISPLAY_PREFIX}course-v1:Other+CS101+2026/{USAGE}"),
            format!("{DISPLAY_PREFIX}%2e%2e/{USAGE}"),
        ] {
            assert!(ContentPath::from_path(&bad).is_err(), "{bad}");
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a client sends, an accepted path always re-renders to a
            /// canonical path that parses back to the same content, and holds no
            /// character that could change path structure.
            #[test]
            fn accepted_paths_are_canonical(raw in "[a-zA-Z0-9%+:@/._~;\\\\-]{0,80}") {
                let path = format!("{DISPLAY_PREFIX}{raw}");
                if let Ok(c) = ContentPath::from_path(&path) {
                    let canon = c.display_path();
                    prop_assert!(canon.split('/').all(|s| s != ".." && s != "."));
                    prop_assert!(!canon.contains('\\') && !canon.contains('%') && !canon.contains(';'));
                    prop_assert_eq!(canon.matches('/').count(), 5);
                    prop_assert_eq!(ContentPath::from_path(&canon).ok(), Some(c));
                }
            }

            #[test]
            fn decode_never_panics(raw in ".{0,40}") {
                let _ = decode_key_segment(&raw);
            }
        }
    }
}
