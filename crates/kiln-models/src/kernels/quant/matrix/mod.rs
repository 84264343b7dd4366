//! [`QMatrix`]: a weight matrix kept in its file's block format, multiplied
//! directly from the blocks (no f32 copy of the weights).

use std::sync::Arc;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::avx2_packed::MAX_TOKENS;
#[cfg(target_arch = "x86_64")]
use super::avx512_packed::{PAIR_ROWS, WIDE_TOKENS};
use super::dequant::dequantize_row;
use super::packed::{PackedRows, GROUP_ROWS, PACK_SLAB_BYTES};
use super::page_buffer::PageBuffer;
use super::q8::{to_f16, ActivationFormat, Q8Block};
use super::{dot_scalar, GgmlType};
#[cfg(not(target_arch = "x86_64"))]
const MAX_TOKENS: usize = 4;
#[cfg(not(target_arch = "x86_64"))]
const WIDE_TOKENS: usize = 8;
#[cfg(not(target_arch = "x86_64"))]
const PAIR_ROWS: usize = 2 * GROUP_ROWS;

mod one_token;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16;
/// Weights × tokens below which a product runs on the calling thread.
const SERIAL_BELOW: usize = 1 << 12;
/// Activation values below which they are quantized on the calling thread
/// (a batch of decode steps: microseconds of work, less than waking the
/// other threads costs).
const QUANTIZE_SERIAL_BELOW: usize = 1 << 15;
/// Tokens multiplied against one row while it is hot in cache.
const TOKENS_PER_TILE: usize = 32;
/// From this many tokens on, packed products are split between threads by
/// tokens and written token-major straight away (no transposition of a
/// `[rows, tokens]` result, which cost 7% of a 512-token prompt).
const TOKEN_SPLIT_MIN: usize = 16;
/// Matrices from this size on that are not packed get a copy of their
/// bytes on huge pages (one 2 MiB page; smaller ones gain nothing).
const HUGE_PAGE_MIN_BYTES: usize = 2 << 20;

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
    /// The rows interleaved eight at a time for the packed kernels (see
    /// [`QMatrix::with_packed_rows`]).
    packed: Option<Arc<PackedRows>>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let packed = if self.packed.is_some() {
            ", packed"
        } else {
            ""
        };
        write!(
            f,
            "QMatrix({} [{}, {}]{packed})",
            self.ty, self.rows, self.cols
        )
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
    /// f16 weights against activations rounded to f16, one row at a time:
    /// rows are contiguous, so a decode step reads each matrix as one
    /// sequential stream (a four-row kernel that saved activation loads but
    /// read four short streams at once was 15–25% slower: the weights come
    /// from DRAM). x86 only so far (F16C).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    F16(fn(&[u8], &[half::f16]) -> f32),
    /// Dequantize the row, then an f32 dot product.
    Float,
}

thread_local! {
    /// Scratch of [`QMatrix::with_rows_transposed`].
    static TILE_SCRATCH: std::cell::RefCell<Option<PageBuffer>> =
        const { std::cell::RefCell::new(None) };
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
            GgmlType::F16 => return Kernel::F16(avx2::f16_kernel()),
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use super::neon;
        match ty {
            GgmlType::Q8_0 => return Kernel::Int(neon::dot_q8_0, None),
            GgmlType::Q4_0 => return Kernel::Int(neon::dot_q4_0, None),
            GgmlType::Q4_1 => return Kernel::Int(neon::dot_q4_1, None),
            GgmlType::Q5_0 => return Kernel::Int(neon::dot_q5_0, None),
            GgmlType::Q5_1 => return Kernel::Int(neon::dot_q5_1, None),
            GgmlType::Q4_K => return Kernel::Int(neon::dot_q4_k, None),
            GgmlType::Q6_K => return Kernel::Int(neon::dot_q6_k, None),
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
    /// Whether this matrix has a multi-token block kernel here (packed rows,
    /// or a four-token kernel for its type): then block products stay
    /// competitive with dequantize-and-GEMM for larger batches.
    pub fn has_batch_kernel(&self) -> bool {
        self.packed.is_some() || matches!(kernel(self.ty), Kernel::Int(_, Some(_)))
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
            packed: None,
        })
    }

    /// This matrix with its rows also interleaved eight at a time
    /// ([`PackedRows`]) when this CPU has the packed kernels for its type
    /// (AVX2; Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K): products with up to a few
    /// tokens then read each activation block once per eight rows. Costs a
    /// copy of the packed rows. Once packed, every read of the packed rows
    /// (products, [`QMatrix::row`], dequantization) uses the copy, so a
    /// memory-mapped source may drop the file's pages
    /// ([`QMatrix::packed_byte_range`]). On Linux a matrix of 2 MiB or more
    /// that is not packed (other types, other CPUs) moves to a plain copy on
    /// huge pages instead, its source likewise released: both copies sit on
    /// transparent huge pages, which decode streams faster.
    pub fn with_packed_rows(self) -> Self {
        self.with_packed_rows_releasing(&mut |_| {})
    }

    /// [`QMatrix::with_packed_rows`], calling `release` with each range of
    /// the shared bytes (offsets within them, as
    /// [`QMatrix::packed_byte_range`]) as soon as it is packed, so that a
    /// memory-mapped source can drop its pages while the rest is packed.
    pub fn with_packed_rows_releasing(
        mut self,
        release: &mut dyn FnMut(std::ops::Range<usize>),
    ) -> Self {
        if self.packed.is_none() && packed_kernels_available() {
            let offset = self.offset;
            let mut done = |r: std::ops::Range<usize>| release(offset + r.start..offset + r.end);
            self.packed =
                PackedRows::pack_releasing(self.ty, self.data(), self.rows, self.cols, &mut done)
                    .map(Arc::new);
        }
        if self.packed.is_none() && cfg!(target_os = "linux") {
            self.move_to_huge_pages(release);
        }
        self
    }

    /// Moves the bytes of a matrix of at least [`HUGE_PAGE_MIN_BYTES`] into
    /// a [`PageBuffer`] of its own (kept as is when that fails), releasing
    /// the source slab by slab.
    fn move_to_huge_pages(&mut self, release: &mut dyn FnMut(std::ops::Range<usize>)) {
        if self.data().len() < HUGE_PAGE_MIN_BYTES {
            return;
        }
        let offset = self.offset;
        let mut done = |r: std::ops::Range<usize>| release(offset + r.start..offset + r.end);
        if let Some(copy) = PageBuffer::copy_releasing(self.data(), PACK_SLAB_BYTES, &mut done) {
            self.bytes = Arc::new(copy);
            self.offset = 0;
        }
    }

    /// Whether [`QMatrix::with_packed_rows`] packed this matrix.
    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// The byte range, within the shared bytes this matrix was made from,
    /// that is no longer read because a packed copy serves it (`None` when
    /// not packed).
    pub fn packed_byte_range(&self) -> Option<std::ops::Range<usize>> {
        let packed = self.packed.as_ref()?;
        let len = packed.groups() * GROUP_ROWS * self.row_bytes();
        Some(self.offset..self.offset + len)
    }

    /// Where row `r`'s blocks lie within the shared bytes the matrix was
    /// made from (`None` if out of range); with [`QMatrix::byte_range`],
    /// what a memory-mapped source needs to release the row's pages.
    pub fn row_byte_range(&self, r: usize) -> Option<std::ops::Range<usize>> {
        (r < self.rows).then(|| {
            let start = self.offset + r * self.row_bytes();
            start..start + self.row_bytes()
        })
    }

    /// Where all the matrix's blocks lie within its shared bytes.
    pub fn byte_range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.rows * self.row_bytes()
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
        &all[self.byte_range()]
    }

    fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols).unwrap_or(0)
    }

    /// Row `r` as f32 (`None` if out of range).
    pub fn row(&self, r: usize) -> Option<Vec<f32>> {
        if r >= self.rows {
            return None;
        }
        let mut out = vec![0f32; self.cols];
        self.dequantize_row_into(r, &mut Vec::new(), &mut out);
        Some(out)
    }

    /// Rows `rows` as f32, row-major (`None` if out of range).
    pub fn dequantize_rows(&self, rows: std::ops::Range<usize>) -> Option<Vec<f32>> {
        if rows.end > self.rows || rows.start > rows.end {
            return None;
        }
        let mut out = vec![0f32; rows.len() * self.cols];
        out.par_chunks_mut(self.cols)
            .zip(rows)
            .for_each_init(Vec::new, |buf, (dst, r)| {
                self.dequantize_row_into(r, buf, dst)
            });
        Some(out)
    }

    /// Rows `rows` as f32, transposed: `[cols, rows.len()]`, element
    /// `(c, r)` = row `rows.start + r`, column `c` (`None` if out of
    /// range). The prompt GEMM's weight tiles in the layout its product
    /// reads without packing; F16 converts and transposes in one pass.
    pub fn dequantize_rows_transposed(&self, rows: std::ops::Range<usize>) -> Option<Vec<f32>> {
        let mut out = vec![0f32; rows.len() * self.cols];
        self.fill_rows_transposed(rows, &mut out)?;
        Some(out)
    }

    /// [`QMatrix::dequantize_rows_transposed`] handed to `f` from a
    /// per-thread scratch buffer on transparent huge pages, reused from
    /// call to call: a product that reads the tile down its columns
    /// touches a new 4 KiB page at every step, and a fresh heap buffer
    /// is zeroed (or faulted in) again on every call. Falls back to a heap
    /// buffer when the scratch is in use (a nested call on this thread).
    pub fn with_rows_transposed<R>(
        &self,
        rows: std::ops::Range<usize>,
        f: impl FnOnce(&[f32]) -> R,
    ) -> Option<R> {
        let len = rows.len().checked_mul(self.cols)?;
        let mut f = Some(f);
        let scratch = TILE_SCRATCH.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return None;
            };
            if slot.as_ref().is_none_or(|b| b.len() < 4 * len) {
                *slot = PageBuffer::zeroed(4 * len);
            }
            let floats = slot
                .as_mut()
                .and_then(|b| bytemuck::try_cast_slice_mut::<u8, f32>(&mut b[..4 * len]).ok())?;
            self.fill_rows_transposed(rows.clone(), floats)?;
            Some(f.take().map(|f| f(floats)))
        });
        match (scratch, f) {
            (Some(done), _) => done,
            (None, Some(f)) => {
                let tile = self.dequantize_rows_transposed(rows)?;
                Some(f(&tile))
            }
            (None, None) => None,
        }
    }

    /// Writes rows `rows` transposed into `out` (`[cols, rows.len()]`).
    fn fill_rows_transposed(&self, rows: std::ops::Range<usize>, out: &mut [f32]) -> Option<()> {
        if rows.end > self.rows || rows.start > rows.end || out.len() != rows.len() * self.cols {
            return None;
        }
        let n = rows.len();
        if self.ty == GgmlType::F16 && self.packed.is_none() {
            super::transpose::f16_rows_transposed(self.data(), self.cols, rows.start, n, out)
        } else {
            let row_major = self.dequantize_rows(rows)?;
            super::transpose::transpose_into(&row_major, n, self.cols, out);
            Some(())
        }
    }

    /// The whole matrix as f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        self.dequantize_rows(0..self.rows).unwrap_or_default()
    }

    /// Row `r` (in range) dequantized into `out`. Packed rows are read from
    /// the packed copy (unpacked through `buf`), so the file's bytes of a
    /// packed matrix are never touched again (see
    /// [`QMatrix::with_packed_rows`]).
    fn dequantize_row_into(&self, r: usize, buf: &mut Vec<u8>, out: &mut [f32]) {
        let rb = self.row_bytes();
        if let Some(packed) = &self.packed {
            buf.resize(rb, 0);
            if packed.unpack_row(r, buf).is_some() {
                dequantize_row(self.ty, buf, out);
                return;
            }
        }
        dequantize_row(self.ty, &self.data()[r * rb..(r + 1) * rb], out);
    }

    /// `y = x Wᵀ` for `x` holding `tokens` rows of `cols`; returns
    /// `[tokens, rows]` row-major. `None` when `x` has the wrong length.
    pub fn matmul(&self, x: &[f32], tokens: usize) -> Option<Vec<f32>> {
        self.matmul_with(kernel(self.ty), self.packed.as_deref(), x, tokens)
    }

    /// [`QMatrix::matmul`] with the portable kernels only, on the file's
    /// row layout (never the packed rows).
    pub fn matmul_reference(&self, x: &[f32], tokens: usize) -> Option<Vec<f32>> {
        self.matmul_with(scalar_kernel(self.ty), None, x, tokens)
    }

    /// One activation row `x` against each of `matrices` (all `cols ==
    /// x.len()`): `[x · Wᵢᵀ]`, the same values as [`QMatrix::matmul`] with
    /// one token, computed in one parallel region (a decode step's q/k/v or
    /// gate/up projections). `None` when a width does not match.
    pub fn matvec_many(matrices: &[&QMatrix], x: &[f32]) -> Option<Vec<Vec<f32>>> {
        let parts: Vec<one_token::Part<'_>> = matrices
            .iter()
            .map(|m| one_token::Part {
                matrix: m,
                kernel: kernel(m.ty),
                packed: m.packed.as_deref(),
            })
            .collect();
        one_token::products(&parts, x)
    }

    fn matmul_with(
        &self,
        kernel: Kernel,
        packed: Option<&PackedRows>,
        x: &[f32],
        tokens: usize,
    ) -> Option<Vec<f32>> {
        if x.len() != tokens * self.cols || tokens == 0 {
            return None;
        }
        if tokens == 1 {
            let part = one_token::Part {
                matrix: self,
                kernel,
                packed,
            };
            return one_token::products(&[part], x)?.pop();
        }
        let cols = self.cols;
        let format = ActivationFormat::for_weights(self.ty);
        let quantized: Vec<Vec<Q8Block>> = match kernel {
            Kernel::Int(..) if x.len() < QUANTIZE_SERIAL_BELOW => {
                x.chunks(cols).map(|r| format.quantize(r)).collect()
            }
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
        let by_row = match (packed, kernel) {
            (Some(packed), Kernel::Int(dot, _)) if tokens >= TOKEN_SPLIT_MIN => {
                return Some(self.products_packed_by_token(packed, dot, &quantized));
            }
            (Some(packed), Kernel::Int(dot, _)) => {
                self.products_packed(packed, dot, &quantized, tokens)
            }
            _ => self.products_by_row(kernel, x, &quantized, tokens),
        };
        let mut out = vec![0f32; self.rows * tokens];
        for (r, row) in by_row.chunks_exact(tokens).enumerate() {
            for (t, v) in row.iter().enumerate() {
                out[t * self.rows + r] = *v;
            }
        }
        Some(out)
    }

    /// Runs `work` on each `chunk`-long piece of `out` with its index: in
    /// parallel, except for products too small to be worth waking the other
    /// threads for.
    fn run_tasks<F>(&self, out: &mut [f32], chunk: usize, tokens: usize, work: F)
    where
        F: Fn((usize, &mut [f32])) + Sync + Send,
    {
        if self.rows * self.cols * tokens < SERIAL_BELOW {
            out.chunks_mut(chunk).enumerate().for_each(work);
        } else {
            out.par_chunks_mut(chunk).enumerate().for_each(work);
        }
    }

    /// `[rows, tokens]` products (token-major within a row) from the packed
    /// groups; rows past the last whole group use the single-row `dot`.
    fn products_packed(
        &self,
        packed: &PackedRows,
        dot: fn(&[u8], &[Q8Block]) -> f32,
        quantized: &[Vec<Q8Block>],
        tokens: usize,
    ) -> Vec<f32> {
        let mut by_row = vec![0f32; self.rows * tokens];
        let group_len = GROUP_ROWS * tokens;
        let (grouped, tail) = by_row.split_at_mut(packed.groups() * group_len);
        let per_task = 2usize.max(packed.groups().div_ceil(2 * rayon::current_num_threads()));
        let work = |(task, dst): (usize, &mut [f32])| {
            let mut products = [0f32; GROUP_ROWS * MAX_TOKENS];
            // Token tiles outermost: a tile's activations stay in cache
            // while the task's groups stream past them.
            for tile in (0..tokens).step_by(TOKENS_PER_TILE) {
                let tile_end = (tile + TOKENS_PER_TILE).min(tokens);
                for (i, dst) in dst.chunks_exact_mut(group_len).enumerate() {
                    let group = packed.group(task * per_task + i);
                    for first in (tile..tile_end).step_by(MAX_TOKENS) {
                        let end = (first + MAX_TOKENS).min(tile_end);
                        let mut xs: [&[Q8Block]; MAX_TOKENS] = [&[]; MAX_TOKENS];
                        for (slot, q) in xs.iter_mut().zip(&quantized[first..end]) {
                            *slot = q;
                        }
                        dot_group(packed.ty(), group, &xs[..end - first], &mut products);
                        for (t, token_products) in products
                            .chunks_exact(GROUP_ROWS)
                            .take(end - first)
                            .enumerate()
                        {
                            for (r, v) in token_products.iter().enumerate() {
                                dst[r * tokens + first + t] = *v;
                            }
                        }
                    }
                }
            }
        };
        self.run_tasks(grouped, per_task * group_len, tokens, work);
        let rb = self.row_bytes();
        let first_tail = packed.groups() * GROUP_ROWS;
        for (i, dst) in tail.chunks_exact_mut(tokens).enumerate() {
            let row = &self.data()[(first_tail + i) * rb..(first_tail + i + 1) * rb];
            for (v, x) in dst.iter_mut().zip(quantized) {
                *v = dot(row, x);
            }
        }
        by_row
    }

    /// `[tokens, rows]` products from the packed groups, each task taking a
    /// run of tokens against every group (so each writes whole output rows);
    /// rows past the last whole group use the single-row `dot`. Per token the
    /// same kernels as [`QMatrix::products_packed`], so the same results.
    fn products_packed_by_token(
        &self,
        packed: &PackedRows,
        dot: fn(&[u8], &[Q8Block]) -> f32,
        quantized: &[Vec<Q8Block>],
    ) -> Vec<f32> {
        let (rows, tokens) = (self.rows, quantized.len());
        let mut out = vec![0f32; tokens * rows];
        // A multiple of MAX_TOKENS per task, two tasks per thread.
        let per_task = MAX_TOKENS
            * tokens
                .div_ceil(MAX_TOKENS * 2 * rayon::current_num_threads())
                .max(1);
        let rb = self.row_bytes();
        let first_tail = packed.groups() * GROUP_ROWS;
        let wide = wide_kernels_chosen(packed.ty());
        let work = |(task, dst): (usize, &mut [f32])| {
            let mine = &quantized[task * per_task..task * per_task + dst.len() / rows];
            let mut products = [0f32; GROUP_ROWS * MAX_TOKENS];
            let mut pair_products = [0f32; PAIR_ROWS * WIDE_TOKENS];
            for (tile_index, tile) in mine.chunks(TOKENS_PER_TILE).enumerate() {
                let tile_out = &mut dst[tile_index * TOKENS_PER_TILE * rows..];
                let mut g = 0;
                while g < packed.groups() {
                    let first_row = g * GROUP_ROWS;
                    if wide && g + 1 < packed.groups() {
                        // Two groups (16 rows) against up to eight tokens.
                        let (a, b) = (packed.group(g), packed.group(g + 1));
                        products_in_chunks::<WIDE_TOKENS>(
                            tile,
                            PAIR_ROWS,
                            &mut pair_products,
                            (tile_out, rows, first_row),
                            |xs, out| dot_group_pair(packed.ty(), a, b, xs, out),
                        );
                        g += 2;
                    } else {
                        let group = packed.group(g);
                        products_in_chunks::<MAX_TOKENS>(
                            tile,
                            GROUP_ROWS,
                            &mut products,
                            (tile_out, rows, first_row),
                            |xs, out| dot_group(packed.ty(), group, xs, out),
                        );
                        g += 1;
                    }
                }
                for r in first_tail..rows {
                    let row = &self.data()[r * rb..(r + 1) * rb];
                    for (t, x) in tile.iter().enumerate() {
                        tile_out[t * rows + r] = dot(row, x);
                    }
                }
            }
        };
        self.run_tasks(&mut out, per_task * rows, tokens, work);
        out
    }

    /// `[rows, tokens]` products (token-major within a row), one weight row
    /// at a time.
    fn products_by_row(
        &self,
        kernel: Kernel,
        x: &[f32],
        quantized: &[Vec<Q8Block>],
        tokens: usize,
    ) -> Vec<f32> {
        let cols = self.cols;
        let rb = self.row_bytes();
        let data = self.data();
        // The f16 kernel reads the (already f16-rounded) activations as halves.
        let halves = match kernel {
            Kernel::F16(_) => to_f16(x),
            _ => Vec::new(),
        };
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
                                out[t] = dot(row, &halves[t * cols..(t + 1) * cols]);
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
        self.run_tasks(&mut by_row, per_task * tokens, tokens, work);
        by_row
    }
}

/// Whether this CPU runs the packed kernels.
fn packed_kernels_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The packed kernel of `ty` on one group (x86-64 with AVX2 only: matrices
/// are packed only where [`packed_kernels_available`]).
fn dot_group(ty: GgmlType, group: &[u8], xs: &[&[Q8Block]], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // `None` only for a type without a packed layout or a bad token
        // count, neither of which a packed matrix's products can produce.
        let done = super::avx2_packed::dot_group(ty, group, xs, out);
        debug_assert!(done.is_some(), "packed kernel refused {ty}");
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ty, group, xs, out);
    }
}

/// Runs `kernel` over `tile` in chunks of up to `N` tokens, each call
/// writing `width` products per token into `scratch`, and copies them into
/// `out = (tile_out, rows, first_row)`: token `t`'s products land at
/// `tile_out[t · rows + first_row..][..width]`.
fn products_in_chunks<const N: usize>(
    tile: &[Vec<Q8Block>],
    width: usize,
    scratch: &mut [f32],
    out: (&mut [f32], usize, usize),
    mut kernel: impl FnMut(&[&[Q8Block]], &mut [f32]),
) {
    let (tile_out, rows, first_row) = out;
    for (chunk_index, chunk) in tile.chunks(N).enumerate() {
        let mut xs: [&[Q8Block]; N] = [&[]; N];
        for (slot, q) in xs.iter_mut().zip(chunk) {
            *slot = q;
        }
        kernel(&xs[..chunk.len()], scratch);
        for (t, token_products) in scratch.chunks_exact(width).take(chunk.len()).enumerate() {
            let at = (chunk_index * N + t) * rows + first_row;
            tile_out[at..at + width].copy_from_slice(token_products);
        }
    }
}

/// Whether prompts against `ty`'s packed groups take the two-group
/// AVX-512 kernels (`avx512_packed::chosen`; never off x86-64).
fn wide_kernels_chosen(ty: GgmlType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::avx512_packed::chosen(ty)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        false
    }
}

/// The two-group AVX-512 kernel of `ty` on groups `a` and `b` (only called
/// where [`wide_kernels_chosen`]).
fn dot_group_pair(ty: GgmlType, a: &[u8], b: &[u8], xs: &[&[Q8Block]], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // `None` only without the instructions or for a bad shape, which
        // `wide_kernels_chosen` and the caller's chunking rule out.
        let done = super::avx512_packed::dot_group_pair(ty, a, b, xs, out);
        debug_assert!(done.is_some(), "wide kernel refused {ty}");
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ty, a, b, xs, out);
    }
}
