//! AdamW with PyTorch's semantics (decoupled weight decay applied before
//! the Adam update, bias corrections folded into the step size) and global
//! gradient-norm clipping. State is plain vectors so checkpoints restore it
//! bit for bit.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::params::Param;
use crate::Result;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// torch's defaults except weight decay 0 (as transformers' Trainer).
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Per-parameter moments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdamWState {
    /// Steps taken.
    pub step: u64,
    /// First moments, one vector per parameter.
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

/// The optimiser.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Moments and step count.
    pub state: AdamWState,
}

impl AdamW {
    /// A fresh optimiser.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            state: AdamWState::default(),
        }
    }

    /// One update of every parameter with its gradient (`None`: no gradient
    /// reached it this step, treated as zero as torch skips it — here the
    /// moments still decay, which only matters for unreachable parameters).
    pub fn step(&mut self, params: &[Param], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        let c = self.config;
        if self.state.m.len() != params.len() {
            self.state.m = params
                .iter()
                .map(|p| vec![0.0; p.var.elem_count()])
                .collect();
            self.state.v = self.state.m.clone();
        }
        self.state.step += 1;
        let t = self.state.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        let step_size = lr / bias1;
        let bias2_sqrt = bias2.sqrt();
        for (i, p) in params.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
            let mut w: Vec<f32> = p.var.as_tensor().flatten_all()?.to_vec1()?;
            let (m, v) = (&mut self.state.m[i], &mut self.state.v[i]);
            for j in 0..w.len() {
                let mut wj = f64::from(w[j]);
                wj *= 1.0 - lr * c.weight_decay;
                let gj = f64::from(g[j]);
                let mj = c.beta1 * f64::from(m[j]) + (1.0 - c.beta1) * gj;
                let vj = c.beta2 * f64::from(v[j]) + (1.0 - c.beta2) * gj * gj;
                m[j] = mj as f32;
                v[j] = vj as f32;
                let denom = (f64::from(v[j])).sqrt() / bias2_sqrt + c.eps;
                wj -= step_size * f64::from(m[j]) / denom;
                w[j] = wj as f32;
            }
            let shape = p.var.as_tensor().shape().clone();
            p.var.set(&Tensor::from_vec(w, shape, p.var.device())?)?;
        }
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (torch's
/// `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.iter().flatten() {
        total += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}
