//! The question-answering prompt: numbered sources, an instruction to cite
//! them, and the question — as chat messages for the model's template.

use kiln_core::ChatMessage;
use kiln_store::Hit;

/// Where a hit came from, for citations: `path`, `path (Heading)`, `path p. 3`.
pub fn cite(hit: &Hit) -> String {
    let mut s = hit.source.clone();
    if let Some(p) = hit.page {
        s.push_str(&format!(" p. {p}"));
    }
    if let Some(h) = &hit.heading {
        s.push_str(&format!(" ({h})"));
    }
    s
}

/// Chat messages asking to answer `question` from `hits` with citations.
pub fn messages(question: &str, hits: &[Hit]) -> Vec<ChatMessage> {
    let mut context = String::new();
    for (i, h) in hits.iter().enumerate() {
        context.push_str(&format!("[{}] {}\n{}\n\n", i + 1, cite(h), h.text.trim()));
    }
    vec![
        ChatMessage::new(
            "system",
            "Answer the question using only the numbered sources below. Cite the sources you \
             use like [1]. If the sources do not contain the answer, say that you do not know.",
        ),
        ChatMessage::new("user", format!("Sources:\n\n{context}Question: {question}")),
    ]
}
