//! Hand-written CPU kernels for the hot paths candle does slowly: a
//! matrix-vector product straight from 16-bit (bf16) weights, so decoding
//! reads half the bytes of an f32 copy. Every kernel has a scalar reference
//! and is tested against it; SIMD versions are chosen at run time.

mod bf16;

pub use bf16::{bf16_to_f32, gemv_bf16};
