//! The LMS's REST APIs, as ltigate's own service client: an OAuth2
//! client-credentials token (`token_type=jwt`, refreshed before it
//! expires) and JSON GETs with it. The deep-linking picker lists courses
//! and blocks with it; the gate reads a course's block tree with it (the
//! course_tree module).
//!
//! Open edX: `POST /oauth2/access_token` is django-oauth-toolkit's token view
//! with edx-platform's JWT token type (openedx/openedx-platform,
//! `openedx/core/djangoapps/oauth_dispatch/views.py`, `AccessTokenView`); the
//! answer to an API call with `Authorization: JWT <token>` is checked by
//! edx-drf-extensions' `JwtAuthentication`. A 401 drops the cached token, so
//! the next call fetches a new one.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use crate::client::{HttpClient, USER_AGENT};

const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Where the LMS is and the OAuth2 client ltigate uses there.
#[derive(Clone)]
pub struct LmsApiConfig {
    pub url: Url,
    pub client_id: String,
    /// Never logged.
    pub client_secret: String,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for LmsApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmsApiConfig")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LmsApiError {
    #[error("the LMS could not be reached: {0}")]
    Unreachable(String),
    #[error("the LMS answered {0} to {1}")]
    Refused(http::StatusCode, &'static str),
    #[error("the LMS answer to {0} could not be read")]
    Malformed(&'static str),
}

pub struct LmsApi {
    config: LmsApiConfig,
    token: Mutex<Option<(String, Instant)>>,
}

impl LmsApi {
    pub fn new(config: LmsApiConfig) -> Self {
        Self {
            config,
            token: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &LmsApiConfig {
        &self.config
    }

    /// `path_and_query` on the LMS.
    pub fn url(&self, path_and_query: &str) -> Result<Url, LmsApiError> {
        self.config
            .url
            .join(path_and_query)
            .map_err(|e| LmsApiError::Unreachable(e.to_string()))
    }

    /// `other`'s path and query on the configured LMS: a link the LMS
    /// returned (a next page) is followed there, so the token never leaves
    /// the configured origin.
    pub fn same_origin(&self, other: &Url) -> Url {
        let mut same = self.config.url.clone();
        same.set_path(other.path());
        same.set_query(other.query());
        same
    }

    async fn token(&self, client: &HttpClient) -> Result<String, LmsApiError> {
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
            .map_err(|e| LmsApiError::Unreachable(e.to_string()))?;
        let r = client
            .send(
                &url,
                request,
                MAX_RESPONSE_BYTES,
                self.config.request_timeout,
            )
            .await
            .map_err(|e| LmsApiError::Unreachable(e.to_string()))?;
        if !r.status.is_success() {
            return Err(LmsApiError::Refused(r.status, "the OAuth2 token request"));
        }
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|_| LmsApiError::Malformed("the OAuth2 token request"))?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or(LmsApiError::Malformed("the OAuth2 token request"))?
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

    /// GETs `url` with the token and parses the JSON answer. `what` names
    /// the call in errors.
    pub async fn get_json(
        &self,
        client: &HttpClient,
        url: &Url,
        what: &'static str,
    ) -> Result<Value, LmsApiError> {
        let token = self.token(client).await?;
        let mut request = Request::get(url.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(crate::full_body(Bytes::new()))
            .map_err(|e| LmsApiError::Unreachable(e.to_string()))?;
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
            .map_err(|e| LmsApiError::Unreachable(e.to_string()))?;
        if r.status == http::StatusCode::UNAUTHORIZED {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if !r.status.is_success() {
            return Err(LmsApiError::Refused(r.status, what));
        }
        serde_json::from_slice(&r.body).map_err(|_| LmsApiError::Malformed(what))
    }

    /// The Course Blocks API's whole tree of `course` (staff access:
    /// `all_blocks=true`, every depth), with each block's children and
    /// display name (edx-platform `lms/djangoapps/course_api/blocks/views.py`,
    /// `BlocksInCourseView`).
    pub async fn course_blocks(
        &self,
        client: &HttpClient,
        course: &crate::content::CourseKey,
    ) -> Result<Value, LmsApiError> {
        let url = self.blocks_url(course)?;
        self.get_json(client, &url, "the course blocks").await
    }

    /// The URL [`Self::course_blocks`] reads.
    pub fn blocks_url(&self, course: &crate::content::CourseKey) -> Result<Url, LmsApiError> {
        let mut url = self.url("/api/courses/v1/blocks/")?;
        url.query_pairs_mut()
            .append_pair("course_id", course.as_str())
            .append_pair("all_blocks", "true")
            .append_pair("depth", "all")
            .append_pair("requested_fields", "children,display_name");
        Ok(url)
    }
}
