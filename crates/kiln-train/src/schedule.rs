//! Learning-rate schedules: linear warm-up, then constant, linear or cosine
//! decay to zero (transformers' `get_*_schedule_with_warmup`).

use serde::{Deserialize, Serialize};

/// How the learning rate decays after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Stays at the peak.
    Constant,
    /// Falls linearly to zero at the last step.
    Linear,
    /// Half a cosine to zero at the last step.
    Cosine,
}

impl std::str::FromStr for Decay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Decay::Constant),
            "linear" => Ok(Decay::Linear),
            "cosine" => Ok(Decay::Cosine),
            other => Err(format!(
                "unknown schedule {other:?} (constant, linear, cosine)"
            )),
        }
    }
}

/// A schedule over `total` optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: u64,
    /// Total steps.
    pub total: u64,
    /// Decay after warm-up.
    pub decay: Decay,
}

impl Schedule {
    /// The learning rate for optimiser step `step` (0-based), as
    /// transformers' LambdaLR schedules give it.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.lr * step as f64 / self.warmup.max(1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = (step - self.warmup) as f64 / span;
        self.lr
            * match self.decay {
                Decay::Constant => 1.0,
                Decay::Linear => (1.0 - progress).max(0.0),
                Decay::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay_as_transformers() {
        let s = Schedule {
            lr: 1.0,
            warmup: 2,
            total: 10,
            decay: Decay::Cosine,
        };
        assert_eq!(s.lr_at(0), 0.0);
        assert_eq!(s.lr_at(1), 0.5);
        assert_eq!(s.lr_at(2), 1.0);
        assert!((s.lr_at(6) - 0.5).abs() < 1e-12);
        assert!(s.lr_at(10).abs() < 1e-12);
        let l = Schedule {
            decay: Decay::Linear,
            ..s
        };
        assert!((l.lr_at(6) - 0.5).abs() < 1e-12);
    }
}
