//! Response bodies: log-probabilities in chat and legacy form, usage, and
//! the chunk envelope of streams.

use kiln_core::{Tokenizer, Usage};
use kiln_sampling::TokenLogprob;
use serde_json::{json, Value};

/// The text of one token as OpenAI reports it in log-probabilities.
pub fn token_text(tokenizer: &Tokenizer, id: u32) -> String {
    tokenizer.decode(&[id], false).unwrap_or_default()
}

/// One entry of chat log-probabilities (`{token, logprob, bytes, top_logprobs}`).
pub fn chat_logprob(tokenizer: &Tokenizer, lp: &TokenLogprob) -> Value {
    let entry = |id: u32, logprob: f32| {
        let token = token_text(tokenizer, id);
        json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
    };
    let mut head = entry(lp.token, lp.logprob);
    let top: Vec<Value> = lp.top.iter().map(|&(id, l)| entry(id, l)).collect();
    head["top_logprobs"] = Value::Array(top);
    head
}

/// Chat `logprobs` object for a list of tokens.
pub fn chat_logprobs(tokenizer: &Tokenizer, lps: &[TokenLogprob]) -> Value {
    json!({"content": lps.iter().map(|lp| chat_logprob(tokenizer, lp)).collect::<Vec<_>>()})
}

/// Legacy completions `logprobs` (`tokens`, `token_logprobs`,
/// `top_logprobs`, `text_offset`), offsets counted from `offset`.
pub fn completion_logprobs(tokenizer: &Tokenizer, lps: &[TokenLogprob], offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut values = Vec::new();
    let mut tops = Vec::new();
    let mut offsets = Vec::new();
    let mut at = offset;
    for lp in lps {
        let t = token_text(tokenizer, lp.token);
        offsets.push(at);
        at += t.len();
        tokens.push(t);
        values.push(lp.logprob);
        let top: serde_json::Map<String, Value> = lp
            .top
            .iter()
            .map(|&(id, l)| (token_text(tokenizer, id), json!(l)))
            .collect();
        tops.push(Value::Object(top));
    }
    json!({"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets})
}

/// OpenAI's usage object.
pub fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    })
}
