//! # kiln-train
//!
//! Parameter-efficient fine-tuning of kiln models: LoRA and IA³ adapters
//! trained on a frozen base (f32, bf16 or quantized — QLoRA), saved in
//! PEFT's format so Python tools load them and `kiln --adapter` runs them.
//!
//! The pieces, each in its own module: [`params`] (the trainable adapter as
//! candle `Var`s and its PEFT files), [`optim`] (AdamW with torch's
//! semantics, gradient clipping), [`schedule`] (warm-up then cosine or
//! linear decay), [`data`] (alpaca, Dolly, chat, ShareGPT and plain-text
//! records → token ids with loss masks), [`trainer`] (the loop: gradient
//! accumulation, checkpoints and exact resume, metrics log) and [`plot`]
//! (the loss-curve PNG).

pub mod data;
mod error;
mod glyphs;
pub mod optim;
pub mod params;
pub mod plot;
pub mod schedule;
pub mod trainer;

pub use error::{Result, TrainError};
