//! A test Open edX LMS API: the OAuth2 client-credentials token endpoint and
//! the course and block REST APIs the deep-linking picker reads, over a small
//! fixed catalog.
//!
//! - `POST /oauth2/access_token` (form `grant_type=client_credentials`,
//!   `client_id`, `client_secret`, `token_type=jwt`): `{"access_token",
//!   "token_type": "JWT", "expires_in": 3600}`; wrong credentials get 401.
//! - `GET /api/courses/v1/courses/?org=<org>&page_size=<n>[&page=<p>]` (with
//!   `Authorization: JWT <token>`): `{"results": [{"id", "name"}],
//!   "pagination": {"next", ...}}`, at most [`MAX_PAGE_SIZE`] courses a page,
//!   so [`ORG_PAGED`] takes two pages.
//! - `GET /api/courses/v1/blocks/?course_id=<id>&all_blocks=true&depth=all&requested_fields=children,display_name`
//!   (same header): `{"root": <usage>, "blocks": {<usage>: {"id", "type",
//!   "display_name", "children"}}}`, a course → chapter → sequential →
//!   vertical → leaf tree.
//!
//! [`TestLmsApi::set_failing`] makes every endpoint answer 500;
//! [`TestLmsApi::set_next_origin`] points the paging links elsewhere; counters
//! and a request log let tests check paging and caching.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};

pub const CLIENT_ID: &str = "dl-client";
pub const CLIENT_SECRET: &str = "dl-secret";

/// The courses API answers at most this many courses a page.
pub const MAX_PAGE_SIZE: usize = 2;

/// "Intro to Computing" (the harness's [`super::COURSE`]).
pub const CS101: &str = "course-v1:OrgX+CS101+2026";
/// "Data Structures".
pub const CS102: &str = "course-v1:OrgX+CS102+2026";
/// A course of an org no test gate allows.
pub const SECRET_COURSE: &str = "course-v1:OrgZ+Z1+2026";
/// The org whose course list takes two pages.
pub const ORG_PAGED: &str = "OrgY";
/// The courses of [`ORG_PAGED`], in list order.
pub const PAGED_COURSES: [&str; 3] = [
    "course-v1:OrgY+Y1+2026",
    "course-v1:OrgY+Y2+2026",
    "course-v1:OrgY+Y3+2026",
];

/// The usage key of block `id` of type `kind` in `course`.
pub fn usage(course: &str, kind: &str, id: &str) -> String {
    let run = course.strip_prefix("course-v1:").expect("a course-v1 key");
    format!("block-v1:{run}+type@{kind}+block@{id}")
}

/// One block of a course tree.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    pub children: Vec<Node>,
}

fn node(kind: &'static str, id: &'static str, title: &'static str, children: Vec<Node>) -> Node {
    Node {
        kind,
        id,
        title,
        children,
    }
}

fn leaf(kind: &'static str, id: &'static str, title: &'static str) -> Node {
    node(kind, id, title, vec![])
}

/// One course of the catalog.
#[derive(Debug, Clone)]
pub struct Course {
    pub id: &'static str,
    pub name: &'static str,
    pub root: Node,
}

impl Course {
    /// Every block as `(usage key, type, title)`, depth-first in course order.
    pub fn blocks(&self) -> Vec<(String, &'static str, &'static str)> {
        fn walk(course: &str, n: &Node, out: &mut Vec<(String, &'static str, &'static str)>) {
            out.push((usage(course, n.kind, n.id), n.kind, n.title));
            for c in &n.children {
                walk(course, c, out);
            }
        }
        let mut out = Vec::new();
        walk(self.id, &self.root, &mut out);
        out
    }
}

/// A one-unit course with a single problem.
fn small_course(id: &'static str, name: &'static str, problem: &'static str) -> Course {
    Course {
        id,
        name,
        root: node(
            "course",
            "course",
            name,
            vec![node(
                "chapter",
                "c1",
                "Chapter",
                vec![node(
                    "sequential",
                    "s1",
                    "Subsection",
                    vec![node(
                        "vertical",
                        "v1",
                        "Unit",
                        vec![leaf("problem", "p1", problem)],
                    )],
                )],
            )],
        ),
    }
}

/// The whole catalog, in the order the courses API lists it.
pub fn catalog() -> Vec<Course> {
    vec![
        Course {
            id: CS101,
            name: "Intro to Computing",
            root: node(
                "course",
                "course",
                "Intro to Computing",
                vec![
                    node(
                        "chapter",
                        "ch1",
                        "Week 1",
                        vec![node(
                            "sequential",
                            "s1",
                            "Lesson 1",
                            vec![node(
                                "vertical",
                                "v1",
                                "Unit 1",
                                vec![
                                    leaf("problem", "p1", "Problem 1"),
                                    leaf("html", "h1", "Reading: Q&A <Intro>"),
                                ],
                            )],
                        )],
                    ),
                    node(
                        "chapter",
                        "ch2",
                        "Week 2",
                        vec![node(
                            "sequential",
                            "s2",
                            "Lesson 2",
                            vec![node(
                                "vertical",
                                "v2",
                                "Unit 2",
                                vec![
                                    leaf("video", "vid1", "Lecture video"),
                                    leaf("problem", "p2", "Problem 2"),
                                ],
                            )],
                        )],
                    ),
                ],
            ),
        },
        Course {
            id: CS102,
            name: "Data Structures",
            root: node(
                "course",
                "course",
                "Data Structures",
                vec![node(
                    "chapter",
                    "c1",
                    "Trees",
                    vec![node(
                        "sequential",
                        "s1",
                        "Binary trees",
                        vec![node(
                            "vertical",
                            "v1",
                            "Unit: trees",
                            vec![
                                leaf("problem", "p3", "Tree quiz"),
                                leaf("html", "h3", "Tree notes"),
                            ],
                        )],
                    )],
                )],
            ),
        },
        small_course(PAGED_COURSES[0], "Y course One", "Y1 problem"),
        small_course(PAGED_COURSES[1], "Y course Two", "Y2 problem"),
        small_course(PAGED_COURSES[2], "Y course Three", "Y3 problem"),
        small_course(SECRET_COURSE, "Secret course", "Secret problem"),
    ]
}

/// The catalog entry of a course key.
pub fn course(id: &str) -> Course {
    catalog()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the test catalog"))
}

/// One request as the LMS saw it.
#[derive(Debug, Clone)]
pub struct LmsRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    base: String,
    /// Where the courses API's `pagination.next` links point (default: `base`).
    next_base: Mutex<Option<String>>,
    failing: AtomicBool,
    token_calls: AtomicUsize,
    course_calls: AtomicUsize,
    blocks_calls: AtomicUsize,
    tokens: Mutex<HashSet<String>>,
    log: Mutex<Vec<LmsRequest>>,
}

pub struct TestLmsApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TestLmsApi {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            ..Default::default()
        });
        let served = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(&shared, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The `[deep_linking]` table for a gateway reading this LMS.
    pub fn config(&self) -> String {
        self.config_with_secret(CLIENT_SECRET)
    }

    /// The `[deep_linking]` table, with another client secret.
    pub fn config_with_secret(&self, secret: &str) -> String {
        format!(
            "[deep_linking]\nlms_url = \"{}\"\nlms_client_id = \"{CLIENT_ID}\"\nlms_client_secret = \"{secret}\"\n",
            self.url()
        )
    }

    /// Makes the courses API's `pagination.next` links point at another
    /// origin (as a misconfigured or hostile LMS might).
    pub fn set_next_origin(&self, origin: &str) {
        *self.shared.next_base.lock().expect("lock") = Some(origin.to_owned());
    }

    /// While on, every endpoint answers 500.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Requests to the token endpoint.
    pub fn token_calls(&self) -> usize {
        self.shared.token_calls.load(Ordering::SeqCst)
    }

    /// Requests to the courses API.
    pub fn course_calls(&self) -> usize {
        self.shared.course_calls.load(Ordering::SeqCst)
    }

    /// Requests to the blocks API.
    pub fn blocks_calls(&self) -> usize {
        self.shared.blocks_calls.load(Ordering::SeqCst)
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<LmsRequest> {
        self.shared.log.lock().expect("lock").clone()
    }

    /// The requests to one path.
    pub fn requests_to(&self, path: &str) -> Vec<LmsRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

struct Answer {
    status: u16,
    body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body }
}

async fn serve(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    let content_type = header("content-type");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let counter = match path.as_str() {
        "/oauth2/access_token" => Some(&shared.token_calls),
        "/api/courses/v1/courses/" => Some(&shared.course_calls),
        "/api/courses/v1/blocks/" => Some(&shared.blocks_calls),
        _ => None,
    };
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::SeqCst);
    }
    let result = if shared.failing.load(Ordering::SeqCst) {
        answer(500, json!({"detail": "programmed failure"}))
    } else {
        match (method.as_str(), path.as_str()) {
            ("POST", "/oauth2/access_token") => token(shared, content_type.as_deref(), &body),
            ("GET", "/api/courses/v1/courses/" | "/api/courses/v1/blocks/")
                if !authorized(shared, authorization.as_deref()) =>
            {
                answer(
                    401,
                    json!({"detail": "Authentication credentials were not provided."}),
                )
            }
            ("GET", "/api/courses/v1/courses/") => courses(shared, &query),
            ("GET", "/api/courses/v1/blocks/") => blocks(&query),
            _ => answer(404, json!({"detail": "Not found."})),
        }
    };
    shared.log.lock().expect("lock").push(LmsRequest {
        method,
        path,
        query,
        authorization,
        status: result.status,
    });
    hyper::Response::builder()
        .status(result.status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(result.body.to_string())))
        .expect("response")
}

fn authorized(shared: &Shared, authorization: Option<&str>) -> bool {
    authorization
        .and_then(|a| a.strip_prefix("JWT "))
        .is_some_and(|t| shared.tokens.lock().expect("lock").contains(t))
}

fn token(shared: &Shared, content_type: Option<&str>, body: &[u8]) -> Answer {
    if content_type != Some("application/x-www-form-urlencoded") {
        return answer(400, json!({"error": "invalid_request"}));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return answer(400, json!({"error": "unsupported_grant_type"}));
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return answer(401, json!({"error": "invalid_client"}));
    }
    if field("token_type") != Some("jwt") {
        return answer(
            400,
            json!({"error": "invalid_request", "error_description": "token_type must be jwt"}),
        );
    }
    let mut tokens = shared.tokens.lock().expect("lock");
    let token = format!("lms-jwt-{}", tokens.len() + 1);
    tokens.insert(token.clone());
    answer(
        200,
        json!({"access_token": token, "token_type": "JWT", "expires_in": 3600, "scope": "read write"}),
    )
}

fn courses(shared: &Shared, query: &HashMap<String, String>) -> Answer {
    let Some(org) = query.get("org") else {
        return answer(400, json!({"detail": "this test LMS lists by org only"}));
    };
    let size = query
        .get("page_size")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, MAX_PAGE_SIZE);
    let page = query
        .get("page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1);
    let all: Vec<Course> = catalog()
        .into_iter()
        .filter(|c| {
            c.id.strip_prefix("course-v1:")
                .and_then(|r| r.split('+').next())
                == Some(org)
        })
        .collect();
    let pages = all.len().div_ceil(size).max(1);
    if page == 0 || page > pages {
        return answer(404, json!({"detail": "Invalid page."}));
    }
    let results: Vec<Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|c| json!({"id": c.id, "course_id": c.id, "name": c.name, "org": org}))
        .collect();
    let base = shared
        .next_base
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| shared.base.clone());
    let link = |p: usize| {
        let mut url = url::Url::parse(&format!("{base}/api/courses/v1/courses/")).expect("url");
        url.query_pairs_mut()
            .append_pair("org", org)
            .append_pair("page", &p.to_string())
            .append_pair("page_size", &size.to_string());
        Value::String(url.to_string())
    };
    answer(
        200,
        json!({
            "results": results,
            "pagination": {
                "next": if page < pages { link(page + 1) } else { Value::Null },
                "previous": if page > 1 { link(page - 1) } else { Value::Null },
                "count": all.len(),
                "num_pages": pages,
            },
        }),
    )
}

fn blocks(query: &HashMap<String, String>) -> Answer {
    let q = |name: &str| query.get(name).map(String::as_str);
    let fields: Vec<&str> = q("requested_fields")
        .unwrap_or_default()
        .split(',')
        .collect();
    if q("all_blocks") != Some("true")
        || q("depth") != Some("all")
        || !fields.contains(&"children")
        || !fields.contains(&"display_name")
    {
        return answer(
            400,
            json!({"detail": "expected all_blocks=true, depth=all and requested_fields=children,display_name"}),
        );
    }
    let Some(course) = q("course_id").and_then(|id| catalog().into_iter().find(|c| c.id == id))
    else {
        return answer(404, json!({"detail": "Course not found."}));
    };
    fn walk(course: &str, n: &Node, out: &mut Map<String, Value>) {
        let id = usage(course, n.kind, n.id);
        let mut block = json!({
            "id": id,
            "block_id": n.id,
            "type": n.kind,
            "display_name": n.title,
            "lms_web_url": format!("https://lms.example.test/courses/{course}/jump_to/{id}"),
        });
        if !n.children.is_empty() {
            block["children"] = n
                .children
                .iter()
                .map(|c| Value::String(usage(course, c.kind, c.id)))
                .collect();
        }
        out.insert(id, block);
        for c in &n.children {
            walk(course, c, out);
        }
    }
    let mut out = Map::new();
    walk(course.id, &course.root, &mut out);
    answer(
        200,
        json!({"root": usage(course.id, course.root.kind, course.root.id), "blocks": out}),
    )
}
