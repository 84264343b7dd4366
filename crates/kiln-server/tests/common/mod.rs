//! A live server on a free loopback port, for tests over real sockets.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use kiln_engine::{Engine, EngineConfig};
use kiln_server::{AppState, ServedModel};

/// A running server; dropping it shuts it down.
pub struct Live {
    pub base: String,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

/// Serves the llama fixture as `llama` (and `tiny` as an alias of qwen2).
pub fn start(config: EngineConfig, api_key: Option<&str>, max_body: usize) -> Live {
    let mut models = Vec::new();
    for (name, dir) in [("llama", "llama"), ("tiny", "qwen2")] {
        let model = kiln_models::Model::load_dir(&fixture(dir)).unwrap();
        models.push(ServedModel {
            name: name.into(),
            engine: Arc::new(Engine::start(Arc::new(model), config.clone()).unwrap()),
            created: 1,
        });
    }
    let mut state = AppState::new(models);
    let bert = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/encoders/bert");
    state.embedders = Arc::new(vec![kiln_server::ServedEmbedder {
        name: "embed".into(),
        model: Arc::new(kiln_models::encoder::SentenceEmbedder::load(&bert).unwrap()),
        created: 1,
    }]);
    state.api_key = api_key.map(Into::into);
    state.max_body_bytes = max_body;
    state.keep_alive = std::time::Duration::from_millis(50);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let served = state.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            kiln_server::serve(listener, served, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    Live {
        base: format!("http://{addr}"),
        state,
        stop: Some(tx),
        thread: Some(thread),
    }
}

impl Live {
    /// Triggers graceful shutdown and waits for it.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An agent that returns non-2xx responses instead of errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` (raw) to `path`; returns status and parsed JSON body.
pub fn post_raw(
    live: &Live,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = agent()
        .post(format!("{}{path}", live.base))
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub fn post(live: &Live, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    post_raw(live, path, &body.to_string(), None)
}
