//! A checked, safe front to the `gemm` crate's f32 matrix product for
//! strided views (the kernels multiply sub-blocks of caches and weights
//! in place, without copying them into tensors first).
#![allow(unsafe_code)]

/// A read-only strided `[rows, cols]` view: element `(r, c)` is
/// `data[r · row_stride + c · col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same elements seen as `[cols, rows]`.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = a · b`, `dst` row-major with rows `dst_row_stride` apart; on
/// the rayon pool when `parallel`. `None` (and `dst` untouched) when the
/// shapes disagree or a view reaches past its slice.
pub(crate) fn matmul_into(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef,
    b: MatRef,
    parallel: bool,
) -> Option<()> {
    product(dst, dst_row_stride, a, b, parallel, false)
}

/// `dst += a · b`, otherwise as [`matmul_into`].
pub(crate) fn matmul_add_into(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef,
    b: MatRef,
    parallel: bool,
) -> Option<()> {
    product(dst, dst_row_stride, a, b, parallel, true)
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major
/// and dense (`[a.rows, b.cols]`), with `a`'s rows split evenly between the
/// rayon threads, each running a single-threaded product: on the 2-core
/// dev VM this is 10–25% faster than the `gemm` crate's own threading for
/// training's `[512, 576] · [576, 1536]`-sized products. Small products
/// run as one parallel call. `None` as for [`matmul_into`].
pub(crate) fn matmul_split_rows(
    dst: &mut [f32],
    a: MatRef,
    b: MatRef,
    accumulate: bool,
) -> Option<()> {
    use rayon::prelude::*;
    const MIN_ROWS_PER_PART: usize = 32;
    let (m, n) = (a.rows, b.cols);
    if dst.len() != m * n || b.rows != a.cols {
        return None;
    }
    let parts = rayon::current_num_threads().max(1);
    if m < 2 * MIN_ROWS_PER_PART || parts == 1 || n == 0 {
        return product(dst, n, a, b, true, accumulate);
    }
    let rows_per_part = m.div_ceil(parts).max(MIN_ROWS_PER_PART);
    dst.par_chunks_mut(rows_per_part * n)
        .enumerate()
        .map(|(i, part)| {
            let first = i * rows_per_part;
            let rows = part.len() / n;
            let start = first * a.row_stride;
            let a_part = MatRef {
                data: a.data.get(start..)?,
                rows,
                ..a
            };
            product(part, n, a_part, b, false, accumulate)
        })
        .collect::<Option<Vec<()>>>()
        .map(|_| ())
}

fn product(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef,
    b: MatRef,
    parallel: bool,
    accumulate: bool,
) -> Option<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || !a.in_bounds() || !b.in_bounds() || dst_row_stride < n {
        return None;
    }
    if m == 0 || n == 0 {
        return Some(());
    }
    if (m - 1) * dst_row_stride + n > dst.len() {
        return None;
    }
    if k == 0 {
        if accumulate {
            return Some(());
        }
        for row in dst.chunks_mut(dst_row_stride).take(m) {
            row[..n].fill(0.0);
        }
        return Some(());
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every index the product reads or writes was checked above to
    // lie inside its slice (`in_bounds` for `a` and `b`, the last row of
    // `dst`); `dst` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::pseudo_random;

    #[test]
    fn strided_products_match_the_naive_loop() {
        let (m, k, n) = (7, 13, 5);
        let a = pseudo_random(m * k, 1);
        // b stored transposed ([n, k]) and read as [k, n].
        let bt = pseudo_random(n * k, 2);
        let mut dst = vec![9f32; m * (n + 3)];
        matmul_into(
            &mut dst,
            n + 3,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&bt, n, k).t(),
            false,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum();
                assert!((dst[i * (n + 3) + j] - want).abs() < 1e-5);
            }
            // Padding between rows is left alone.
            assert_eq!(dst[i * (n + 3) + n], 9.0);
        }
    }

    #[test]
    fn accumulating_products_add_to_dst() {
        let (m, k, n) = (4, 6, 3);
        let a = pseudo_random(m * k, 3);
        let b = pseudo_random(k * n, 4);
        let mut dst = vec![0.5f32; m * n];
        matmul_add_into(
            &mut dst,
            n,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            false,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 0.5 + (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
                assert!((dst[i * n + j] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn row_split_products_match_one_product() {
        let (m, k, n) = (150, 9, 7);
        let a = pseudo_random(m * k, 5);
        let bt = pseudo_random(n * k, 6);
        let (a_ref, b_ref) = (
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&bt, n, k).t(),
        );
        let mut one = vec![0f32; m * n];
        matmul_into(&mut one, n, a_ref, b_ref, false).unwrap();
        let mut split = vec![1f32; m * n];
        matmul_split_rows(&mut split, a_ref, b_ref, false).unwrap();
        assert!(one.iter().zip(&split).all(|(x, y)| (x - y).abs() < 1e-5));
        matmul_split_rows(&mut split, a_ref, b_ref, true).unwrap();
        assert!(one
            .iter()
            .zip(&split)
            .all(|(x, y)| (2.0 * x - y).abs() < 1e-5));
        assert!(matmul_split_rows(&mut split[1..], a_ref, b_ref, false).is_none());
    }

    #[test]
    fn views_past_their_slices_are_refused() {
        let a = vec![1f32; 6];
        let mut dst = vec![0f32; 4];
        let bad = MatRef::row_major(&a, 3, 3);
        assert!(matmul_into(&mut dst, 2, bad, MatRef::row_major(&a, 3, 2), false).is_none());
        let a2 = MatRef::row_major(&a, 2, 3);
        let b = MatRef::row_major(&a, 3, 2);
        assert!(matmul_into(&mut dst[..3], 2, a2, b, false).is_none());
        assert!(matmul_into(&mut dst, 2, a2, b, false).is_some());
        assert_eq!(dst, [3.0; 4]);
    }
}
