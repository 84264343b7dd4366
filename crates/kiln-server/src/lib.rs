//! # kiln-server
//!
//! kiln's OpenAI-compatible HTTP API as an axum library: [`router`] builds
//! the routes over an [`AppState`] (served models, each with its
//! continuous-batching [`kiln_engine::Engine`]); [`serve`] runs them on a
//! listener until a shutdown signal, then drains running requests.
//!
//! Routes: `GET /` (web chat page), `GET /health`, `GET /metrics`,
//! `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`
//! (both with SSE streaming), `POST /v1/embeddings` (sentence-transformers
//! models given at start). Errors are
//! OpenAI's `{"error": {"message", "type", "param", "code"}}`.
#![warn(missing_docs)]

mod auth;
mod error;
pub mod openai;
pub mod routes;
mod state;
pub mod stream;
pub mod tools;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::{middleware, Router};

pub use error::ApiError;
pub use state::{AppState, ServedEmbedder, ServedModel};

/// All routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(routes::web::index))
        .route("/health", get(routes::ops::health))
        .route("/metrics", get(routes::ops::metrics))
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{id}", get(routes::models::get))
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/completions", post(routes::completions::completions))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: Some("method_not_allowed"),
        ..ApiError::not_found(uri.path())
    }
}

/// Serves `state` on `listener` until `shutdown` completes; then stops
/// accepting connections, lets open requests finish and shuts the engines
/// down (each drains its running requests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let models = state.models.clone();
    // Engine shutdown joins a thread: keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || {
        for m in models.iter() {
            m.engine.shutdown();
        }
    })
    .await;
    result
}

/// Binds `addr`, reports the bound address through `on_bound` (port 0
/// picks a free one), and serves until Ctrl-C or SIGTERM.
pub fn serve_blocking(
    state: AppState,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        on_bound(listener.local_addr()?);
        serve(listener, state, shutdown_signal()).await
    })
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
