//! Conversation memory: buffer, window and summary views of a session,
//! and sessions persisted atomically by name.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use kiln_agent::{ChatSession, Memory, SessionStore};
use kiln_core::{ChatMessage, ChatOptions, CoreError, TextGenerator};

fn session(turns: usize) -> ChatSession {
    let mut s = ChatSession {
        name: "t".into(),
        system: Some("Be brief.".into()),
        ..ChatSession::default()
    };
    for i in 0..turns {
        s.messages
            .push(ChatMessage::new("user", format!("question {i}")));
        s.messages
            .push(ChatMessage::new("assistant", format!("answer {i}")));
    }
    s
}

#[test]
fn buffer_and_window_views() {
    let s = session(4);
    let all = s.context(Memory::Buffer);
    assert_eq!(all.len(), 9);
    assert_eq!(all[0].role, "system");
    let last2 = s.context(Memory::Window(2));
    let texts: Vec<&str> = last2.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Be brief.",
            "question 2",
            "answer 2",
            "question 3",
            "answer 3"
        ]
    );
    assert_eq!(s.context(Memory::Window(10)).len(), 9);
    assert_eq!(s.context(Memory::Window(0)).len(), 1);
    assert_eq!("window:3".parse::<Memory>().unwrap(), Memory::Window(3));
    assert_eq!(
        "summary:500".parse::<Memory>().unwrap(),
        Memory::Summary(500)
    );
    assert!("forever".parse::<Memory>().is_err());
}

struct Summarizer(Mutex<Vec<String>>);

impl TextGenerator for Summarizer {
    fn name(&self) -> &str {
        "summarizer"
    }
    fn chat(
        &self,
        messages: &[ChatMessage],
        _: &ChatOptions,
        _: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError> {
        let mut seen = self.0.lock().unwrap();
        seen.push(messages[0].content.clone());
        Ok(format!("summary #{}", seen.len()))
    }
}

#[test]
fn summary_memory_folds_old_exchanges() {
    let mut s = session(4);
    let model = Summarizer(Mutex::new(Vec::new()));
    // Each message is 2 "tokens" (words); 8 messages = 16 > 9.
    let words = |t: &str| t.split_whitespace().count();
    let folded = s.compact(9, &words, &model).unwrap();
    assert_eq!(folded, 2);
    assert_eq!(s.messages.len(), 4);
    assert_eq!(s.messages[0].content, "question 2");
    assert_eq!(s.summary.as_deref(), Some("summary #2"));
    let prompts = model.0.lock().unwrap();
    assert!(prompts[0].contains("user: question 0\nassistant: answer 0"));
    assert!(
        prompts[1].contains("Current summary:\nsummary #1") && prompts[1].contains("question 1")
    );
    drop(prompts);
    let ctx = s.context(Memory::Summary(9));
    assert_eq!(
        ctx[0].content,
        "Be brief.\n\nSummary of the conversation so far: summary #2"
    );
    // Under budget: nothing happens; the latest exchange is never folded.
    assert_eq!(s.compact(100, &words, &model).unwrap(), 0);
    assert_eq!(s.compact(0, &words, &model).unwrap(), 1);
    assert_eq!(s.messages.len(), 2);
}

#[test]
fn sessions_persist_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = SessionStore::open(&dir.path().join("sessions")).unwrap();
    let fresh = store.load("work").unwrap();
    assert!(fresh.messages.is_empty() && fresh.name == "work");
    let mut s = session(2);
    s.name = "work".into();
    s.summary = Some("earlier".into());
    store.save(&s).unwrap();
    assert_eq!(store.load("work").unwrap(), s);
    store
        .save(&ChatSession {
            name: "alpha".into(),
            ..ChatSession::default()
        })
        .unwrap();
    assert_eq!(store.list().unwrap(), ["alpha", "work"]);
    store.delete("alpha").unwrap();
    store.delete("alpha").unwrap();
    assert_eq!(store.list().unwrap(), ["work"]);
    for bad in ["../etc/passwd", "", "a/b", "x.json"] {
        assert!(store.load(bad).is_err(), "{bad}");
    }
    std::fs::write(dir.path().join("sessions/broken.json"), "{not json").unwrap();
    assert!(store
        .load("broken")
        .unwrap_err()
        .to_string()
        .contains("broken.json"));
}
