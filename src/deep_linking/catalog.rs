//! What content there is: Open edX's course and block REST APIs.
//!
//! Calls the LMS through [`LmsApi`] (an OAuth2 client-credentials token),
//! and caches each answer for `deep_linking.cache_ttl_sec`. A failure is an error, never an empty list
//! pretending to be complete.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use crate::client::HttpClient;
use crate::content::{CourseKey, UsageKey};
use crate::gate::LaunchGate;
use crate::lms_api::LmsApi;
pub use crate::lms_api::LmsApiError as CatalogError;

const MAX_PAGES: usize = 50;

/// One launchable block.
#[derive(Debug, Clone)]
pub struct Block {
    pub usage: UsageKey,
    pub title: String,
    pub block_type: String,
    pub depth: usize,
}

/// One course and the blocks of it the gate allows, in course order.
#[derive(Debug, Clone)]
pub struct CourseListing {
    pub course: CourseKey,
    pub title: String,
    pub blocks: Vec<Block>,
}

pub struct Catalog {
    api: Arc<LmsApi>,
    client: HttpClient,
    cache_ttl: Duration,
    cache: DashMap<String, (Instant, Value)>,
}

impl Catalog {
    pub fn new(api: Arc<LmsApi>, client: HttpClient, cache_ttl: Duration) -> Self {
        Self {
            api,
            client,
            cache_ttl,
            cache: DashMap::new(),
        }
    }

    /// The LMS's JSON answer at `url`, from the cache while it is fresh.
    async fn get_json(&self, url: &Url, what: &'static str) -> Result<Value, CatalogError> {
        if let Some(hit) = self.cache.get(url.as_str())
            && hit.0 > Instant::now()
        {
            return Ok(hit.1.clone());
        }
        let value = self.api.get_json(&self.client, url, what).await?;
        self.cache.insert(
            url.to_string(),
            (Instant::now() + self.cache_ttl, value.clone()),
        );
        Ok(value)
    }

    /// The course keys of an org.
    async fn courses_of_org(&self, org: &str) -> Result<Vec<CourseKey>, CatalogError> {
        let mut url = self.api.url("/api/courses/v1/courses/")?;
        url.query_pairs_mut()
            .append_pair("org", org)
            .append_pair("page_size", "100");
        let mut next = Some(url);
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(page) = next.take() {
            pages += 1;
            let body = self.get_json(&page, "the course list").await?;
            let results = body
                .get("results")
                .and_then(Value::as_array)
                .ok_or(CatalogError::Malformed("the course list"))?;
            out.extend(
                results
                    .iter()
                    .filter_map(|c| c.get("id").and_then(Value::as_str))
                    .filter_map(|id| CourseKey::parse(id).ok()),
            );
            if pages < MAX_PAGES {
                // Only the path and query of a next link are used: the token
                // never leaves the configured LMS origin.
                next = body
                    .pointer("/pagination/next")
                    .and_then(Value::as_str)
                    .and_then(|n| Url::parse(n).ok())
                    .map(|n| self.api.same_origin(&n));
            }
        }
        Ok(out)
    }

    /// A course's block tree, in course order.
    async fn course(&self, course: &CourseKey) -> Result<CourseListing, CatalogError> {
        let url = self.api.blocks_url(course)?;
        let body = self.get_json(&url, "the course blocks").await?;
        let root = body
            .get("root")
            .and_then(Value::as_str)
            .ok_or(CatalogError::Malformed("the course blocks"))?;
        let blocks = body
            .get("blocks")
            .and_then(Value::as_object)
            .ok_or(CatalogError::Malformed("the course blocks"))?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        // Depth-first, in the order of `children`.
        let mut stack = vec![(root.to_owned(), 0usize)];
        while let Some((id, depth)) = stack.pop() {
            if !seen.insert(id.clone()) || seen.len() > 100_000 {
                continue;
            }
            let Some(block) = blocks.get(&id) else {
                continue;
            };
            if let Ok(usage) = UsageKey::parse(&id) {
                out.push(Block {
                    title: block
                        .get("display_name")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                        .unwrap_or(usage.block_type())
                        .to_owned(),
                    block_type: usage.block_type().to_owned(),
                    usage,
                    depth,
                });
            }
            if let Some(children) = block.get("children").and_then(Value::as_array) {
                for child in children.iter().rev().filter_map(Value::as_str) {
                    stack.push((child.to_owned(), depth + 1));
                }
            }
        }
        let title = out
            .first()
            .filter(|b| b.block_type == "course")
            .map_or_else(|| course.to_string(), |b| b.title.clone());
        Ok(CourseListing {
            course: course.clone(),
            title,
            blocks: out,
        })
    }

    /// Every block the gate allows, grouped by course.
    pub async fn listing(&self, gate: &LaunchGate) -> Result<Vec<CourseListing>, CatalogError> {
        let mut courses: BTreeSet<CourseKey> = gate.allowed_courses.iter().cloned().collect();
        courses.extend(gate.allowed_keys.iter().map(UsageKey::course_key));
        for org in &gate.allowed_orgs {
            courses.extend(self.courses_of_org(org).await?);
        }
        let mut out = Vec::new();
        for course in courses {
            let mut listing = match self.course(&course).await {
                Ok(l) => l,
                // A course the gate names but the LMS no longer has: skip it,
                // rather than hide every other course.
                Err(CatalogError::Refused(http::StatusCode::NOT_FOUND, _)) => {
                    tracing::warn!(course = %course, "the LMS has no course by this key; it is left out of the picker");
                    continue;
                }
                Err(e) => return Err(e),
            };
            listing.blocks.retain(|b| gate.check(&b.usage).is_ok());
            if !listing.blocks.is_empty() {
                out.push(listing);
            }
        }
        Ok(out)
    }
}

/// Titles of listed blocks, by usage key.
pub fn titles(listing: &[CourseListing]) -> HashMap<UsageKey, String> {
    listing
        .iter()
        .flat_map(|c| c.blocks.iter().map(|b| (b.usage.clone(), b.title.clone())))
        .collect()
}
