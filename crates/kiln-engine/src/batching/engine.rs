//! The engine handle: submit requests, read their event streams, read
//! metrics, shut down gracefully.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use kiln_core::GenerationParams;
use kiln_models::Model;
use tokio::sync::mpsc as events;

use super::metrics::Metrics;
use super::{EngineConfig, MetricsSnapshot};
use crate::{prepare, EngineError, Event, Output, Request, Result};

/// What a request's stream carries.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A token or text of one of the request's sequences, or its end.
    Generated(Event),
    /// The request finished: every sequence's output and the token usage.
    /// Always the last event of a successful request.
    Done(Output),
    /// The request failed; the last event.
    Failed(String),
}

/// The receiving end of one request. Dropping it cancels the request
/// within one engine step.
#[derive(Debug)]
pub struct RequestStream {
    rx: events::Receiver<StreamEvent>,
}

impl RequestStream {
    /// The next event, or `None` after the last one.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
    }

    /// [`Self::next`] for threads outside an async runtime.
    pub fn blocking_next(&mut self) -> Option<StreamEvent> {
        self.rx.blocking_recv()
    }
}

/// A queued request as the scheduler receives it.
pub(crate) struct Job {
    pub(crate) request: Request,
    /// Merged with the model's defaults and validated.
    pub(crate) params: GenerationParams,
    /// The compiled output constraint, cloned into each sequence.
    pub(crate) constraint: Option<kiln_sampling::Constraint>,
    pub(crate) events: events::Sender<StreamEvent>,
    pub(crate) submitted: Instant,
}

/// A model served by a continuous-batching scheduler on its own thread.
pub struct Engine {
    model: Arc<Model>,
    config: EngineConfig,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    metrics: Arc<Metrics>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the scheduler thread for `model`.
    pub fn start(model: Arc<Model>, config: EngineConfig) -> Result<Self> {
        if config.max_sequences == 0 || config.prefill_chunk == 0 || config.event_buffer == 0 {
            return Err(EngineError::InvalidConfig(
                "max_sequences, prefill_chunk and event_buffer must be at least 1".into(),
            ));
        }
        // Fail now, not per request, when the model has no tokenizer.
        model.tokenizer()?;
        let (tx, rx) = mpsc::channel();
        let metrics = Arc::new(Metrics::default());
        let worker = {
            let (model, config, metrics) = (model.clone(), config.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("kiln-scheduler".into())
                .spawn(move || super::scheduler::run(&model, &config, &rx, &metrics))
                .map_err(|e| EngineError::InvalidConfig(format!("cannot start a thread: {e}")))?
        };
        Ok(Self {
            model,
            config,
            jobs: Mutex::new(Some(tx)),
            metrics,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The model it serves.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Its limits.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Queues `request`. Checks everything that can be checked up front
    /// (parameters, prompt length, `max_new_tokens` past the context, the
    /// queue limit) so that a stream, once returned, only fails for
    /// internal reasons.
    pub fn submit(&self, request: Request) -> Result<RequestStream> {
        let params = prepare(&self.model, &request)?;
        let constraint = crate::generate::constraint_for(&self.model, &params)?;
        let context = self.model.spec().context_length();
        if let Some(max) = request.params.max_new_tokens {
            if request.prompt_ids.len() + max > context {
                return Err(EngineError::ContextExceeded {
                    prompt: request.prompt_ids.len(),
                    max_new_tokens: max,
                    context,
                });
            }
        }
        let wanted = params.num_return_sequences;
        if wanted > self.config.max_sequences {
            return Err(EngineError::TooManySequences {
                requested: wanted,
                limit: self.config.max_sequences,
            });
        }
        if self.metrics.queued.load(Ordering::SeqCst) >= self.config.max_queue {
            return Err(EngineError::QueueFull {
                limit: self.config.max_queue,
            });
        }
        let (tx, rx) = events::channel(self.config.event_buffer);
        let job = Job {
            request,
            params,
            constraint,
            events: tx,
            submitted: Instant::now(),
        };
        let guard = self.jobs.lock().map_err(|_| EngineError::ShuttingDown)?;
        let sender = guard.as_ref().ok_or(EngineError::ShuttingDown)?;
        self.metrics.submitted();
        if sender.send(job).is_err() {
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::ShuttingDown);
        }
        Ok(RequestStream { rx })
    }

    /// The current metrics.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Stops accepting requests, lets queued and running ones finish, and
    /// waits for the scheduler thread to end.
    pub fn shutdown(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            // A panicking scheduler has already failed its requests' streams.
            let _ = worker.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
