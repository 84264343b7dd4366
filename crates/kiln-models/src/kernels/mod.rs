//! Hand-written CPU kernels for the hot paths candle does slowly: products
//! straight from 16-bit (bf16) and block-quantized (ggml) weights, so
//! decoding reads as few bytes as the file holds. Every kernel has a scalar
//! reference and is tested against it; SIMD versions are chosen at run time.

pub mod attention;
mod bf16;
pub(crate) mod bidirectional_attention;
pub(crate) mod gelu;
pub(crate) mod gemm;
pub(crate) mod packed_gemm;
pub mod prompt_attention;
pub mod quant;
pub(crate) mod vector;

pub use bf16::{bf16_to_f32, gemv_bf16};
pub use gelu::gelu_erf;
