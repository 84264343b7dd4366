//! [`QMatrix`]: a weight matrix kept in its file's block format, multiplied
//! directly from the blocks (no f32 copy of the weights).

use std::sync::Arc;

use rayon::prelude::*;

use super::dequant::dequantize_row;
use super::q8::{ActivationFormat, Q8Block};
use super::{dot_scalar, GgmlType};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16;
/// Weights × tokens below which a product runs on the calling thread.
const SERIAL_BELOW: usize = 1 << 12;
/// Tokens multiplied against one row while it is hot in cache.
const TOKENS_PER_TILE: usize = 32;

/// Bytes shared between matrices: a memory-mapped file or an owned buffer.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A row-major `[rows, cols]` matrix stored as ggml blocks.
#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: SharedBytes,
    offset: usize,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} [{}, {}])", self.ty, self.rows, self.cols)
    }
}

/// One row against four activation rows at once.
type Dot4 = fn(&[u8], [&[Q8Block]; 4]) -> [f32; 4];

/// How one row is multiplied with one activation row.
#[derive(Clone, Copy)]
enum Kernel {
    /// Integer dot product against 8-bit activations (with a four-token
    /// version for batches, where there is one).
    Int(fn(&[u8], &[Q8Block]) -> f32, Option<Dot4>),
    /// f16 weights against f32 activations.
    F16(fn(&[u8], &[f32]) -> f32),
    /// Dequantize the row, then an f32 dot product.
    Float,
}

fn kernel(ty: GgmlType) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if super::avx2::available() {
        use super::avx2;
        match ty {
            GgmlType::Q8_0 => return Kernel::Int(avx2::dot_q8_0, Some(avx2::dot4_q8_0)),
            GgmlType::Q4_0 => return Kernel::Int(avx2::dot_q4_0, Some(avx2::dot4_q4_0)),
            GgmlType::Q4_1 => return Kernel::Int(avx2::dot_q4_1, Some(avx2::dot4_q4_1)),
            GgmlType::Q5_0 => return Kernel::Int(avx2::dot_q5_0, None),
            GgmlType::Q5_1 => return Kernel::Int(avx2::dot_q5_1, None),
            GgmlType::Q4_K => return Kernel::Int(avx2::dot_q4_k, None),
            GgmlType::Q6_K => return Kernel::Int(avx2::dot_q6_k, None),
            GgmlType::F16 => return Kernel::F16(avx2::dot_f16),
            _ => {}
        }
    }
    scalar_kernel(ty)
}

/// The portable kernel of `ty` (also the reference in tests).
fn scalar_kernel(ty: GgmlType) -> Kernel {
    match ty {
        GgmlType::Q8_0 => Kernel::Int(dot_scalar::dot_q8_0, None),
        GgmlType::Q4_0 => Kernel::Int(dot_scalar::dot_q4_0, None),
        GgmlType::Q4_1 => Kernel::Int(dot_scalar::dot_q4_1, None),
        GgmlType::Q5_0 => Kernel::Int(dot_scalar::dot_q5_0, None),
        GgmlType::Q5_1 => Kernel::Int(dot_scalar::dot_q5_1, None),
        GgmlType::Q4_K => Kernel::Int(dot_scalar::dot_q4_k, None),
        GgmlType::Q6_K => Kernel::Int(dot_scalar::dot_q6_k, None),
        _ => Kernel::Float,
    }
}

impl QMatrix {
    /// Whether this CPU has a multi-token block kernel for the type (then
    /// block products stay competitive with dequantize-and-GEMM for larger
    /// batches).
    pub fn has_batch_kernel(&self) -> bool {
        matches!(kernel(self.ty), Kernel::Int(_, Some(_)))
    }

    /// A matrix over `bytes[offset..]`; `None` unless `cols` is a whole
    /// number of blocks and the bytes hold all rows.
    pub fn new(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: SharedBytes,
        offset: usize,
    ) -> Option<Self> {
        let need = ty.row_bytes(cols)?.checked_mul(rows)?;
        let end = offset.checked_add(need)?;
        ((*bytes).as_ref().len() >= end).then_some(Self {
            ty,
            rows,
            cols,
            bytes,
            offset,
        })
    }

    /// A matrix owning `data`.
    pub fn from_vec(ty: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Option<Self> {
        Self::new(ty, rows, cols, Arc::new(data), 0)
    }

    /// The block type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output width.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The raw blocks.
    pub fn data(&self) -> &[u8] {
        let all: &[u8] = (*self.bytes).as_ref();
        let len = self.rows * self.row_bytes();
        &all[self.offset..self.offset + len]
    }

    fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols).unwrap_or(0)
    }

    /// Row `r` as f32 (`None` if out of range).
    pub fn row(&self, r: usize) -> Option<Vec<f32>> {
        if r >= self.rows {
            return None;
        }
        let rb = self.row_bytes();
        let mut out = vec![0f32; self.cols];
        dequantize_row(self.ty, &self.data()[r * rb..(r + 1) * rb], &mut out);
        Some(out)
    }

    /// Rows `rows` as f32, row-major (`None` if out of range).
    pub fn dequantize_rows(&self, rows: std::ops::Range<usize>) -> Option<Vec<f32>> {
        if rows.end > self.rows || rows.start > rows.end {
            return None;
        }
        let rb = self.row_bytes();
        let mut out = vec![0f32; rows.len() * self.cols];
        out.par_chunks_mut(self.cols)
            .zip(self.data()[rows.start * rb..rows.end * rb].par_chunks(rb))
            .for_each(|(dst, src)| dequantize_row(self.ty, src, dst));
        Some(out)
    }

    /// The whole matrix as f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        let rb = self.row_bytes();
        out.par_chunks_mut(self.cols)
            .zip(self.data().par_chunks(rb))
            .for_each(|(dst, src)| dequantize_row(self.ty, src, dst));
        out
    }

    /// `y = x Wᵀ` for `x` holding `tokens` rows of `cols`; returns
    /// `[tokens, rows]` row-major. `None` when `x` has the wrong length.
    pub fn matmul(&self, x: &[f32], tokens: usize) -> Option<Vec<f32>> {
        self.matmul_with(kernel(self.ty), x, tokens)
    }

    /// [`QMatrix::matmul`] with the portable kernels only.
    pub fn matmul_reference(&self, x: &[f32], tokens: usize) -> Option<Vec<f32>> {
        self.matmul_with(scalar_kernel(self.ty), x, tokens)
    }

    fn matmul_with(&self, kernel: Kernel, x: &[f32], tokens: usize) -> Option<Vec<f32>> {
        if x.len() != tokens * self.cols || tokens == 0 {
            return None;
        }
        let cols = self.cols;
        let format = ActivationFormat::for_weights(self.ty);
        let quantized: Vec<Vec<Q8Block>> = match kernel {
            Kernel::Int(..) => x.par_chunks(cols).map(|r| format.quantize(r)).collect(),
            _ => Vec::new(),
        };
        // Other kernels see the activations rounded as llama.cpp rounds them.
        let rounded: Vec<f32>;
        let x = match kernel {
            Kernel::Int(..) => x,
            _ => {
                rounded = x
                    .par_chunks(cols)
                    .flat_map_iter(|r| format.round_trip(r))
                    .collect();
                &rounded
            }
        };
        let rb = self.row_bytes();
        let data = self.data();
        // Each task computes `[its rows, tokens]`, token-major within a row.
        let mut by_row = vec![0f32; self.rows * tokens];
        // Few large contiguous row ranges per thread: each core then streams
        // one long run of weights, which its prefetcher follows.
        let per_task = ROWS_PER_TASK.max(self.rows.div_ceil(2 * rayon::current_num_threads()));
        let work = |(task, dst): (usize, &mut [f32])| {
            let first = task * per_task;
            let n_rows = dst.len() / tokens;
            let mut scratch = Vec::new();
            for tile in (0..tokens).step_by(TOKENS_PER_TILE) {
                let tile_end = (tile + TOKENS_PER_TILE).min(tokens);
                for i in 0..n_rows {
                    let row = &data[(first + i) * rb..(first + i + 1) * rb];
                    let out = &mut dst[i * tokens..(i + 1) * tokens];
                    match kernel {
                        Kernel::Int(dot, dot4) => {
                            let mut t = tile;
                            if let Some(dot4) = dot4 {
                                while t + 4 <= tile_end {
                                    let xs = [
                                        quantized[t].as_slice(),
                                        &quantized[t + 1],
                                        &quantized[t + 2],
                                        &quantized[t + 3],
                                    ];
                                    out[t..t + 4].copy_from_slice(&dot4(row, xs));
                                    t += 4;
                                }
                            }
                            for t in t..tile_end {
                                out[t] = dot(row, &quantized[t]);
                            }
                        }
                        Kernel::F16(dot) => {
                            for t in tile..tile_end {
                                out[t] = dot(row, &x[t * cols..(t + 1) * cols]);
                            }
                        }
                        Kernel::Float => {
                            scratch.resize(cols, 0f32);
                            dequantize_row(self.ty, row, &mut scratch);
                            for t in tile..tile_end {
                                out[t] = scratch
                                    .iter()
                                    .zip(&x[t * cols..(t + 1) * cols])
                                    .map(|(a, b)| a * b)
                                    .sum();
                            }
                        }
                    }
                }
            }
        };
        // Small products are not worth waking the other threads for.
        if self.rows * self.cols * tokens < SERIAL_BELOW {
            by_row
                .chunks_mut(per_task * tokens)
                .enumerate()
                .for_each(work);
        } else {
            by_row
                .par_chunks_mut(per_task * tokens)
                .enumerate()
                .for_each(work);
        }
        if tokens == 1 {
            return Some(by_row);
        }
        let mut out = vec![0f32; self.rows * tokens];
        for (r, row) in by_row.chunks_exact(tokens).enumerate() {
            for (t, v) in row.iter().enumerate() {
                out[t * self.rows + r] = *v;
            }
        }
        Some(out)
    }
}
