//! Server-rendered pages: the shared [`Chrome`] every template extends `layout.html` with, the
//! response helper (HTML, `no-store`), and the generic message and passkey re-check pages.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// What the layout needs: title, CSRF token (forms and `<meta name="csrf-token">`), whether
/// someone is signed in (navigation), and an optional notice.
#[derive(Clone, Debug, Default)]
pub struct Chrome {
    /// Page title.
    pub title: String,
    /// CSRF token for forms.
    pub csrf: String,
    /// Show the signed-in navigation.
    pub signed_in: bool,
    /// A status line shown above the content.
    pub notice: Option<String>,
}

impl Chrome {
    /// A chrome with a title and token.
    pub fn new(title: impl Into<String>, csrf: impl Into<String>, signed_in: bool) -> Self {
        Chrome {
            title: title.into(),
            csrf: csrf.into(),
            signed_in,
            notice: None,
        }
    }
}

/// Renders `t` with `status`; pages are never cached (they are per user, some show secrets).
pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Html(body),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// Renders `t` with 200.
pub fn render<T: Template>(t: &T) -> Response {
    render_status(StatusCode::OK, t)
}

/// A heading and a paragraph.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Layout.
    pub chrome: Chrome,
    /// Heading.
    pub heading: String,
    /// Text.
    pub text: String,
}

/// A message page with `status`.
pub fn message(status: StatusCode, chrome: Chrome, heading: &str, text: &str) -> Response {
    render_status(
        status,
        &MessagePage {
            chrome,
            heading: heading.to_string(),
            text: text.to_string(),
        },
    )
}

/// The page asking for a passkey check (a button running the re-verify ceremony).
#[derive(Template)]
#[template(path = "reverify.html")]
pub struct ReverifyPage {
    /// Layout.
    pub chrome: Chrome,
    /// The window in seconds.
    pub window_secs: u64,
}

/// 401 with the re-check page.
pub fn reverify_page(window_secs: u64, csrf: String) -> Response {
    render_status(
        StatusCode::UNAUTHORIZED,
        &ReverifyPage {
            chrome: Chrome::new("Confirm with your passkey", csrf, true),
            window_secs,
        },
    )
}
