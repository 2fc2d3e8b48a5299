//! Talking AGS to a platform: access tokens, line items and scores.
//!
//! Tokens come from the platform's token URL with the client-credentials
//! grant and an RS256 client assertion signed by the registration's tool key
//! (`iss = sub = client_id`, `aud` = `auth_audience` or the token URL, a short
//! `exp`, a fresh `jti`). One token is cached per (registration, scopes) until
//! shortly before it expires. Every outbound request sends a `User-Agent`.

use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use url::Url;

use crate::client::{ClientError, Fetched, HttpClient, USER_AGENT};
use crate::clock::{Clock, UnixTime};
use crate::registry::Registration;
use crate::token::random_token;

/// Largest AGS response read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Tokens are dropped this long before the platform says they expire.
const TOKEN_MARGIN_SEC: u64 = 60;
/// Line item pages followed at most.
const MAX_PAGES: usize = 20;

/// Why a call failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub enum AgsError {
    /// Network trouble, 5xx or 429: try again, after `after` seconds if given.
    Retry { error: String, after: Option<u64> },
    /// A refusal retrying cannot fix.
    Permanent(String),
    /// The platform refused the access token (401): get a fresh one.
    TokenRefused(String),
}

impl std::fmt::Display for AgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgsError::Retry { error, .. }
            | AgsError::Permanent(error)
            | AgsError::TokenRefused(error) => f.write_str(error),
        }
    }
}

impl From<ClientError> for AgsError {
    fn from(e: ClientError) -> Self {
        AgsError::Retry {
            error: e.to_string(),
            after: None,
        }
    }
}

/// Classifies a non-success response.
fn refusal(what: &str, r: &Fetched, now: UnixTime) -> AgsError {
    let body: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
    let error = format!("{what} answered {}: {body}", r.status);
    if r.status == StatusCode::UNAUTHORIZED {
        AgsError::TokenRefused(error)
    } else if r.status == StatusCode::TOO_MANY_REQUESTS || r.status.is_server_error() {
        AgsError::Retry {
            error,
            after: crate::backoff::retry_after(&r.headers, now).map(|d| d.as_secs()),
        }
    } else {
        AgsError::Permanent(error)
    }
}

/// `<lineitem>/scores`, keeping the line item's query string.
pub fn scores_url(lineitem: &str) -> Result<Url, AgsError> {
    let mut url =
        Url::parse(lineitem).map_err(|e| AgsError::Permanent(format!("bad line item URL: {e}")))?;
    let path = format!("{}/scores", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// The connect timeout of calls to platforms.
const PUBLIC_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every AGS call needs: the shared outbound client, the clock, and
/// the platforms' access tokens.
pub struct Ags {
    /// For the LMS, and for platforms that allow private addresses.
    pub client: HttpClient,
    /// For every other platform: public addresses only.
    public: HttpClient,
    pub clock: std::sync::Arc<dyn Clock>,
    tokens: Tokens,
    /// The line item of each resource link found or created so far, by
    /// registration, container and link: one lookup at a time per link.
    lineitems: DashMap<String, std::sync::Arc<tokio::sync::Mutex<Option<String>>>>,
}

impl Ags {
    pub fn new(client: HttpClient, clock: std::sync::Arc<dyn Clock>) -> Self {
        Self {
            client,
            public: HttpClient::public_only(PUBLIC_CONNECT_TIMEOUT),
            clock,
            tokens: Tokens::default(),
            lineitems: DashMap::new(),
        }
    }

    /// The client for calls to `reg`'s platform (see
    /// [`Registration::check_service_url`]).
    fn platform_client(&self, reg: &Registration) -> &HttpClient {
        if reg.platform.allow_private_addresses {
            &self.client
        } else {
            &self.public
        }
    }
}

/// The token cache.
#[derive(Default)]
struct Tokens {
    cache: DashMap<String, (String, UnixTime)>,
}

fn cache_key(reg: &Registration, scopes: &str) -> String {
    format!(
        "{}\n{}\n{scopes}",
        reg.platform.issuer, reg.platform.client_id
    )
}

impl Ags {
    /// A token for `scopes`, from the cache or the platform.
    pub async fn token(
        &self,
        reg: &Registration,
        scopes: &str,
        timeout: Duration,
    ) -> Result<String, AgsError> {
        let now = self.clock.now();
        let key = cache_key(reg, scopes);
        if let Some(hit) = self.tokens.cache.get(&key)
            && hit.1 > now
        {
            return Ok(hit.0.clone());
        }
        let platform = &reg.platform;
        reg.check_service_url(&platform.auth_token_url)
            .map_err(|refused| AgsError::Permanent(format!("the token URL: {refused}")))?;
        let token_url = platform.auth_token_url.as_str();
        let assertion = reg
            .tool_key
            .sign(&json!({
                "iss": platform.client_id,
                "sub": platform.client_id,
                "aud": platform.auth_audience.as_deref().unwrap_or(token_url),
                "iat": now,
                "exp": now + 300,
                "jti": random_token(),
            }))
            .map_err(|e| AgsError::Permanent(format!("cannot sign the client assertion: {e}")))?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", &assertion)
            .append_pair("scope", scopes)
            .finish();
        let request = Request::post(token_url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(crate::full_body(Bytes::from(form)))
            .map_err(|e| AgsError::Permanent(e.to_string()))?;
        let response = self
            .platform_client(reg)
            .send(
                &platform.auth_token_url,
                request,
                MAX_RESPONSE_BYTES,
                timeout,
            )
            .await?;
        if !response.status.is_success() {
            return Err(match refusal("the token endpoint", &response, now) {
                // The token endpoint refusing our client is not fixed by a new token.
                AgsError::TokenRefused(e) => AgsError::Permanent(e),
                other => other,
            });
        }
        let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
            AgsError::Permanent("the token endpoint answered with something other than JSON".into())
        })?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AgsError::Permanent("the token response has no access_token".into()))?
            .to_owned();
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        let expires = now + lifetime.saturating_sub(TOKEN_MARGIN_SEC);
        self.tokens.cache.insert(key, (token.clone(), expires));
        Ok(token)
    }

    /// Forgets a token the platform refused.
    pub fn forget_token(&self, reg: &Registration, scopes: &str) {
        self.tokens.cache.remove(&cache_key(reg, scopes));
    }
}

/// One AGS request.
struct Call<'a> {
    method: Method,
    url: &'a Url,
    content_type: Option<&'static str>,
    accept: &'static str,
    body: Option<Vec<u8>>,
}

/// An authenticated AGS call, to a URL the registration allows.
async fn call(
    ags: &Ags,
    reg: &Registration,
    c: Call<'_>,
    token: &str,
    timeout: Duration,
) -> Result<Fetched, AgsError> {
    let Call {
        method,
        url,
        content_type,
        accept,
        body,
    } = c;
    reg.check_service_url(url).map_err(|refused| {
        AgsError::Permanent(format!(
            "not sent: the platform handed over {url}, and {refused}"
        ))
    })?;
    let mut builder = Request::builder()
        .method(method)
        .uri(url.as_str())
        .header(header::ACCEPT, accept)
        .header(header::USER_AGENT, USER_AGENT);
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        builder = builder.header(header::AUTHORIZATION, v);
    }
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    let request = builder
        .body(crate::full_body(body.map(Bytes::from).unwrap_or_default()))
        .map_err(|e| ClientError::Request(e.to_string()))?;
    Ok(ags
        .platform_client(reg)
        .send(url, request, MAX_RESPONSE_BYTES, timeout)
        .await?)
}

/// The `rel="next"` URL of a `Link` header.
fn next_page(headers: &http::HeaderMap) -> Option<Url> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Url::parse(part.get(start..end)?).ok()
        })
}

/// Finds this resource link's line item in the container, or creates it,
/// once per process and link: learners of one link are delivered
/// concurrently, and two lookups that both found nothing would each create
/// a line item (two gradebook columns).
pub async fn find_or_create_lineitem(
    ags: &Ags,
    reg: &Registration,
    lineitems: &str,
    resource_link_id: &str,
    label: &str,
    token: &str,
    timeout: Duration,
) -> Result<String, AgsError> {
    let key = format!(
        "{}\n{}\n{lineitems}\n{resource_link_id}",
        reg.platform.issuer, reg.platform.client_id
    );
    let slot = ags.lineitems.entry(key).or_default().clone();
    let mut known = slot.lock().await;
    if let Some(id) = known.as_ref() {
        return Ok(id.clone());
    }
    let id =
        lookup_or_create_lineitem(ags, reg, lineitems, resource_link_id, label, token, timeout)
            .await?;
    *known = Some(id.clone());
    Ok(id)
}

/// The container lookup, then the creation when nothing matched.
async fn lookup_or_create_lineitem(
    ags: &Ags,
    reg: &Registration,
    lineitems: &str,
    resource_link_id: &str,
    label: &str,
    token: &str,
    timeout: Duration,
) -> Result<String, AgsError> {
    let now = ags.clock.now();
    let mut url = Url::parse(lineitems)
        .map_err(|e| AgsError::Permanent(format!("bad lineitems URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("resource_link_id", resource_link_id);
    let mut next = Some(url);
    let mut pages = 0;
    while let Some(page) = next.take() {
        pages += 1;
        let r = call(
            ags,
            reg,
            Call {
                method: Method::GET,
                url: &page,
                content_type: None,
                accept: "application/vnd.ims.lis.v2.lineitemcontainer+json",
                body: None,
            },
            token,
            timeout,
        )
        .await?;
        if !r.status.is_success() {
            return Err(refusal("the line items endpoint", &r, now));
        }
        let items: Value = serde_json::from_slice(&r.body)
            .map_err(|_| AgsError::Permanent("the line items response is not JSON".into()))?;
        let found = items.as_array().into_iter().flatten().find_map(|item| {
            (item.get("resourceLinkId").and_then(Value::as_str) == Some(resource_link_id))
                .then(|| item.get("id").and_then(Value::as_str).map(str::to_owned))
                .flatten()
        });
        if let Some(id) = found {
            return Ok(id);
        }
        if pages < MAX_PAGES {
            next = next_page(&r.headers);
        }
    }
    let create = json!({"scoreMaximum": 1, "label": label, "resourceLinkId": resource_link_id});
    let url = Url::parse(lineitems).map_err(|e| AgsError::Permanent(e.to_string()))?;
    let r = call(
        ags,
        reg,
        Call {
            method: Method::POST,
            url: &url,
            content_type: Some("application/vnd.ims.lis.v2.lineitem+json"),
            accept: "application/vnd.ims.lis.v2.lineitem+json",
            body: Some(create.to_string().into_bytes()),
        },
        token,
        timeout,
    )
    .await?;
    if !r.status.is_success() {
        return Err(refusal("creating the line item", &r, now));
    }
    let item: Value = serde_json::from_slice(&r.body)
        .map_err(|_| AgsError::Permanent("the created line item is not JSON".into()))?;
    item.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| AgsError::Permanent("the created line item has no id".into()))
}

/// POSTs one score.
pub async fn post_score(
    ags: &Ags,
    reg: &Registration,
    lineitem: &str,
    score: &Value,
    token: &str,
    timeout: Duration,
) -> Result<(), AgsError> {
    let url = scores_url(lineitem)?;
    let r = call(
        ags,
        reg,
        Call {
            method: Method::POST,
            url: &url,
            content_type: Some("application/vnd.ims.lis.v1.score+json"),
            accept: "application/json",
            body: Some(score.to_string().into_bytes()),
        },
        token,
        timeout,
    )
    .await?;
    if !r.status.is_success() {
        return Err(refusal("the scores endpoint", &r, ags.clock.now()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_go_before_the_query() {
        assert_eq!(
            scores_url("https://moodle.test/mod/lti/services.php/2/lineitems/7/lineitem?type_id=2")
                .expect("url")
                .as_str(),
            "https://moodle.test/mod/lti/services.php/2/lineitems/7/lineitem/scores?type_id=2"
        );
        assert_eq!(
            scores_url("https://canvas.test/api/lti/courses/1/line_items/9/")
                .expect("url")
                .as_str(),
            "https://canvas.test/api/lti/courses/1/line_items/9/scores"
        );
        assert!(matches!(
            scores_url("not a url"),
            Err(AgsError::Permanent(_))
        ));
    }

    #[test]
    fn next_page_from_link_header() {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("<https://p.test/li?page=1>; rel=\"prev\", <https://p.test/li?page=3>; rel=\"next\""),
        );
        assert_eq!(
            next_page(&h).map(|u| u.to_string()),
            Some("https://p.test/li?page=3".into())
        );
    }
}
