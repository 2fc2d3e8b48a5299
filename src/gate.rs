//! Launch gates: which content a platform registration may launch.
//!
//! Owns the per-registration allow-lists (`allowed_keys`, `allowed_courses`,
//! `allowed_orgs`) and the block-type filters. A registration without a gate may
//! launch anything; a gate with empty lists allows nothing. The decision is made
//! on parsed, canonical keys only, never on raw strings from a request.

use std::collections::{BTreeMap, BTreeSet};

use crate::content::{CourseKey, UsageKey};

/// Why a gate refused content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateRefusal {
    #[error("the content is not in this registration's allowed keys, courses or orgs")]
    NotAllowed,
    #[error("blocks of type {0:?} may not be launched from this registration")]
    BlockTypeFiltered(String),
}

/// Allowed block types. An empty list places no restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFilter(BTreeSet<String>);

impl BlockFilter {
    pub fn new(types: impl IntoIterator<Item = String>) -> Self {
        Self(types.into_iter().collect())
    }

    fn allows(&self, block_type: &str) -> bool {
        self.0.is_empty() || self.0.contains(block_type)
    }
}

/// A registration's launch gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchGate {
    pub allowed_keys: BTreeSet<UsageKey>,
    pub allowed_courses: BTreeSet<CourseKey>,
    pub allowed_orgs: BTreeSet<String>,
    pub block_filter: Option<BlockFilter>,
    pub course_block_filter: BTreeMap<CourseKey, BlockFilter>,
    pub org_block_filter: BTreeMap<String, BlockFilter>,
}

impl LaunchGate {
    /// True when the gate lists no key, course or org at all.
    pub fn is_empty(&self) -> bool {
        self.allowed_keys.is_empty()
            && self.allowed_courses.is_empty()
            && self.allowed_orgs.is_empty()
    }

    /// Decides whether `usage` may be launched.
    pub fn check(&self, usage: &UsageKey) -> Result<(), GateRefusal> {
        let course = usage.course_key();
        let listed = self.allowed_keys.contains(usage)
            || self.allowed_courses.contains(&course)
            || self.allowed_orgs.contains(usage.org());
        if !listed {
            return Err(GateRefusal::NotAllowed);
        }
        self.check_filter(usage)
    }

    /// The block filter alone: the most specific one that exists decides.
    fn check_filter(&self, usage: &UsageKey) -> Result<(), GateRefusal> {
        let course = usage.course_key();
        let filter = self
            .course_block_filter
            .get(&course)
            .or_else(|| self.org_block_filter.get(usage.org()))
            .or(self.block_filter.as_ref());
        match filter {
            Some(f) if !f.allows(usage.block_type()) => Err(GateRefusal::BlockTypeFiltered(
                usage.block_type().to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

/// Whether `block`, found under a launched block, may be used: the launch
/// gate's block filter applies to it as to a launch. Whether the launched
/// block was listed (keys, courses, orgs) was decided at its launch, and
/// what lies under it inherits that.
pub fn check_within(gate: Option<&LaunchGate>, block: &UsageKey) -> Result<(), GateRefusal> {
    gate.map_or(Ok(()), |g| g.check_filter(block))
}

/// Applies an optional gate: no gate means anything may be launched.
pub fn check(gate: Option<&LaunchGate>, usage: &UsageKey) -> Result<(), GateRefusal> {
    gate.map_or(Ok(()), |g| g.check(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(s: &str) -> UsageKey {
        UsageKey::parse(s).expect("usage key")
    }

    fn course(s: &str) -> CourseKey {
        CourseKey::parse(s).expect("course key")
    }

    fn filter(types: &[&str]) -> BlockFilter {
        BlockFilter::new(types.iter().map(|s| (*s).to_owned()))
    }

    const P: &str = "block-v1:OrgA+C1+R+type@problem+block@p1";
    const H: &str = "block-v1:OrgA+C1+R+type@html+block@h1";
    const OTHER: &str = "block-v1:OrgB+C9+R+type@problem+block@p9";

    #[test]
    fn no_gate_allows_everything() {
        assert_eq!(check(None, &usage(OTHER)), Ok(()));
    }

    #[test]
    fn empty_gate_allows_nothing() {
        assert_eq!(
            LaunchGate::default().check(&usage(P)),
            Err(GateRefusal::NotAllowed)
        );
    }

    #[test]
    fn allow_lists() {
        let by_key = LaunchGate {
            allowed_keys: [usage(P)].into(),
            ..Default::default()
        };
        assert_eq!(by_key.check(&usage(P)), Ok(()));
        assert_eq!(by_key.check(&usage(H)), Err(GateRefusal::NotAllowed));

        let by_course = LaunchGate {
            allowed_courses: [course("course-v1:OrgA+C1+R")].into(),
            ..Default::default()
        };
        assert_eq!(by_course.check(&usage(H)), Ok(()));
        assert_eq!(by_course.check(&usage(OTHER)), Err(GateRefusal::NotAllowed));

        let by_org = LaunchGate {
            allowed_orgs: ["OrgB".to_owned()].into(),
            ..Default::default()
        };
        assert_eq!(by_org.check(&usage(OTHER)), Ok(()));
        assert_eq!(by_org.check(&usage(P)), Err(GateRefusal::NotAllowed));
    }

    #[test]
    fn most_specific_filter_applies() {
        let gate = LaunchGate {
            allowed_orgs: ["OrgA".to_owned()].into(),
            block_filter: Some(filter(&["video"])),
            org_block_filter: [("OrgA".to_owned(), filter(&["html"]))].into(),
            course_block_filter: [(course("course-v1:OrgA+C1+R"), filter(&["problem"]))].into(),
            ..Default::default()
        };
        assert_eq!(gate.check(&usage(P)), Ok(()));
        assert_eq!(
            gate.check(&usage(H)),
            Err(GateRefusal::BlockTypeFiltered("html".to_owned()))
        );
        let org_level = LaunchGate {
            course_block_filter: BTreeMap::new(),
            ..gate.clone()
        };
        assert_eq!(org_level.check(&usage(H)), Ok(()));
        assert!(org_level.check(&usage(P)).is_err());
        let global = LaunchGate {
            org_block_filter: BTreeMap::new(),
            ..org_level
        };
        assert!(global.check(&usage(P)).is_err());
        assert!(global.check(&usage(H)).is_err());
    }

    #[test]
    fn filters_apply_to_listed_keys_too() {
        let gate = LaunchGate {
            allowed_keys: [usage(H)].into(),
            block_filter: Some(filter(&["problem"])),
            ..Default::default()
        };
        assert!(matches!(
            gate.check(&usage(H)),
            Err(GateRefusal::BlockTypeFiltered(_))
        ));
    }
}
