//! The processor chain: llama.cpp-style `apply` + `accept`, transformers'
//! order and semantics.

use kiln_core::TokenId;

/// What a processor may look at besides the logits.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    /// Prompt followed by every token generated so far.
    pub all_ids: &'a [TokenId],
    /// Number of prompt tokens at the start of `all_ids`.
    pub prompt_len: usize,
}

impl History<'_> {
    /// The generated tokens only.
    pub fn generated(&self) -> &[TokenId] {
        self.all_ids.get(self.prompt_len..).unwrap_or(&[])
    }
}

/// One step of the chain. `apply` edits logits in place (`-inf` removes a
/// token); `accept` lets stateful processors see each chosen token.
pub trait LogitsProcessor: Send + std::fmt::Debug {
    /// Edits `logits` for the next token.
    fn apply(&mut self, logits: &mut [f32], history: &History<'_>);
    /// Called with every token appended to the sequence.
    fn accept(&mut self, _token: TokenId) {}
    /// A short name, for benchmarks and debugging.
    fn name(&self) -> &'static str;
}

/// Processors applied in order.
#[derive(Debug, Default)]
pub struct ProcessorChain {
    processors: Vec<Box<dyn LogitsProcessor>>,
}

impl ProcessorChain {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a processor.
    pub fn push(&mut self, p: Box<dyn LogitsProcessor>) {
        self.processors.push(p);
    }

    /// Applies every processor in order.
    pub fn apply(&mut self, logits: &mut [f32], history: &History<'_>) {
        for p in &mut self.processors {
            p.apply(logits, history);
        }
    }

    /// Tells every processor which token was chosen.
    pub fn accept(&mut self, token: TokenId) {
        for p in &mut self.processors {
            p.accept(token);
        }
    }

    /// The processors' names in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.processors.iter().map(|p| p.name()).collect()
    }

    /// Number of processors.
    pub fn len(&self) -> usize {
        self.processors.len()
    }

    /// True when the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.processors.is_empty()
    }
}
