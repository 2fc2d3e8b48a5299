//! What content there is: Open edX's course and block REST APIs.
//!
//! Calls the LMS with an OAuth2 client-credentials token (`token_type=jwt`),
//! refreshed before it expires, and caches each answer for
//! `deep_linking.cache_ttl_sec`. A failure is an error, never an empty list
//! pretending to be complete.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderValue, Request, header};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::DeepLinkingConfig;
use crate::client::{HttpClient, USER_AGENT};
use crate::content::{CourseKey, UsageKey};
use crate::gate::LaunchGate;

const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const MAX_PAGES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the LMS could not be reached: {0}")]
    Unreachable(String),
    #[error("the LMS answered {0} to {1}")]
    Refused(http::StatusCode, &'static str),
    #[error("the LMS answer to {0} could not be read")]
    Malformed(&'static str),
}

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
    config: DeepLinkingConfig,
    token: Mutex<Option<(String, Instant)>>,
    cache: DashMap<String, (Instant, Value)>,
}

impl Catalog {
    pub fn new(config: DeepLinkingConfig) -> Self {
        Self {
            config,
            token: Mutex::new(None),
            cache: DashMap::new(),
        }
    }

    fn url(&self, path_and_query: &str) -> Result<Url, CatalogError> {
        self.config
            .lms_url
            .join(path_and_query)
            .map_err(|e| CatalogError::Unreachable(e.to_string()))
    }

    async fn token(&self, client: &HttpClient) -> Result<String, CatalogError> {
        if let Some((t, until)) = self
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let url = self.url("/oauth2/access_token")?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("client_secret", &self.config.client_secret)
            .append_pair("token_type", "jwt")
            .finish();
        let request = Request::post(url.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(crate::full_body(Bytes::from(form)))
            .map_err(|e| CatalogError::Unreachable(e.to_string()))?;
        let r = client
            .send(
                &url,
                request,
                MAX_RESPONSE_BYTES,
                self.config.request_timeout,
            )
            .await
            .map_err(|e| CatalogError::Unreachable(e.to_string()))?;
        if !r.status.is_success() {
            return Err(CatalogError::Refused(r.status, "the OAuth2 token request"));
        }
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|_| CatalogError::Malformed("the OAuth2 token request"))?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or(CatalogError::Malformed("the OAuth2 token request"))?
            .to_owned();
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        // Refresh a minute early (or halfway, for very short tokens).
        let keep = lifetime.saturating_sub(60).max(lifetime / 2);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((token.clone(), Instant::now() + Duration::from_secs(keep)));
        Ok(token)
    }

    async fn get_json(
        &self,
        client: &HttpClient,
        url: &Url,
        what: &'static str,
    ) -> Result<Value, CatalogError> {
        if let Some(hit) = self.cache.get(url.as_str())
            && hit.0 > Instant::now()
        {
            return Ok(hit.1.clone());
        }
        let token = self.token(client).await?;
        let mut request = Request::get(url.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(crate::full_body(Bytes::new()))
            .map_err(|e| CatalogError::Unreachable(e.to_string()))?;
        if let Ok(v) = HeaderValue::from_str(&format!("JWT {token}")) {
            request.headers_mut().insert(header::AUTHORIZATION, v);
        }
        let r = client
            .send(
                url,
                request,
                MAX_RESPONSE_BYTES,
                self.config.request_timeout,
            )
            .await
            .map_err(|e| CatalogError::Unreachable(e.to_string()))?;
        if r.status == http::StatusCode::UNAUTHORIZED {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if !r.status.is_success() {
            return Err(CatalogError::Refused(r.status, what));
        }
        let value: Value =
            serde_json::from_slice(&r.body).map_err(|_| CatalogError::Malformed(what))?;
        self.cache.insert(
            url.to_string(),
            (Instant::now() + self.config.cache_ttl, value.clone()),
        );
        Ok(value)
    }

    /// The course keys of an org.
    async fn courses_of_org(
        &self,
        client: &HttpClient,
        org: &str,
    ) -> Result<Vec<CourseKey>, CatalogError> {
        let mut url = self.url("/api/courses/v1/courses/")?;
        url.query_pairs_mut()
            .append_pair("org", org)
            .append_pair("page_size", "100");
        let mut next = Some(url);
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(page) = next.take() {
            pages += 1;
            let body = self.get_json(client, &page, "the course list").await?;
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
                    .map(|n| {
                        let mut same = self.config.lms_url.clone();
                        same.set_path(n.path());
                        same.set_query(n.query());
                        same
                    });
            }
        }
        Ok(out)
    }

    /// A course's block tree, in course order.
    async fn course(
        &self,
        client: &HttpClient,
        course: &CourseKey,
    ) -> Result<CourseListing, CatalogError> {
        let mut url = self.url("/api/courses/v1/blocks/")?;
        url.query_pairs_mut()
            .append_pair("course_id", course.as_str())
            .append_pair("all_blocks", "true")
            .append_pair("depth", "all")
            .append_pair("requested_fields", "children,display_name");
        let body = self.get_json(client, &url, "the course blocks").await?;
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
    pub async fn listing(
        &self,
        client: &HttpClient,
        gate: &LaunchGate,
    ) -> Result<Vec<CourseListing>, CatalogError> {
        let mut courses: BTreeSet<CourseKey> = gate.allowed_courses.iter().cloned().collect();
        courses.extend(gate.allowed_keys.iter().map(UsageKey::course_key));
        for org in &gate.allowed_orgs {
            courses.extend(self.courses_of_org(client, org).await?);
        }
        let mut out = Vec::new();
        for course in courses {
            let mut listing = match self.course(client, &course).await {
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
