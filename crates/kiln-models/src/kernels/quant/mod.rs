//! Quantized weights: ggml's block formats, their scalar dequantization, and
//! products computed directly on the blocks. Activations are quantized to
//! 8 bits per 32 values for the integer kernels (like llama.cpp); AVX2/FMA
//! versions are picked at run time, NEON ones on aarch64, all tested against
//! the portable ones.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_packed;
#[cfg(target_arch = "x86_64")]
mod avx2_q8;
#[cfg(target_arch = "x86_64")]
mod avx512_packed;
mod dequant;
mod dot_scalar;
mod matrix;
#[cfg(target_arch = "aarch64")]
mod neon;
mod packed;
mod page_buffer;
mod q8;
mod quantize;
mod transpose;
mod types;

pub use dequant::{dequantize_block, dequantize_row};
pub use matrix::{QMatrix, SharedBytes};
pub use q8::{quantize_q8, ActivationFormat, Q8Block};
pub use quantize::{quantize_row, QUANTIZABLE};
pub use types::GgmlType;

#[cfg(test)]
mod tests;
