//! The picker page and the auto-submitting response form.
//!
//! Plain server-rendered HTML: labelled controls in fieldsets, usable by
//! keyboard, no external scripts, fonts or styles. The search box filters on
//! the server (a GET form), so it needs no script either. The only script is
//! the one-line auto-submit of the response form, allowed by its hash in the
//! page's Content-Security-Policy; a visible button does the same without it.

use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use bytes::Bytes;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use http::{HeaderValue, Response, StatusCode, header};

use super::pages::no_store;
use crate::Body;
use crate::deep_linking::{AutoPost, Picker};

/// Show the search box from this many items on.
const SEARCH_FROM: usize = 15;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1.5rem;color:#1b1b1b}\
main{max-width:48rem}fieldset{margin:0 0 1rem;border:1px solid #ccc}legend{font-weight:600}\
label{display:block;padding:.2rem 0}.t{color:#555;font-size:.85rem}button{font-size:1rem;padding:.4rem 1rem}\
:focus{outline:2px solid #1a5fb4;outline-offset:2px}";

const SUBMIT_SCRIPT: &str = "document.getElementById('dl').submit();";

fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, SUBMIT_SCRIPT.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    })
}

fn respond(status: StatusCode, html: String, csp: &str) -> Response<Body> {
    let mut response = Response::new(crate::full_body(Bytes::from(html)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(h);
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// The picker.
pub fn picker(view: &Picker) -> Response<Body> {
    let Picker {
        listing,
        session,
        token,
        search,
    } = view;
    let search = search.as_deref();
    let total: usize = listing.iter().map(|c| c.blocks.len()).sum();
    let needle = search.map(str::to_lowercase);
    let matches = |title: &str, key: &str| {
        needle
            .as_deref()
            .is_none_or(|n| title.to_lowercase().contains(n) || key.to_lowercase().contains(n))
    };
    let kind = if session.accept_multiple {
        "checkbox"
    } else {
        "radio"
    };
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Choose content</title><style>{STYLE}</style></head><body><main>\
         <h1>Choose content to add</h1>\n"
    );
    if total >= SEARCH_FROM || search.is_some() {
        let _ = writeln!(
            html,
            "<form method=\"get\" role=\"search\"><label for=\"q\">Search by title or key</label>\
             <input type=\"search\" id=\"q\" name=\"q\" value=\"{}\"> <button type=\"submit\">Search</button></form>",
            attr(search.unwrap_or_default())
        );
    }
    let _ = writeln!(
        html,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        attr(&crate::deep_linking::picker_path(token)),
        attr(&session.csrf)
    );
    let mut shown = 0;
    for course in listing {
        let blocks: Vec<_> = course
            .blocks
            .iter()
            .filter(|b| matches(&b.title, b.usage.as_str()))
            .collect();
        if blocks.is_empty() {
            continue;
        }
        let _ = writeln!(html, "<fieldset><legend>{}</legend>", text(&course.title));
        for b in blocks {
            shown += 1;
            let id = format!("i{shown}");
            let _ = writeln!(
                html,
                "<label for=\"{id}\" style=\"padding-left:{}rem\"><input type=\"{kind}\" id=\"{id}\" name=\"item\" value=\"{}\"> {} <span class=\"t\">({})</span></label>",
                b.depth.min(6),
                attr(b.usage.as_str()),
                text(&b.title),
                text(&b.block_type)
            );
        }
        html.push_str("</fieldset>\n");
    }
    if shown == 0 {
        html.push_str(if search.is_some() {
            "<p>Nothing matches this search.</p>\n"
        } else {
            "<p>The launch gate of this platform allows no published content yet. An administrator can allow courses, orgs or keys in the platform's [platforms.gate] settings.</p>\n"
        });
    } else {
        html.push_str("<button type=\"submit\">Add to course</button>\n");
    }
    html.push_str("</form></main></body></html>\n");
    respond(
        StatusCode::OK,
        html,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    )
}

/// The auto-submitting form that carries the response JWT to the platform.
pub fn autopost(post: &AutoPost) -> Response<Body> {
    let (return_url, jwt) = (post.return_url.as_str(), post.jwt.as_str());
    let origin = url::Url::parse(return_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Returning to your course</title>\
         <style>{STYLE}</style></head><body><main>\
         <form id=\"dl\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"JWT\" value=\"{}\">\
         <p>Returning the selected content to your course.</p>\
         <button type=\"submit\">Continue</button></form></main>\
         <script>{SUBMIT_SCRIPT}</script></body></html>\n",
        attr(return_url),
        attr(jwt)
    );
    respond(
        StatusCode::OK,
        html,
        &format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src {}; form-action {origin}",
            script_hash()
        ),
    )
}
