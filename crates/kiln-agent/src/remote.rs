//! Remote backends: any OpenAI-compatible server (vLLM, Ollama,
//! llama-server, OpenAI, `kiln serve`) as a [`TextGenerator`] and an
//! [`Embedder`]. Chat replies stream over SSE; connection failures, 429
//! and 5xx answers are retried with backoff as long as nothing was
//! received yet; every request has a timeout; a stream that stops before
//! `[DONE]` is an error, never a silently short answer.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use kiln_core::{
    ChatMessage, ChatOptions, ChatReply, CoreError, Embedder, OutputConstraint, TextGenerator,
    ToolCall,
};
use serde_json::{json, Value};

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The API base, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The `model` field sent with each request.
    pub model: String,
    /// Bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// Time limit of a whole request (a stream included).
    pub timeout: Duration,
    /// Extra attempts after a retryable failure.
    pub retries: u32,
    /// Wait before the first retry (doubled each time).
    pub backoff: Duration,
}

impl RemoteConfig {
    /// `base_url` and `model`, 120-second timeout, 2 retries from 250 ms.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            model: model.into(),
            api_key: std::env::var("KILN_API_KEY")
                .ok()
                .or_else(|| std::env::var("OPENAI_API_KEY").ok()),
            timeout: Duration::from_secs(120),
            retries: 2,
            backoff: Duration::from_millis(250),
        }
    }
}

fn backend(message: impl std::fmt::Display) -> CoreError {
    CoreError::Model(format!("remote backend: {message}"))
}

/// One HTTP attempt's failure: whether trying again may help.
struct Failure {
    retry: bool,
    message: String,
}

/// A client of one server and model.
#[derive(Debug, Clone)]
pub struct RemoteClient {
    config: RemoteConfig,
    agent: ureq::Agent,
}

impl RemoteClient {
    /// A client for `config`.
    pub fn new(config: RemoteConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self { config, agent }
    }

    /// POSTs `body` to `path`, retrying; `read` consumes a 200 response.
    fn post<T>(
        &self,
        path: &str,
        body: &Value,
        mut read: impl FnMut(ureq::http::Response<ureq::Body>) -> Result<T, Failure>,
    ) -> Result<T, CoreError> {
        let url = format!("{}{path}", self.config.base_url);
        let mut wait = self.config.backoff;
        let mut attempt = 0;
        loop {
            let mut request = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json");
            if let Some(key) = &self.config.api_key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            let failure = match request.send(body.to_string().as_bytes()) {
                Err(e) => Failure {
                    retry: true,
                    message: format!("{url}: {e}"),
                },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 200 {
                        match read(resp) {
                            Ok(v) => return Ok(v),
                            Err(f) => f,
                        }
                    } else {
                        let text = resp.into_body().read_to_string().unwrap_or_default();
                        let message = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                            .unwrap_or(text);
                        Failure {
                            retry: status == 429 || status >= 500,
                            message: format!("{url}: HTTP {status}: {message}"),
                        }
                    }
                }
            };
            if !failure.retry || attempt >= self.config.retries {
                return Err(backend(failure.message));
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait *= 2;
        }
    }

    /// The `/chat/completions` body for `messages` with `options`.
    fn request_body(&self, messages: &[ChatMessage], options: &ChatOptions, stream: bool) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "stream": stream,
        });
        if let Some(n) = options.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if let Some(t) = options.temperature {
            body["temperature"] = json!(t);
        }
        if !options.stop.is_empty() {
            body["stop"] = json!(options.stop);
        }
        if let Some(s) = options.seed {
            body["seed"] = json!(s);
        }
        match &options.constraint {
            None => {}
            Some(OutputConstraint::JsonObject) => {
                body["response_format"] = json!({"type": "json_object"})
            }
            Some(OutputConstraint::JsonSchema(schema)) => {
                body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}});
            }
            Some(OutputConstraint::Choice(labels)) => {
                // OpenAI's API has no label lists: a schema with an enum.
                body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "label", "schema": {"enum": labels}, "strict": true}});
            }
        }
        body
    }
}

impl TextGenerator for RemoteClient {
    fn name(&self) -> &str {
        &self.config.model
    }

    fn chat(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError> {
        let body = self.request_body(messages, options, true);
        let choice = matches!(options.constraint, Some(OutputConstraint::Choice(_)));
        let text = self.post("/chat/completions", &body, |resp| {
            let mut text = String::new();
            let reader = BufReader::new(resp.into_body().into_reader());
            for line in reader.lines() {
                let line = line.map_err(|e| Failure {
                    // Text already went to the caller: a retry would repeat it.
                    retry: text.is_empty(),
                    message: format!("the stream broke: {e}"),
                })?;
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return Ok(text);
                }
                let chunk: Value = serde_json::from_str(data).map_err(|e| Failure {
                    retry: false,
                    message: format!("bad stream chunk {data:?}: {e}"),
                })?;
                if let Some(message) = chunk["error"]["message"].as_str() {
                    return Err(Failure {
                        retry: false,
                        message: message.to_string(),
                    });
                }
                if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                    on_text(delta);
                    text.push_str(delta);
                }
            }
            Err(Failure {
                retry: text.is_empty(),
                message: "the stream ended before [DONE] (server gone?)".into(),
            })
        })?;
        if choice {
            // The label came back as a JSON string.
            return serde_json::from_str::<String>(&text)
                .map_err(|e| backend(format!("label {text:?}: {e}")));
        }
        Ok(text)
    }

    fn chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        options: &ChatOptions,
    ) -> Result<ChatReply, CoreError> {
        let mut body = self.request_body(messages, options, false);
        body["tools"] = Value::Array(tools.to_vec());
        body["tool_choice"] = options.tool_choice.to_openai();
        self.post("/chat/completions", &body, |resp| {
            let text = resp.into_body().read_to_string().map_err(|e| Failure {
                retry: true,
                message: format!("reading the response: {e}"),
            })?;
            let v: Value = serde_json::from_str(&text).map_err(|e| Failure {
                retry: false,
                message: format!("bad response {text:?}: {e}"),
            })?;
            let message = &v["choices"][0]["message"];
            let tool_calls = message["tool_calls"]
                .as_array()
                .map(|calls| calls.iter().filter_map(ToolCall::from_openai).collect())
                .unwrap_or_default();
            Ok(ChatReply {
                content: message["content"].as_str().unwrap_or_default().to_string(),
                tool_calls,
            })
        })
    }
}

/// An embedding model behind `/v1/embeddings`.
#[derive(Debug, Clone)]
pub struct RemoteEmbedder {
    client: RemoteClient,
    dimension: usize,
}

impl RemoteEmbedder {
    /// Connects and learns the vectors' width from one probe request.
    pub fn connect(config: RemoteConfig) -> Result<Self, CoreError> {
        let client = RemoteClient::new(config);
        let mut me = Self {
            client,
            dimension: 0,
        };
        me.dimension = me.embed(&["dimension probe"])?.first().map_or(0, Vec::len);
        if me.dimension == 0 {
            return Err(backend("the server returned an empty embedding"));
        }
        Ok(me)
    }
}

impl Embedder for RemoteEmbedder {
    fn name(&self) -> &str {
        &self.client.config.model
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CoreError> {
        let body =
            json!({"model": self.client.config.model, "input": texts, "encoding_format": "float"});
        let value: Value = self.client.post("/embeddings", &body, |resp| {
            let text = resp.into_body().read_to_string().map_err(|e| Failure {
                retry: true,
                message: e.to_string(),
            })?;
            serde_json::from_str(&text).map_err(|e| Failure {
                retry: false,
                message: format!("bad JSON: {e}"),
            })
        })?;
        let data = value["data"]
            .as_array()
            .ok_or_else(|| backend("no `data` in the embeddings response"))?;
        let mut out = vec![Vec::new(); texts.len()];
        for item in data {
            let i = item["index"].as_u64().unwrap_or(0) as usize;
            let v: Vec<f32> = item["embedding"]
                .as_array()
                .ok_or_else(|| backend("an embedding is not a list of floats"))?
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                .collect();
            if let Some(slot) = out.get_mut(i) {
                *slot = v;
            }
        }
        if out.iter().any(Vec::is_empty) {
            return Err(backend("the server returned fewer embeddings than texts"));
        }
        Ok(out)
    }
}
