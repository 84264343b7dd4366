//! One token (a decode step) against one or several matrices that share it.
//!
//! A decode step is a string of small matrix-vector products, each too short
//! to hide the cost of handing work to the other threads and waiting for the
//! slowest one at its end. Products that read the same input — a layer's
//! q/k/v projections, its gate and up projections — therefore run as one
//! parallel region over the rows of all of them: one hand-off and one wait
//! instead of three or two.

use rayon::prelude::*;

use super::{dot_group, Kernel, QMatrix, ROWS_PER_TASK, SERIAL_BELOW};
use crate::kernels::quant::dequant::dequantize_row;
use crate::kernels::quant::packed::{PackedRows, GROUP_ROWS};
use crate::kernels::quant::q8::{to_f16, ActivationFormat, Q8Block};

#[cfg(not(target_arch = "x86_64"))]
use super::MAX_TOKENS;
#[cfg(target_arch = "x86_64")]
use crate::kernels::quant::avx2_packed::MAX_TOKENS;

/// One matrix of a product with the kernel that runs it.
pub(super) struct Part<'a> {
    /// The weights.
    pub(super) matrix: &'a QMatrix,
    /// How one row meets the activations.
    pub(super) kernel: Kernel,
    /// The packed rows to use, if any (only with an integer kernel).
    pub(super) packed: Option<&'a PackedRows>,
}

/// The activation row as one matrix's kernel reads it.
enum Prepared {
    /// 8-bit blocks (integer kernels).
    Blocks(Vec<Q8Block>),
    /// Rounded to f16 (the f16 kernel).
    Halves(Vec<half::f16>),
    /// Rounded as the weights' format rounds it (bf16/f32, dequantizing).
    Rounded(Vec<f32>),
}

/// `x · Wᵢᵀ` for each part's `Wᵢ` (all `cols == x.len()`), computed in one
/// parallel region; `None` when a width does not match.
pub(super) fn products(parts: &[Part<'_>], x: &[f32]) -> Option<Vec<Vec<f32>>> {
    if parts.iter().any(|p| p.matrix.cols != x.len()) {
        return None;
    }
    let prepared: Vec<Prepared> = parts.iter().map(|p| prepare(p, x)).collect();
    let mut outs: Vec<Vec<f32>> = parts.iter().map(|p| vec![0f32; p.matrix.rows]).collect();
    let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
    let mut work_size = 0;
    for (i, (part, out)) in parts.iter().zip(outs.iter_mut()).enumerate() {
        work_size += part.matrix.rows * part.matrix.cols;
        let chunk = rows_per_task(part);
        for (c, dst) in out.chunks_mut(chunk).enumerate() {
            tasks.push((i, c * chunk, dst));
        }
    }
    let run = |(i, first, dst): (usize, usize, &mut [f32])| {
        rows_product(&parts[i], &prepared[i], first, dst);
    };
    if work_size < SERIAL_BELOW {
        tasks.into_iter().for_each(run);
    } else {
        tasks.into_par_iter().for_each(run);
    }
    Some(outs)
}

/// Rows per task: two tasks per thread, each a long contiguous run of rows
/// (whole groups when packed) that the core's prefetcher can follow.
fn rows_per_task(part: &Part<'_>) -> usize {
    let tasks = 2 * rayon::current_num_threads();
    match part.packed {
        Some(packed) => GROUP_ROWS * 2usize.max(packed.groups().div_ceil(tasks)),
        None => ROWS_PER_TASK.max(part.matrix.rows.div_ceil(tasks)),
    }
}

fn prepare(part: &Part<'_>, x: &[f32]) -> Prepared {
    let format = ActivationFormat::for_weights(part.matrix.ty);
    match part.kernel {
        Kernel::Int(..) => Prepared::Blocks(format.quantize(x)),
        Kernel::F16(_) => Prepared::Halves(to_f16(x)),
        Kernel::Float => Prepared::Rounded(format.round_trip(x)),
    }
}

/// Products of rows `first..first + dst.len()` into `dst`.
fn rows_product(part: &Part<'_>, x: &Prepared, first: usize, dst: &mut [f32]) {
    let m = part.matrix;
    let rb = m.row_bytes();
    let data = m.data();
    let row = |r: usize| &data[r * rb..(r + 1) * rb];
    match (part.kernel, x) {
        (Kernel::Int(dot, _), Prepared::Blocks(q)) => {
            let mut r = first;
            if let Some(packed) = part.packed {
                // Whole packed groups first, then single rows past the last one.
                let mut products = [0f32; GROUP_ROWS * MAX_TOKENS];
                let end = first + dst.len();
                while r + GROUP_ROWS <= end && r / GROUP_ROWS < packed.groups() {
                    dot_group(
                        packed.ty(),
                        packed.group(r / GROUP_ROWS),
                        &[q],
                        &mut products,
                    );
                    dst[r - first..r - first + GROUP_ROWS].copy_from_slice(&products[..GROUP_ROWS]);
                    r += GROUP_ROWS;
                }
            }
            for (v, r) in dst[r - first..].iter_mut().zip(r..) {
                *v = dot(row(r), q);
            }
        }
        (Kernel::F16(dot), Prepared::Halves(x)) => {
            for (v, r) in dst.iter_mut().zip(first..) {
                *v = dot(row(r), x);
            }
        }
        (_, Prepared::Rounded(x)) => {
            let mut scratch = vec![0f32; m.cols];
            for (v, r) in dst.iter_mut().zip(first..) {
                dequantize_row(m.ty, row(r), &mut scratch);
                *v = scratch.iter().zip(x).map(|(a, b)| a * b).sum();
            }
        }
        // `prepare` pairs integer kernels with blocks, the f16 kernel with
        // halves and the others with rounded values, so no other pairing
        // can be built.
        (_, Prepared::Blocks(_) | Prepared::Halves(_)) => {}
    }
}
