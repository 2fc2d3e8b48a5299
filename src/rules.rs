//! Gating rules: which paths a session's grants open.
//!
//! Every path that is not an LTI endpoint is denied unless a rule allows it
//! for a live grant. A rule has a scope and a path pattern:
//!
//! - `usage`: the pattern holds `{usage_key}`, which must be a launched usage
//!   key (and `{course_key}`, if present, its course);
//! - `course`: the pattern holds `{course_key}`, `{block_in_course}` (any usage
//!   key of a launched course), `{asset_in_course}` (an `asset-v1:` key of a
//!   launched course), or `{course_org}`/`{course_number}` (the course key's
//!   org and number; no shipped rule uses them since the old `/c4x/` rule,
//!   dead with old Mongo courses, was removed);
//! - `public`: no placeholder; any session with a live grant may fetch it.
//!
//! A pattern is a `/`-separated list of literal segments, placeholders, `*`
//! (exactly one segment) and a final `**` (one or more segments). Patterns match normalised paths only (see [`crate::path`]); the
//! query string never takes part.

use http::Method;

use crate::clock::UnixTime;
use crate::content::{CourseKey, UsageKey};
use crate::path::NormalPath;
use crate::session::{AccessError, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Usage,
    Course,
    Public,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Any,
    Rest,
    UsageKey,
    CourseKey,
    BlockInCourse,
    AssetInCourse,
    CourseOrg,
    CourseNumber,
}

/// One gating rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub scope: Scope,
    methods: Option<Vec<Method>>,
    segments: Vec<Seg>,
    /// The pattern as configured, for logs.
    pub pattern: String,
}

/// What a pattern captured from a path.
#[derive(Debug, Default)]
struct Captures<'p> {
    usage: Option<UsageKey>,
    course: Option<CourseKey>,
    /// The block `{block_in_course}` names, and the course it and
    /// `{asset_in_course}` point into.
    block: Option<UsageKey>,
    block_course: Option<CourseKey>,
    asset_course: Option<CourseKey>,
    org: Option<&'p str>,
    number: Option<&'p str>,
}

impl Rule {
    /// Parses a configured rule. Errors name the field at fault.
    pub fn parse(
        scope: &str,
        pattern: &str,
        methods: Option<&[String]>,
    ) -> Result<Self, (&'static str, String)> {
        let scope = match scope {
            "usage" => Scope::Usage,
            "course" => Scope::Course,
            "public" => Scope::Public,
            other => {
                return Err((
                    "scope",
                    format!("is {other:?}; expected \"usage\", \"course\" or \"public\""),
                ));
            }
        };
        let rest = pattern
            .strip_prefix('/')
            .ok_or(("path", "must start with /".to_owned()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let seg = match *part {
                "**" if i + 1 == parts.len() => Seg::Rest,
                "**" => return Err(("path", "** may only be the last segment".to_owned())),
                "*" => Seg::Any,
                "{usage_key}" => Seg::UsageKey,
                "{course_key}" => Seg::CourseKey,
                "{block_in_course}" => Seg::BlockInCourse,
                "{asset_in_course}" => Seg::AssetInCourse,
                "{course_org}" => Seg::CourseOrg,
                "{course_number}" => Seg::CourseNumber,
                "" if i + 1 == parts.len() && i > 0 => Seg::Literal(String::new()),
                lit if lit.is_empty()
                    || lit.contains(['{', '}', '*', '%', '\\', '?', '#'])
                    || lit == "."
                    || lit == ".." =>
                {
                    return Err((
                        "path",
                        format!(
                            "segment {lit:?} is neither a literal, *, ** nor a known placeholder"
                        ),
                    ));
                }
                lit => Seg::Literal(lit.to_owned()),
            };
            segments.push(seg);
        }
        let has = |s: &Seg| segments.contains(s);
        let course_placeholders = [
            Seg::CourseKey,
            Seg::BlockInCourse,
            Seg::AssetInCourse,
            Seg::CourseOrg,
            Seg::CourseNumber,
        ];
        match scope {
            Scope::Usage if !has(&Seg::UsageKey) => {
                return Err(("path", "a usage rule needs {usage_key}".to_owned()));
            }
            Scope::Course if has(&Seg::UsageKey) => {
                return Err(("path", "{usage_key} belongs in a usage rule".to_owned()));
            }
            Scope::Course if !course_placeholders.iter().any(has) => {
                return Err((
                    "path",
                    "a course rule needs a course placeholder".to_owned(),
                ));
            }
            Scope::Public
                if segments
                    .iter()
                    .any(|s| matches!(s, Seg::UsageKey) || course_placeholders.contains(s)) =>
            {
                return Err(("path", "a public rule takes no placeholder".to_owned()));
            }
            _ => {}
        }
        let methods = methods
            .map(|list| {
                list.iter()
                    .map(|m| {
                        Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                            .map_err(|_| ("methods", format!("{m:?} is not an HTTP method")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Self {
            scope,
            methods,
            segments,
            pattern: pattern.to_owned(),
        })
    }

    fn allows_method(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| {
            m.contains(method) || (method == Method::HEAD && m.contains(&Method::GET))
        })
    }

    /// Matches the path's shape and captures the placeholders.
    fn capture<'p>(&self, path: &'p NormalPath) -> Option<Captures<'p>> {
        let mut caps = Captures::default();
        let mut i = 0;
        for seg in &self.segments {
            if *seg == Seg::Rest {
                // At least one more segment: `/static/**` is not `/static`.
                return (i < path.len()).then_some(caps);
            }
            let s = path.segment(i)?;
            i += 1;
            match seg {
                Seg::Literal(lit) => (s == lit).then_some(())?,
                Seg::Any => (!s.is_empty()).then_some(())?,
                Seg::Rest => unreachable!("handled above"),
                Seg::UsageKey => caps.usage = Some(UsageKey::parse(s).ok()?),
                Seg::CourseKey => caps.course = Some(CourseKey::parse(s).ok()?),
                Seg::BlockInCourse => {
                    let block = UsageKey::parse(s).ok()?;
                    caps.block_course = Some(block.course_key());
                    caps.block = Some(block);
                }
                Seg::AssetInCourse => caps.asset_course = Some(asset_course(s)?),
                Seg::CourseOrg => caps.org = Some(s),
                Seg::CourseNumber => caps.number = Some(s),
            }
        }
        (i == path.len()).then_some(caps)
    }
}

impl Rule {
    /// The block a `{block_in_course}` placeholder names in `path`, for the
    /// subtree check (see [`crate::course_tree`]).
    pub fn block_in(&self, path: &NormalPath) -> Option<UsageKey> {
        if !self.segments.contains(&Seg::BlockInCourse) {
            return None;
        }
        self.capture(path)?.block
    }
}

impl Captures<'_> {
    /// Whether a grant for `usage` (in `course`) satisfies these captures under `scope`.
    fn satisfied_by(&self, scope: Scope, course: &CourseKey, usage: &UsageKey) -> bool {
        let same_course = |c: &Option<CourseKey>| c.as_ref().is_none_or(|c| c == course);
        let usage_ok = match scope {
            Scope::Usage => self.usage.as_ref() == Some(usage),
            Scope::Course | Scope::Public => true,
        };
        usage_ok
            && same_course(&self.course)
            && same_course(&self.block_course)
            && same_course(&self.asset_course)
            && self.org.is_none_or(|o| o == course.org())
            && self
                .number
                .is_none_or(|n| Some(n) == course.as_str().split('+').nth(1))
    }
}

/// The course of an `asset-v1:Org+Course+Run+type@asset+block[@name]` segment.
fn asset_course(s: &str) -> Option<CourseKey> {
    let body = s.strip_prefix("asset-v1:")?;
    let (course, tail) = body.split_once("+type@asset+block")?;
    if !(tail.is_empty() || tail.starts_with('@')) {
        return None;
    }
    CourseKey::parse(&format!("course-v1:{course}")).ok()
}

/// The outcome of gating one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by `rule` through grant `grant` of the session.
    Allow { grant: usize, rule: usize },
    /// No session, or nothing live in it: relaunch.
    Relaunch,
    /// A rule would allow this, but its grant has expired: relaunch.
    Expired,
    /// Outside every grant.
    Outside,
}

/// Decides a request against the rules and a session's grants.
pub fn decide(
    rules: &[Rule],
    method: &Method,
    path: &NormalPath,
    session: Option<&Session>,
    now: UnixTime,
) -> Decision {
    let Some(session) = session else {
        return Decision::Relaunch;
    };
    let live = |g: &crate::session::Grant| session.grant_expiry(g) > now;
    if !session.grants.iter().any(live) {
        return Decision::Relaunch;
    }
    let mut expired_match = false;
    for (r, rule) in rules.iter().enumerate() {
        if !rule.allows_method(method) {
            continue;
        }
        let Some(caps) = rule.capture(path) else {
            continue;
        };
        // Newest grants first: their launch context is the freshest identity.
        for (g, grant) in session.grants.iter().enumerate().rev() {
            if caps.satisfied_by(rule.scope, &grant.content.course, &grant.content.usage) {
                if live(grant) {
                    return Decision::Allow { grant: g, rule: r };
                }
                expired_match = true;
            }
        }
    }
    if expired_match {
        Decision::Expired
    } else {
        Decision::Outside
    }
}

/// [`decide`] for a session that exists, as the gated path acts on it: the
/// grant and the rule that allow, or why not.
pub fn check(
    rules: &[Rule],
    method: &Method,
    path: &NormalPath,
    session: &Session,
    now: UnixTime,
) -> Result<(usize, usize), AccessError> {
    match decide(rules, method, path, Some(session), now) {
        Decision::Allow { grant, rule } => Ok((grant, rule)),
        // A session with nothing live in it.
        Decision::Relaunch => Err(AccessError::SessionExpired),
        Decision::Expired => Err(AccessError::GrantExpired),
        Decision::Outside => Err(AccessError::NotGranted),
    }
}

#[cfg(test)]
mod tests;
