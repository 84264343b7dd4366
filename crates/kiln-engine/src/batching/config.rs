//! Limits of an [`super::Engine`].

/// Limits of an [`super::Engine`]. The defaults suit a small model on a
/// desktop CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most sequences decoding at once (a request for `n` sequences counts
    /// `n`); further requests wait in the queue.
    pub max_sequences: usize,
    /// Most requests waiting to start; more are refused with
    /// [`crate::EngineError::QueueFull`].
    pub max_queue: usize,
    /// Prompt tokens prefilled per step over all new requests: longer
    /// prompts are prefilled over several steps, interleaved with the
    /// decode steps of running requests.
    pub prefill_chunk: usize,
    /// Events buffered per request in its channel; a slow reader makes the
    /// engine hold further events back, never block.
    pub event_buffer: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_sequences: 32,
            max_queue: 256,
            prefill_chunk: 512,
            event_buffer: 256,
        }
    }
}
