//! Kernels against the scalar reference, on random blocks of every type.

use half::f16;

use super::*;

fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        s >> 33
    }
}

/// Positions of the f16 scale fields inside one block.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => &[],
    }
}

/// A random but valid `[rows, cols]` matrix of `ty`.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> QMatrix {
    let mut next = lcg(seed);
    let mut small = move || (next() % 2001) as f32 / 1000.0 - 1.0;
    let blocks = rows * cols / ty.block_size();
    let mut data = Vec::with_capacity(blocks * ty.block_bytes());
    for _ in 0..blocks {
        let start = data.len();
        match ty {
            GgmlType::F32 => data.extend_from_slice(&small().to_le_bytes()),
            GgmlType::F16 => data.extend_from_slice(&f16::from_f32(small()).to_le_bytes()),
            GgmlType::BF16 => data.extend_from_slice(&half::bf16::from_f32(small()).to_le_bytes()),
            _ => {
                for _ in 0..ty.block_bytes() {
                    data.push((small() * 127.0 + 128.0) as u8);
                }
                for &at in scale_fields(ty) {
                    let v = f16::from_f32(small().abs() * 0.05 + 0.001).to_le_bytes();
                    data[start + at..start + at + 2].copy_from_slice(&v);
                }
            }
        }
    }
    QMatrix::from_vec(ty, rows, cols, data).unwrap()
}

/// Whether the AVX2 kernels run here.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut next = lcg(seed);
    (0..n)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// `x` as the kernels of `ty` see it.
fn as_quantized(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    ActivationFormat::for_weights(ty).round_trip(x)
}

#[test]
fn every_type_matches_dequantize_then_multiply() {
    let (rows, cols, tokens) = (37, 512, 3);
    for ty in GgmlType::ALL {
        let w = random_matrix(ty, rows, cols, 7);
        let x = random_input(tokens * cols, 9);
        let dense = w.dequantize();
        for (name, y) in [
            ("selected", w.matmul(&x, tokens).unwrap()),
            ("portable", w.matmul_reference(&x, tokens).unwrap()),
        ] {
            for t in 0..tokens {
                let xt = &x[t * cols..(t + 1) * cols];
                let xs = as_quantized(ty, xt);
                for r in 0..rows {
                    let want: f64 = (0..cols)
                        .map(|c| f64::from(dense[r * cols + c]) * f64::from(xs[c]))
                        .sum();
                    let got = f64::from(y[t * rows + r]);
                    // Both see the same rounded activations; only the
                    // summation order differs.
                    let scale: f64 = (0..cols)
                        .map(|c| (f64::from(dense[r * cols + c]) * f64::from(xs[c])).abs())
                        .sum();
                    let tol = 1e-5;
                    assert!(
                        (got - want).abs() <= tol * scale.max(1e-3),
                        "{ty} {name} t{t} r{r}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn simd_and_portable_integer_kernels_agree() {
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ] {
        let plain = random_matrix(ty, 27, 768, 3);
        // Where this CPU has them, the packed kernels too (27 rows: three
        // packed groups — on Intel with AVX-512 the first two through the
        // two-group kernel, the third alone — and three rows through the
        // single-row kernel).
        let packed = plain.clone().with_packed_rows();
        let packs = matches!(
            ty,
            GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q4_K
                | GgmlType::Q6_K
        ) && simd_available();
        assert_eq!(packed.is_packed(), packs, "{ty}");
        for w in [plain, packed] {
            // 1, 2 and 11 tokens: single-token kernels, and the four-token
            // kernels plus their remainder; 37: packed products split by
            // tokens (a 32-token tile and a remainder of five).
            for tokens in [1, 2, 11, 37] {
                let x = random_input(tokens * 768, 4);
                let a = w.matmul(&x, tokens).unwrap();
                let b = w.matmul_reference(&x, tokens).unwrap();
                // Products here reach ±1000, so a sum that cancels to near
                // zero carries f32 rounding of ~1e-7 of the largest terms.
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-4 * (1.0 + q.abs()) + 1e-6 * scale,
                        "{ty} x{tokens} packed {} at {i}: {p} vs {q}",
                        w.is_packed()
                    );
                }
                // Each token's row equals that token multiplied alone.
                for t in 0..tokens {
                    let alone = w.matmul(&x[t * 768..(t + 1) * 768], 1).unwrap();
                    for r in 0..27 {
                        assert_eq!(a[t * 27 + r], alone[r], "{ty} token {t} row {r}");
                    }
                }
            }
        }
    }
}

#[test]
fn known_blocks_dequantize_to_known_values() {
    // Q4_0: d = 0.5, nibbles 0..15 → (q − 8) · d.
    let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
    block.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
    let mut out = [0f32; 32];
    dequantize_block(GgmlType::Q4_0, &block, &mut out);
    assert_eq!(out[0], -4.0);
    assert_eq!(out[15], 3.5);
    assert_eq!(out[16], 3.5);
    assert_eq!(out[31], -4.0);
    // Q8_0: d = 0.25, q = −3.
    let mut block = f16::from_f32(0.25).to_le_bytes().to_vec();
    block.extend([(-3i8) as u8; 32]);
    dequantize_block(GgmlType::Q8_0, &block, &mut out);
    assert!(out.iter().all(|&v| v == -0.75));
}

#[test]
fn bad_shapes_are_rejected() {
    assert!(QMatrix::from_vec(GgmlType::Q4_0, 2, 31, vec![0; 100]).is_none());
    assert!(QMatrix::from_vec(GgmlType::Q4_0, 2, 32, vec![0; 35]).is_none());
    let w = QMatrix::from_vec(GgmlType::Q4_0, 2, 32, vec![0; 36]).unwrap();
    assert!(w.matmul(&[0.0; 31], 1).is_none());
    assert!(w.row(2).is_none());
}

#[test]
fn quantize_then_dequantize_stays_close() {
    let x = random_input(4 * 256, 11);
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    // Relative RMS error bounds per type (4-bit ≈ 1/15 of the range, …).
    for (ty, bound) in [
        (GgmlType::F16, 1e-3),
        (GgmlType::BF16, 5e-3),
        (GgmlType::Q8_0, 1e-2),
        (GgmlType::Q6_K, 4e-2),
        (GgmlType::Q4_0, 0.12),
        (GgmlType::Q4_1, 0.1),
        (GgmlType::Q4_K, 0.1),
        (GgmlType::Q5_K, 0.05),
    ] {
        let bytes = quantize_row(ty, &x).unwrap();
        assert_eq!(bytes.len(), ty.row_bytes(x.len()).unwrap(), "{ty}");
        let m = QMatrix::from_vec(ty, 1, x.len(), bytes).unwrap();
        let y = m.row(0).unwrap();
        let err =
            (x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / x.len() as f32).sqrt();
        assert!(err / rms < bound, "{ty}: relative RMS error {}", err / rms);
    }
    assert!(quantize_row(GgmlType::Q4_K, &x[..255]).is_none());
    assert!(quantize_row(GgmlType::Q2_K, &x).is_none());
}

#[test]
fn sixteen_bit_rows_convert_like_single_values() {
    // Odd lengths exercise the SIMD tail; values span normal, subnormal, ±0.
    let values: Vec<f32> = (0..37)
        .map(|i| (i as f32 - 18.0) * 0.37e-3 * (i % 5) as f32)
        .collect();
    for ty in [GgmlType::F16, GgmlType::BF16] {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| match ty {
                GgmlType::F16 => half::f16::from_f32(v).to_le_bytes(),
                _ => half::bf16::from_f32(v).to_le_bytes(),
            })
            .collect();
        let mut row = vec![0f32; values.len()];
        dequantize_row(ty, &bytes, &mut row);
        for (i, got) in row.iter().enumerate() {
            let mut one = [0f32];
            dequantize_block(ty, &bytes[2 * i..2 * i + 2], &mut one);
            assert_eq!(got.to_bits(), one[0].to_bits(), "{ty} value {i}");
        }
    }
}

#[test]
fn fast_row_dequantization_equals_the_block_reference() {
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
        let w = random_matrix(ty, 3, 96, 11);
        let rb = ty.row_bytes(96).unwrap();
        for r in 0..3 {
            let bytes = &w.data()[r * rb..(r + 1) * rb];
            let mut fast = vec![0f32; 96];
            dequantize_row(ty, bytes, &mut fast);
            let mut slow = vec![0f32; 96];
            for (dst, src) in slow
                .chunks_exact_mut(32)
                .zip(bytes.chunks_exact(ty.block_bytes()))
            {
                dequantize_block(ty, src, dst);
            }
            let same = fast
                .iter()
                .zip(&slow)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{ty} row {r}");
        }
    }
}

#[test]
fn k_quants_are_the_256_value_types() {
    let k: Vec<GgmlType> = QUANTIZABLE
        .iter()
        .copied()
        .chain([
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q5_K,
            GgmlType::Q4_1,
            GgmlType::Q5_1,
        ])
        .filter(|t| t.is_k_quant())
        .collect();
    assert!(k.iter().all(|t| t.name().ends_with("_K")), "{k:?}");
    assert!(!GgmlType::Q8_0.is_k_quant() && !GgmlType::F16.is_k_quant());
    assert!(GgmlType::Q4_K.is_k_quant() && GgmlType::Q6_K.is_k_quant());
}

#[test]
fn f16_rows_match_the_reference() {
    // One token takes the prefetching f16 kernel where the CPU has it; 1000
    // columns leave tails under 32 and under 8.
    let w = random_matrix(GgmlType::F16, 19, 1000, 5);
    let x = random_input(1000, 6);
    let fast = w.matmul(&x, 1).unwrap();
    let reference = w.matmul_reference(&x, 1).unwrap();
    for (r, (p, q)) in fast.iter().zip(&reference).enumerate() {
        assert!(
            (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
            "row {r}: {p} vs {q}"
        );
    }
}

/// Both f16 row kernels (8 and 16 lanes) agree with an f64 sum, on every
/// tail length, wherever this CPU runs them.
#[cfg(target_arch = "x86_64")]
#[test]
fn f16_row_kernels_of_both_widths_match_an_exact_sum() {
    use super::avx2::{dot_f16, dot_f16_512};
    use crate::kernels::vector::pseudo_random;
    if !simd_available() {
        return;
    }
    let wide = is_x86_feature_detected!("avx512f");
    for n in [0, 1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 129, 1000] {
        let w = pseudo_random(n, 3);
        let x = pseudo_random(n, 4);
        let wh: Vec<u8> = w
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let xh: Vec<half::f16> = x.iter().map(|v| half::f16::from_f32(*v)).collect();
        let exact: f64 = wh
            .chunks(2)
            .zip(&xh)
            .map(|(b, x)| {
                f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32()) * f64::from(x.to_f32())
            })
            .sum();
        let mut kernels = vec![dot_f16(&wh, &xh)];
        if wide {
            kernels.push(dot_f16_512(&wh, &xh));
        }
        for got in kernels {
            assert!(
                (f64::from(got) - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                "{n}: {got} vs {exact}"
            );
        }
    }
}

/// Every instruction variant of the packed kernels this CPU runs (AVX2,
/// AVX-VNNI, AVX-512 VNNI) gives bit-identical group products, for one to
/// four tokens.
#[cfg(target_arch = "x86_64")]
#[test]
fn packed_instruction_variants_agree_bit_for_bit() {
    use super::avx2_packed::{dot_group_with, Isa, MAX_TOKENS};
    use super::packed::{PackedRows, GROUP_ROWS};
    if !simd_available() {
        return;
    }
    let variants: Vec<Isa> = [Isa::AvxVnni, Isa::Avx512Vnni]
        .into_iter()
        .filter(|isa| isa.available())
        .collect();
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ] {
        let w = random_matrix(ty, GROUP_ROWS, 768, 11);
        let packed = PackedRows::pack(ty, w.data(), GROUP_ROWS, 768).unwrap();
        let format = ActivationFormat::for_weights(ty);
        let inputs = random_input(MAX_TOKENS * 768, 20);
        let xs: Vec<Vec<Q8Block>> = inputs.chunks(768).map(|x| format.quantize(x)).collect();
        for tokens in 1..=MAX_TOKENS {
            let views: Vec<&[Q8Block]> = xs[..tokens].iter().map(Vec::as_slice).collect();
            let mut base = vec![0f32; GROUP_ROWS * tokens];
            dot_group_with(Isa::Avx2, ty, packed.group(0), &views, &mut base).unwrap();
            // The AVX2 sums match the portable kernel's (token-major).
            let reference = w.matmul_reference(&inputs[..tokens * 768], tokens).unwrap();
            for (p, q) in base.iter().zip(&reference) {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "{ty} x{tokens}: {p} vs {q}"
                );
            }
            for isa in &variants {
                let mut out = vec![0f32; GROUP_ROWS * tokens];
                dot_group_with(*isa, ty, packed.group(0), &views, &mut out).unwrap();
                assert_eq!(out, base, "{ty} {isa:?} x{tokens}");
            }
        }
    }
}

#[test]
fn several_matrices_of_one_token_equal_each_alone() {
    // A packed type with a tail past its last group, f16, a k-quant without
    // packed rows and f32 (the dequantizing kernel), all sharing one input.
    let matrices = [
        random_matrix(GgmlType::Q4_0, 19, 768, 1).with_packed_rows(),
        random_matrix(GgmlType::F16, 13, 768, 2),
        random_matrix(GgmlType::Q6_K, 9, 768, 3),
        random_matrix(GgmlType::F32, 5, 768, 4),
    ];
    let x = random_input(768, 5);
    let refs: Vec<&QMatrix> = matrices.iter().collect();
    let together = QMatrix::matvec_many(&refs, &x).unwrap();
    assert_eq!(together.len(), matrices.len());
    for (w, got) in matrices.iter().zip(&together) {
        assert_eq!(got, &w.matmul(&x, 1).unwrap(), "{w:?}");
        let reference = w.matmul_reference(&x, 1).unwrap();
        for (p, q) in got.iter().zip(&reference) {
            assert!((p - q).abs() <= 1e-4 * (1.0 + q.abs()), "{w:?}: {p} vs {q}");
        }
    }
    // Every matrix must take the input's width.
    let narrow = random_matrix(GgmlType::Q8_0, 4, 512, 6);
    assert!(QMatrix::matvec_many(&[&matrices[0], &narrow], &x).is_none());
}

/// The two-group AVX-512 kernels give bit for bit the products of the
/// 256-bit kernel on each group, for one to eight tokens.
#[cfg(target_arch = "x86_64")]
#[test]
fn wide_pair_kernels_equal_two_group_calls_bit_for_bit() {
    use super::avx2_packed::{dot_group, MAX_TOKENS};
    use super::avx512_packed::{available, covers, dot_group_pair, PAIR_ROWS, WIDE_TOKENS};
    use super::packed::{PackedRows, GROUP_ROWS};
    if !simd_available() || !available() {
        return;
    }
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ]
    .into_iter()
    .filter(|t| covers(*t))
    {
        let cols = 768;
        let w = random_matrix(ty, PAIR_ROWS, cols, 31);
        let packed = PackedRows::pack(ty, w.data(), PAIR_ROWS, cols).unwrap();
        let format = ActivationFormat::for_weights(ty);
        let inputs = random_input(WIDE_TOKENS * cols, 32);
        let xs: Vec<Vec<Q8Block>> = inputs.chunks(cols).map(|x| format.quantize(x)).collect();
        for tokens in 1..=WIDE_TOKENS {
            let views: Vec<&[Q8Block]> = xs[..tokens].iter().map(Vec::as_slice).collect();
            let mut wide = vec![0f32; PAIR_ROWS * tokens];
            dot_group_pair(ty, packed.group(0), packed.group(1), &views, &mut wide).unwrap();
            for (g, first) in [(0, 0), (1, GROUP_ROWS)] {
                for quad in (0..tokens).step_by(MAX_TOKENS) {
                    let end = (quad + MAX_TOKENS).min(tokens);
                    let mut narrow = vec![0f32; GROUP_ROWS * (end - quad)];
                    dot_group(ty, packed.group(g), &views[quad..end], &mut narrow).unwrap();
                    for (t, row) in narrow.chunks_exact(GROUP_ROWS).enumerate() {
                        let at = (quad + t) * PAIR_ROWS + first;
                        assert_eq!(&wide[at..at + GROUP_ROWS], row, "{ty} x{tokens} group {g}");
                    }
                }
            }
        }
        // Mismatched groups and too many tokens are refused.
        let views: Vec<&[Q8Block]> = xs.iter().map(Vec::as_slice).collect();
        let mut out = vec![0f32; PAIR_ROWS * (WIDE_TOKENS + 1)];
        let short = &packed.group(1)[..packed.group(1).len() / 2];
        assert!(dot_group_pair(ty, packed.group(0), short, &views[..1], &mut out).is_none());
        let mut too_many = views.clone();
        too_many.push(views[0]);
        assert!(
            dot_group_pair(ty, packed.group(0), packed.group(1), &too_many, &mut out).is_none()
        );
    }
}

/// The NEON kernels equal the portable ones bit for bit: the integer sums
/// are exact and the float steps run in the same order.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_kernels_equal_the_portable_ones_bit_for_bit() {
    use super::{dot_scalar, neon};
    type Dot = fn(&[u8], &[Q8Block]) -> f32;
    let pairs: [(GgmlType, Dot, Dot); 7] = [
        (GgmlType::Q8_0, neon::dot_q8_0, dot_scalar::dot_q8_0),
        (GgmlType::Q4_0, neon::dot_q4_0, dot_scalar::dot_q4_0),
        (GgmlType::Q4_1, neon::dot_q4_1, dot_scalar::dot_q4_1),
        (GgmlType::Q5_0, neon::dot_q5_0, dot_scalar::dot_q5_0),
        (GgmlType::Q5_1, neon::dot_q5_1, dot_scalar::dot_q5_1),
        (GgmlType::Q4_K, neon::dot_q4_k, dot_scalar::dot_q4_k),
        (GgmlType::Q6_K, neon::dot_q6_k, dot_scalar::dot_q6_k),
    ];
    let cols = 768;
    for (ty, simd, portable) in pairs {
        let w = random_matrix(ty, 9, cols, 11);
        let row_bytes = w.data().len() / 9;
        for seed in 0..4 {
            let x = ActivationFormat::for_weights(ty).quantize(&random_input(cols, 20 + seed));
            for r in 0..9 {
                let row = &w.data()[r * row_bytes..(r + 1) * row_bytes];
                let (a, b) = (simd(row, &x), portable(row, &x));
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{ty} row {r} seed {seed}: {a} vs {b}"
                );
            }
        }
    }
}
