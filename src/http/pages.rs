//! The HTML pages a person sees.
//!
//! Pages are small, self-contained (no scripts, fonts or external assets) and
//! accessible. Every piece of text passes through an HTML escaper; nothing
//! internal (hosts, stack traces, key ids, tokens) is ever put on a page.

use std::fmt::Write as _;

use bytes::Bytes;
use html_escape::encode_text;
use http::{HeaderValue, Response, StatusCode, header};

use crate::Body;

/// One page: a heading, paragraphs of plain text, and an optional reference
/// an administrator can search the logs for: the reason code and the id of
/// the request (the access log's and the refusal log's `request_id`).
#[derive(Debug, Clone)]
pub struct Page {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub reference: Option<&'static str>,
    pub request_id: Option<String>,
}

impl Page {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            paragraphs: Vec::new(),
            reference: None,
            request_id: None,
        }
    }

    pub fn para(mut self, text: impl Into<String>) -> Self {
        self.paragraphs.push(text.into());
        self
    }

    pub fn reference(mut self, code: &'static str) -> Self {
        self.reference = Some(code);
        self
    }

    /// The id of the request this page answers, shown beside the reference.
    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }

    pub fn render(&self) -> String {
        let title = encode_text(&self.title);
        let mut html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>{STYLE}</style></head>\n\
             <body><main><h1>{title}</h1>\n"
        );
        for p in &self.paragraphs {
            let _ = writeln!(html, "<p>{}</p>", encode_text(p));
        }
        match (self.reference, &self.request_id) {
            (Some(code), Some(id)) => {
                let _ = writeln!(
                    html,
                    "<p class=\"ref\">Reference for your administrator: <code>{}</code>, request <code>{}</code></p>",
                    encode_text(code),
                    encode_text(id)
                );
            }
            (Some(code), None) => {
                let _ = writeln!(
                    html,
                    "<p class=\"ref\">Reference for your administrator: <code>{}</code></p>",
                    encode_text(code)
                );
            }
            (None, Some(id)) => {
                let _ = writeln!(
                    html,
                    "<p class=\"ref\">Reference for your administrator: request <code>{}</code></p>",
                    encode_text(id)
                );
            }
            (None, None) => {}
        }
        html.push_str("</main></body></html>\n");
        html
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:2rem;color:#1b1b1b;\
background:#fff}main{max-width:40rem}h1{font-size:1.4rem}p{line-height:1.5}\
.ref{color:#555;font-size:.9rem}code{background:#f2f2f2;padding:0 .25rem}";

/// An HTML response with the headers every gateway page carries.
pub fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(crate::full_body(Bytes::from(body)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(h);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'",
        ),
    );
    response
}

/// Headers for anything the gateway itself answers.
pub fn no_store(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything() {
        let html = Page::new("<script>x</script>")
            .para("a & b <img src=x onerror=alert(1)>")
            .reference("nonce_mismatch")
            .render();
        assert!(!html.contains("<script>x"));
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;img"));
        assert!(html.contains("<code>nonce_mismatch</code>"));
    }
}
