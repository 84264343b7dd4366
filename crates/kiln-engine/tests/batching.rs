//! The continuous-batching engine: concurrent requests get exactly what
//! they get alone, dropped streams are cancelled, limits are enforced, and
//! shutdown drains.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::{FinishReason, GenerationParams};
use kiln_engine::{
    generate, Engine, EngineConfig, EngineError, Event, Output, Request, StreamEvent,
};
use kiln_models::Model;

fn model(name: &str) -> Arc<Model> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name);
    Arc::new(Model::load_dir(&dir).unwrap())
}

/// Reads a stream to its end: the final output and the concatenated text
/// of each sequence's events.
fn drain(stream: &mut kiln_engine::RequestStream) -> (Output, Vec<String>) {
    let mut texts: Vec<String> = Vec::new();
    loop {
        match stream.blocking_next() {
            Some(StreamEvent::Generated(Event::Token { sequence, text, .. }))
            | Some(StreamEvent::Generated(Event::Text { sequence, text })) => {
                if texts.len() <= sequence {
                    texts.resize(sequence + 1, String::new());
                }
                texts[sequence].push_str(&text);
            }
            Some(StreamEvent::Generated(Event::Finished { .. })) => {}
            Some(StreamEvent::Done(out)) => return (out, texts),
            Some(StreamEvent::Failed(e)) => panic!("request failed: {e}"),
            None => panic!("stream ended without Done"),
        }
    }
}

fn requests(vocab: u32) -> Vec<Request> {
    let mut out = Vec::new();
    for i in 0..12u32 {
        let prompt: Vec<u32> = (0..(3 + i % 7))
            .map(|j| (j * 11 + i * 5 + 1) % vocab)
            .collect();
        let params = match i % 4 {
            0 => GenerationParams {
                max_new_tokens: Some(12 + i as usize),
                do_sample: Some(false),
                ..Default::default()
            },
            1 => GenerationParams {
                max_new_tokens: Some(10),
                do_sample: Some(true),
                temperature: Some(0.8),
                top_p: Some(0.9),
                seed: Some(u64::from(i)),
                ..Default::default()
            },
            2 => GenerationParams {
                max_new_tokens: Some(8),
                do_sample: Some(true),
                seed: Some(7),
                num_return_sequences: 3,
                logprobs: Some(2),
                ..Default::default()
            },
            _ => GenerationParams {
                max_new_tokens: Some(16),
                do_sample: Some(false),
                repetition_penalty: Some(1.3),
                ..Default::default()
            },
        };
        out.push(Request {
            prompt_ids: prompt,
            params,
        });
    }
    out
}

#[test]
fn concurrent_requests_match_running_alone() {
    for name in ["llama", "qwen2", "gpt2"] {
        let model = model(name);
        let reqs = requests(model.spec().vocab_size as u32);
        let alone: Vec<Output> = reqs
            .iter()
            .map(|r| generate(&model, r, |_| {}).unwrap())
            .collect();
        let engine = Engine::start(
            model.clone(),
            EngineConfig {
                max_sequences: 8,
                prefill_chunk: 5,
                ..Default::default()
            },
        )
        .unwrap();
        // All submitted at once: they queue, join as slots free, prefill in
        // 5-token chunks next to other requests' decode steps.
        let mut streams: Vec<_> = reqs
            .iter()
            .map(|r| engine.submit(r.clone()).unwrap())
            .collect();
        for (i, stream) in streams.iter_mut().enumerate() {
            let (out, texts) = drain(stream);
            assert_eq!(out.usage, alone[i].usage, "{name} request {i}");
            for (s, (got, want)) in out.sequences.iter().zip(&alone[i].sequences).enumerate() {
                assert_eq!(got.token_ids, want.token_ids, "{name} request {i} seq {s}");
                assert_eq!(got.text, want.text);
                assert_eq!(got.finish_reason, want.finish_reason);
                assert_eq!(
                    texts[s], got.text,
                    "streamed deltas concatenate to the text"
                );
                assert_eq!(got.logprobs.len(), want.logprobs.len());
                for (a, b) in got.logprobs.iter().zip(&want.logprobs) {
                    assert!((a.logprob - b.logprob).abs() < 1e-4);
                }
            }
        }
        let m = engine.metrics();
        assert_eq!(m.requests_finished, 12);
        assert_eq!(m.running_requests, 0);
        assert_eq!(m.queue_depth, 0);
        assert_eq!(m.ttft_count, 12);
        let want_tokens: usize = alone.iter().map(|o| o.usage.completion_tokens).sum();
        assert_eq!(m.completion_tokens as usize, want_tokens);
    }
}

#[test]
fn stop_strings_and_beam_search_through_the_engine() {
    let model = model("llama");
    let engine = Engine::start(model.clone(), EngineConfig::default()).unwrap();
    let prompt = vec![1, 50, 60, 70];
    let greedy = Request {
        prompt_ids: prompt.clone(),
        params: GenerationParams {
            max_new_tokens: Some(20),
            do_sample: Some(false),
            ..Default::default()
        },
    };
    let full = generate(&model, &greedy, |_| {}).unwrap().sequences[0]
        .text
        .clone();
    let cut: String = full.chars().skip(3).take(2).collect();
    assert!(!cut.is_empty());
    let mut stopped = greedy.clone();
    stopped.params.stop = vec![cut.clone()];
    let (out, _) = drain(&mut engine.submit(stopped.clone()).unwrap());
    let want = generate(&model, &stopped, |_| {}).unwrap();
    assert_eq!(out.sequences[0].text, want.sequences[0].text);
    assert_eq!(out.sequences[0].finish_reason, FinishReason::Stop);
    assert!(!out.sequences[0].text.contains(&cut));

    let mut beams = greedy;
    beams.params.num_beams = 3;
    beams.params.num_return_sequences = 2;
    let (out, _) = drain(&mut engine.submit(beams.clone()).unwrap());
    let want = generate(&model, &beams, |_| {}).unwrap();
    assert_eq!(out, want);
}

#[test]
fn dropping_a_stream_cancels_its_request() {
    let model = model("llama");
    let engine = Engine::start(
        model,
        EngineConfig {
            max_sequences: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let long = Request {
        prompt_ids: vec![1, 2, 3],
        params: GenerationParams {
            max_new_tokens: Some(250),
            ignore_eos: true,
            do_sample: Some(false),
            ..Default::default()
        },
    };
    let mut streams: Vec<_> = (0..4)
        .map(|_| engine.submit(long.clone()).unwrap())
        .collect();
    // A fifth waits for a slot.
    let mut waiting = engine.submit(long.clone()).unwrap();
    for s in &mut streams {
        assert!(matches!(s.blocking_next(), Some(StreamEvent::Generated(_))));
    }
    assert_eq!(engine.metrics().running_requests, 4);
    assert_eq!(engine.metrics().queue_depth, 1);
    streams.truncate(2); // two clients go away
    assert!(matches!(
        waiting.blocking_next(),
        Some(StreamEvent::Generated(_))
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.metrics().requests_cancelled < 2 {
        assert!(Instant::now() < deadline, "cancellation not seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    let m = engine.metrics();
    assert_eq!(m.running_requests, 3);
    assert_eq!(m.queue_depth, 0);
    drop(streams);
    drop(waiting);
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.metrics().running_requests > 0 {
        assert!(Instant::now() < deadline, "slots not freed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.metrics().requests_cancelled, 5);
}

#[test]
fn limits_are_checked_before_queueing() {
    let model = model("llama");
    let context = model.spec().context_length();
    let engine = Engine::start(
        model,
        EngineConfig {
            max_sequences: 2,
            max_queue: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let base = Request {
        prompt_ids: vec![1, 2, 3],
        params: GenerationParams {
            max_new_tokens: Some(5),
            ..Default::default()
        },
    };
    let mut past_context = base.clone();
    past_context.params.max_new_tokens = Some(context);
    assert!(matches!(
        engine.submit(past_context),
        Err(EngineError::ContextExceeded { .. })
    ));
    let mut many = base.clone();
    many.params.num_return_sequences = 3;
    many.params.do_sample = Some(true);
    assert!(matches!(
        engine.submit(many),
        Err(EngineError::TooManySequences {
            requested: 3,
            limit: 2
        })
    ));
    let mut bad = base.clone();
    bad.params.temperature = Some(-1.0);
    assert!(matches!(engine.submit(bad), Err(EngineError::Core(_))));
    let mut empty = base.clone();
    empty.prompt_ids.clear();
    assert!(matches!(
        engine.submit(empty),
        Err(EngineError::EmptyPrompt)
    ));
}

#[test]
fn a_full_queue_refuses_and_shutdown_drains() {
    let model = model("llama");
    let engine = Engine::start(
        model,
        EngineConfig {
            max_sequences: 1,
            max_queue: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let req = Request {
        prompt_ids: vec![1, 2, 3],
        params: GenerationParams {
            max_new_tokens: Some(30),
            ignore_eos: true,
            do_sample: Some(false),
            ..Default::default()
        },
    };
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        match engine.submit(req.clone()) {
            Ok(s) => accepted.push(s),
            Err(EngineError::QueueFull { limit: 2 }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 4, "{refused} refused");
    // Shutdown lets every accepted request finish, then refuses new ones.
    let readers: Vec<_> = accepted
        .into_iter()
        .map(|mut s| std::thread::spawn(move || drain(&mut s).0.usage.completion_tokens))
        .collect();
    engine.shutdown();
    for r in readers {
        assert_eq!(r.join().unwrap(), 30);
    }
    assert!(matches!(engine.submit(req), Err(EngineError::ShuttingDown)));
}
