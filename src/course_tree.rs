//! Which blocks lie under a launched block: each course's block tree, read
//! from the LMS's Course Blocks API and cached per course.
//!
//! After a launch of block B, the `{block_in_course}` rules (XBlock
//! handlers, chromeless renders) open only B and the blocks under it
//! ([`BlockAccess::Subtree`], the default). The Open edX LTI tool plugin
//! opened every block of the launched course; that stays available as
//! [`BlockAccess::Course`], an explicit opt-in.
//!
//! Why the gateway reads the tree (and not the LMS-side app): the gate
//! stays where every other access decision is made, and holds even if the
//! app is out of date or misconfigured; the Course Blocks API
//! (`all_blocks=true`, for a staff client) is the tree the LMS itself
//! renders from (openedx/openedx-platform,
//! `lms/djangoapps/course_api/blocks/views.py`, `BlocksInCourseView`).
//!
//! A tree is read once per course and kept for `tree_cache_ttl_sec`; one
//! read runs at a time per course, and the others wait for it. A block that
//! is not in the cached tree (just added in Studio) causes one more read, at
//! most every [`MIN_REFRESH`]. When the tree cannot be read and none is
//! cached, the answer is an error and the caller refuses (fail closed);
//! after a failed read, the next one waits [`FAILURE_PAUSE`], so an LMS
//! outage is not met with a read per request. A cached tree past its TTL is
//! still used when the refresh fails: a course's structure changes rarely,
//! and refusing every learner because the LMS API blinked would be worse.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::HttpClient;
use crate::content::{CourseKey, UsageKey};
use crate::lms_api::{LmsApi, LmsApiError};

/// A block missing from a cached tree is read again at most this often.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// After a failed read, how long the next waits.
pub const FAILURE_PAUSE: Duration = Duration::from_secs(5);
/// How far up a tree is walked at most (Open edX trees are 5 deep).
const MAX_DEPTH: usize = 64;

/// Which blocks of a launched course the `{block_in_course}` rules open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAccess {
    /// The launched block and the blocks under it.
    Subtree { cache_ttl: Duration },
    /// Any block of the launched course (the plugin's behaviour).
    Course,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("the course structure could not be read: {0}")]
    Lms(#[from] LmsApiError),
    #[error("the course structure could not be read: the last read failed moments ago")]
    Paused,
}

/// One course's tree: every block, and the parents of each.
struct Tree {
    read_at: Instant,
    blocks: HashSet<String>,
    parents: HashMap<String, Vec<String>>,
}

impl Tree {
    /// Reads the Course Blocks API's answer: `{"root", "blocks": {id: {"children": [...]}}}`.
    fn parse(body: &Value) -> Result<Self, LmsApiError> {
        let blocks = body
            .get("blocks")
            .and_then(Value::as_object)
            .ok_or(LmsApiError::Malformed("the course blocks"))?;
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for (id, block) in blocks {
            for child in block
                .get("children")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                parents
                    .entry(child.to_owned())
                    .or_default()
                    .push(id.clone());
            }
        }
        Ok(Self {
            read_at: Instant::now(),
            blocks: blocks.keys().cloned().collect(),
            parents,
        })
    }

    /// Whether `block` is `ancestor` or under it; `None` when the tree does
    /// not have `block`.
    fn under(&self, ancestor: &str, block: &str) -> Option<bool> {
        if !self.blocks.contains(block) {
            return None;
        }
        let mut seen = HashSet::new();
        let mut level = vec![block];
        for _ in 0..MAX_DEPTH {
            if level.contains(&ancestor) {
                return Some(true);
            }
            let mut next = Vec::new();
            for id in level {
                for parent in self.parents.get(id).into_iter().flatten() {
                    if seen.insert(parent.as_str()) {
                        next.push(parent.as_str());
                    }
                }
            }
            if next.is_empty() {
                return Some(false);
            }
            level = next;
        }
        Some(false)
    }
}

#[derive(Default)]
struct Slot {
    tree: Option<Arc<Tree>>,
    failed_at: Option<Instant>,
}

pub struct CourseTrees {
    api: Arc<LmsApi>,
    client: HttpClient,
    ttl: Duration,
    courses: DashMap<CourseKey, Arc<tokio::sync::Mutex<Slot>>>,
}

impl CourseTrees {
    pub fn new(api: Arc<LmsApi>, client: HttpClient, ttl: Duration) -> Self {
        Self {
            api,
            client,
            ttl,
            courses: DashMap::new(),
        }
    }

    /// Whether `block` is `launched` or lies under it in its course.
    pub async fn contains(&self, launched: &UsageKey, block: &UsageKey) -> Result<bool, TreeError> {
        if launched == block {
            return Ok(true);
        }
        let course = block.course_key();
        if launched.course_key() != course {
            return Ok(false);
        }
        let (launched, block) = (launched.as_str(), block.as_str());
        let tree = self.tree(&course, None).await?;
        if let Some(found) = tree.under(launched, block) {
            return Ok(found);
        }
        // Not in the tree: perhaps added since it was read.
        let tree = self.tree(&course, Some(&tree)).await?;
        Ok(tree.under(launched, block).unwrap_or(false))
    }

    /// The course's tree: the cached one while it is fresh (and, with
    /// `missing`, only if it is newer than that tree by [`MIN_REFRESH`]).
    async fn tree(
        &self,
        course: &CourseKey,
        missing: Option<&Arc<Tree>>,
    ) -> Result<Arc<Tree>, TreeError> {
        let slot = self.courses.entry(course.clone()).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(tree) = &slot.tree {
            let fresh = tree.read_at.elapsed() < self.ttl;
            let wanted = match missing {
                None => fresh,
                // Someone read it again while this caller waited, or it is
                // too soon to read it again.
                Some(old) => !Arc::ptr_eq(tree, old) || tree.read_at.elapsed() < MIN_REFRESH,
            };
            if wanted {
                return Ok(tree.clone());
            }
        }
        if slot
            .failed_at
            .is_some_and(|at| at.elapsed() < FAILURE_PAUSE)
        {
            return slot.tree.clone().ok_or(TreeError::Paused);
        }
        match self
            .api
            .course_blocks(&self.client, course)
            .await
            .and_then(|body| Tree::parse(&body))
        {
            Ok(tree) => {
                let tree = Arc::new(tree);
                *slot = Slot {
                    tree: Some(tree.clone()),
                    failed_at: None,
                };
                Ok(tree)
            }
            Err(e) => {
                slot.failed_at = Some(Instant::now());
                match &slot.tree {
                    Some(stale) => {
                        tracing::warn!(course = %course, error = %e, "the course structure could not be read again; the cached one is used");
                        Ok(stale.clone())
                    }
                    None => Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_is_under_its_ancestors_only() {
        let tree = Tree::parse(&json!({
            "root": "c",
            "blocks": {
                "c": {"children": ["ch1", "ch2"]},
                "ch1": {"children": ["v1"]},
                "ch2": {"children": ["v2"]},
                "v1": {"children": ["p1", "shared"]},
                "v2": {"children": ["p2", "shared"]},
                "p1": {}, "p2": {}, "shared": {},
            }
        }))
        .expect("tree");
        assert_eq!(tree.under("v1", "p1"), Some(true));
        assert_eq!(tree.under("c", "p2"), Some(true));
        assert_eq!(tree.under("v1", "p2"), Some(false));
        assert_eq!(
            tree.under("p1", "v1"),
            Some(false),
            "a parent is not under its child"
        );
        assert_eq!(
            tree.under("v2", "shared"),
            Some(true),
            "a block with two parents"
        );
        assert_eq!(tree.under("v1", "nowhere"), None);
        assert!(Tree::parse(&json!({"root": "c"})).is_err());
    }
}
