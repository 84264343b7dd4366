//! The training loop: deterministic example order, loss averaged over every
//! trained token of an optimiser step (gradient accumulation), clipping,
//! schedule, periodic evaluation, checkpoints with exact resume, and a
//! JSONL metrics log.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use kiln_models::{causal_lm_loss_sum, Decoder, KvCache, Logits};
use serde::{Deserialize, Serialize};

use crate::data::{mix, Example};
use crate::error::io_error;
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig, AdamWState};
use crate::params::TrainableAdapter;
use crate::schedule::{Decay, Schedule};
use crate::{Result, TrainError};

/// Training settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per optimiser step (batch size × gradient accumulation).
    pub examples_per_step: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Decay after warm-up.
    pub decay: Decay,
    /// AdamW settings.
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
    /// Seed of the example order.
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: u64,
    /// Stop after this many steps (for tests and kill/resume checks).
    pub max_steps: Option<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            examples_per_step: 8,
            lr: 2e-4,
            warmup_steps: 0,
            decay: Decay::Cosine,
            adamw: AdamWConfig::default(),
            max_grad_norm: 1.0,
            seed: 0,
            save_every: 0,
            eval_every: 0,
            max_steps: None,
        }
    }
}

/// What one optimiser step did (one line of `metrics.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    /// 1-based step.
    pub step: u64,
    /// Total steps planned.
    pub total_steps: u64,
    /// Epoch (0-based) the step belongs to.
    pub epoch: usize,
    /// Mean token loss of the step.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens run forward in the step.
    pub tokens: usize,
    /// Tokens per second of the step.
    pub tokens_per_s: f64,
    /// Held-out mean token loss, when evaluated after this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_loss: Option<f64>,
}

/// Where a run is (saved with each checkpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    config: TrainConfig,
    train_examples: usize,
}

/// Files of a run directory.
const METRICS_FILE: &str = "metrics.jsonl";
const CHECKPOINT_DIR: &str = "checkpoint";
const STATE_FILE: &str = "trainer_state.json";
const PARAMS_FILE: &str = "params.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Every step's metrics (including steps before a resume).
    pub steps: Vec<StepMetrics>,
    /// Step the run resumed from (0: fresh).
    pub resumed_from: u64,
}

/// The example indices of every step, epoch by epoch, each epoch in an
/// order shuffled by `seed` and the epoch number.
fn plan(n: usize, config: &TrainConfig) -> Vec<(usize, Vec<usize>)> {
    let per_step = config.examples_per_step.max(1);
    let mut steps = Vec::new();
    for epoch in 0..config.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| mix(config.seed ^ mix(epoch as u64) ^ (i as u64)));
        for chunk in order.chunks(per_step) {
            steps.push((epoch, chunk.to_vec()));
        }
    }
    steps
}

/// Mean token loss of `examples` under `decoder` (no gradients).
pub fn evaluate(decoder: &Decoder, examples: &[Example]) -> Result<f64> {
    let (mut total, mut count) = (0f64, 0usize);
    for e in examples {
        let mut cache: KvCache = decoder.new_cache();
        let logits = decoder.forward(&e.ids, &mut cache, Logits::All)?.detach();
        let (sum, n) = causal_lm_loss_sum(&logits, &e.labels)?;
        total += f64::from(sum.to_scalar::<f32>()?);
        count += n;
    }
    Ok(if count == 0 {
        f64::NAN
    } else {
        total / count as f64
    })
}

/// What [`train`] trains, on what, and where it writes.
#[derive(Debug, Clone, Copy)]
pub struct TrainJob<'a> {
    /// The frozen base model.
    pub base: &'a Decoder,
    /// The adapter being trained (updated in place).
    pub adapter: &'a TrainableAdapter,
    /// Training examples.
    pub train: &'a [Example],
    /// Held-out examples (may be empty).
    pub eval: &'a [Example],
    /// Settings.
    pub config: &'a TrainConfig,
    /// Where `metrics.jsonl` and the checkpoint go.
    pub run_dir: &'a Path,
    /// Continue from the checkpoint in `run_dir`.
    pub resume: bool,
}

/// Trains `job.adapter` on `job.train` over the frozen base, writing
/// `metrics.jsonl` and checkpoints into `job.run_dir`. With `resume`,
/// continues from the checkpoint there; the result equals an uninterrupted
/// run's. `on_step` sees each step's metrics (progress display).
pub fn train(job: &TrainJob<'_>, mut on_step: impl FnMut(&StepMetrics)) -> Result<TrainReport> {
    let TrainJob {
        base,
        adapter,
        train,
        eval,
        config,
        run_dir,
        resume,
    } = *job;
    if train.is_empty() {
        return Err(TrainError::Invalid("no training examples".into()));
    }
    std::fs::create_dir_all(run_dir).map_err(io_error(run_dir))?;
    let steps = plan(train.len(), config);
    let total = config
        .max_steps
        .map_or(steps.len() as u64, |m| m.min(steps.len() as u64));
    let schedule = Schedule {
        lr: config.lr,
        warmup: config.warmup_steps,
        total: steps.len() as u64,
        decay: config.decay,
    };
    let mut optimizer = AdamW::new(config.adamw);
    let mut history: Vec<StepMetrics> = Vec::new();
    let mut start = 0u64;
    let metrics_path = run_dir.join(METRICS_FILE);
    if resume {
        start = load_checkpoint(run_dir, adapter, &mut optimizer, config, train.len())?;
        history = read_metrics(&metrics_path)?
            .into_iter()
            .filter(|m| m.step <= start)
            .collect();
    }
    // Rewrite the log with exactly the steps kept.
    let mut log = std::fs::File::create(&metrics_path).map_err(io_error(&metrics_path))?;
    for m in &history {
        write_metrics(&mut log, &metrics_path, m)?;
    }
    let decoder = adapter.attach(base)?;
    for step in start..total {
        let (epoch, ref indices) = steps[step as usize];
        let began = Instant::now();
        let batch: Vec<&Example> = indices.iter().map(|&i| &train[i]).collect();
        let trained: usize = batch
            .iter()
            .map(|e| e.labels.iter().skip(1).filter(|&&l| l >= 0).count())
            .sum();
        let mut grads: Vec<Option<Tensor>> = vec![None; adapter.params.len()];
        let mut loss_total = 0f64;
        let mut tokens = 0;
        for e in &batch {
            tokens += e.ids.len();
            let (loss_sum, example_grads) = example_gradients(&decoder, adapter, e, trained)?;
            loss_total += loss_sum;
            for (g, new) in grads.iter_mut().zip(example_grads) {
                if let Some(new) = new {
                    *g = Some(match g.take() {
                        Some(old) => (old + new)?,
                        None => new,
                    });
                }
            }
        }
        let grad_norm = clip_grad_norm(&mut grads, config.max_grad_norm)?;
        let lr = schedule.lr_at(step);
        optimizer.step(&adapter.params, &grads, lr)?;
        let seconds = began.elapsed().as_secs_f64();
        let mut metrics = StepMetrics {
            step: step + 1,
            total_steps: total,
            epoch,
            loss: loss_total / trained.max(1) as f64,
            lr,
            grad_norm,
            tokens,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            eval_loss: None,
        };
        let last = step + 1 == total;
        let due = |every: u64| every > 0 && (step + 1) % every == 0;
        if !eval.is_empty() && (last || due(config.eval_every)) {
            metrics.eval_loss = Some(evaluate(&decoder, eval)?);
        }
        write_metrics(&mut log, &metrics_path, &metrics)?;
        on_step(&metrics);
        history.push(metrics);
        if last || due(config.save_every) {
            save_checkpoint(run_dir, adapter, &optimizer, config, step + 1, train.len())?;
        }
    }
    Ok(TrainReport {
        steps: history,
        resumed_from: start,
    })
}

/// One example's summed loss and the gradient of `loss / trained` for each
/// adapter parameter (in `adapter.params` order): by the decoder's
/// hand-written backward where it covers the model, else by autograd.
fn example_gradients(
    decoder: &Decoder,
    adapter: &TrainableAdapter,
    e: &Example,
    trained: usize,
) -> Result<(f64, Vec<Option<Tensor>>)> {
    let scale = 1.0 / trained.max(1) as f64;
    if let Some(hand) = decoder.loss_and_grads(&e.ids, &e.labels, scale)? {
        let mut by_id: HashMap<_, _> = hand.grads.into_iter().collect();
        let grads = adapter
            .params
            .iter()
            .map(|p| by_id.remove(&p.var.as_tensor().id()))
            .collect();
        return Ok((hand.loss_sum, grads));
    }
    let logits = decoder.forward_train(&e.ids)?;
    let (sum, _) = causal_lm_loss_sum(&logits, &e.labels)?;
    let loss = f64::from(sum.to_scalar::<f32>()?);
    let store = (sum * scale)?.backward()?;
    let grads = adapter
        .params
        .iter()
        .map(|p| store.get(p.var.as_tensor()).cloned())
        .collect();
    Ok((loss, grads))
}

fn write_metrics(log: &mut std::fs::File, path: &Path, m: &StepMetrics) -> Result<()> {
    let line = serde_json::to_string(m).map_err(|e| TrainError::Invalid(e.to_string()))?;
    writeln!(log, "{line}").map_err(io_error(path))
}

/// Every line of a metrics log.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::Data {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Writes the checkpoint to a temporary directory and renames it into
/// place, so a kill leaves either the old checkpoint or the new one.
fn save_checkpoint(
    run_dir: &Path,
    adapter: &TrainableAdapter,
    optimizer: &AdamW,
    config: &TrainConfig,
    step: u64,
    train_examples: usize,
) -> Result<()> {
    let tmp = run_dir.join(format!("{CHECKPOINT_DIR}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
    let params: HashMap<String, Tensor> = adapter.tensors()?.into_iter().collect();
    candle_core::safetensors::save(&params, tmp.join(PARAMS_FILE))?;
    let mut moments = HashMap::new();
    for (i, p) in adapter.params.iter().enumerate() {
        if let (Some(m), Some(v)) = (optimizer.state.m.get(i), optimizer.state.v.get(i)) {
            moments.insert(
                format!("m.{}", p.name),
                Tensor::from_slice(m, m.len(), &Device::Cpu)?,
            );
            moments.insert(
                format!("v.{}", p.name),
                Tensor::from_slice(v, v.len(), &Device::Cpu)?,
            );
        }
    }
    moments.insert(
        "step".into(),
        Tensor::from_slice(&[optimizer.state.step as f64], 1, &Device::Cpu)?,
    );
    candle_core::safetensors::save(&moments, tmp.join(OPTIMIZER_FILE))?;
    let state = TrainerState {
        step,
        config: config.clone(),
        train_examples,
    };
    let path = tmp.join(STATE_FILE);
    let text =
        serde_json::to_string_pretty(&state).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(&path, text).map_err(io_error(&path))?;
    let dst = run_dir.join(CHECKPOINT_DIR);
    let old = run_dir.join(format!("{CHECKPOINT_DIR}.old"));
    let _ = std::fs::remove_dir_all(&old);
    if dst.exists() {
        std::fs::rename(&dst, &old).map_err(io_error(&dst))?;
    }
    std::fs::rename(&tmp, &dst).map_err(io_error(&tmp))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Restores parameters and optimiser state; returns the step to continue from.
fn load_checkpoint(
    run_dir: &Path,
    adapter: &TrainableAdapter,
    optimizer: &mut AdamW,
    config: &TrainConfig,
    train_examples: usize,
) -> Result<u64> {
    let mut dir: PathBuf = run_dir.join(CHECKPOINT_DIR);
    if !dir.is_dir() {
        // A kill between the two renames leaves only the old one.
        dir = run_dir.join(format!("{CHECKPOINT_DIR}.old"));
    }
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        TrainError::Invalid(format!("--resume: no checkpoint in {}", run_dir.display()))
    })?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| TrainError::Data {
        path: path.clone(),
        line: e.line(),
        message: e.to_string(),
    })?;
    if state.train_examples != train_examples
        || state.config.examples_per_step != config.examples_per_step
        || state.config.seed != config.seed
        || state.config.epochs != config.epochs
    {
        return Err(TrainError::Invalid(
            "--resume: the data or the batch/seed/epoch settings differ from the checkpoint's"
                .into(),
        ));
    }
    let params = candle_core::safetensors::load(dir.join(PARAMS_FILE), &Device::Cpu)?;
    adapter.load_values(&params)?;
    let moments = candle_core::safetensors::load(dir.join(OPTIMIZER_FILE), &Device::Cpu)?;
    let mut state_m = Vec::new();
    let mut state_v = Vec::new();
    for p in &adapter.params {
        let get = |k: String| -> Result<Vec<f32>> {
            moments
                .get(&k)
                .ok_or_else(|| TrainError::Invalid(format!("the checkpoint has no {k}")))?
                .to_vec1::<f32>()
                .map_err(Into::into)
        };
        state_m.push(get(format!("m.{}", p.name))?);
        state_v.push(get(format!("v.{}", p.name))?);
    }
    let step = moments
        .get("step")
        .map(|t| t.to_vec1::<f64>())
        .transpose()?
        .and_then(|v| v.first().copied())
        .unwrap_or(0.0) as u64;
    optimizer.state = AdamWState {
        step,
        m: state_m,
        v: state_v,
    };
    Ok(state.step)
}
