//! The web chat page: one self-contained HTML file compiled into the
//! binary (no CDN, works offline).

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
const INDEX: &str = include_str!("../../web/index.html");

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
}
