//! ALiBi: per-head linear attention biases instead of position embeddings,
//! with MPT's slopes (as transformers' `build_mpt_alibi_tensor`).

use candle_core::{Device, Tensor};

use crate::Result;

/// The slope of each head for `max_bias` (`alibi_bias_max`, 8 in MPT).
pub(crate) fn slopes(num_heads: usize, max_bias: f64) -> Vec<f32> {
    let pow2 = num_heads.next_power_of_two();
    let all: Vec<f32> = (1..=pow2)
        .map(|i| {
            let exponent = i as f32 * (max_bias as f32 / pow2 as f32);
            1.0 / 2f32.powf(exponent)
        })
        .collect();
    if pow2 == num_heads {
        return all;
    }
    // Odd-indexed slopes first, then even-indexed ones, cut to num_heads.
    all.iter()
        .skip(1)
        .step_by(2)
        .chain(all.iter().step_by(2))
        .take(num_heads)
        .copied()
        .collect()
}

/// Bias `[heads, 1, total]`: key `j` gets `(j − (total − 1)) · slope`; a
/// per-row constant away from `−(i − j) · slope`, so softmax is the same.
pub(crate) fn bias(slopes: &[f32], total: usize) -> Result<Tensor> {
    let mut data = Vec::with_capacity(slopes.len() * total);
    for &s in slopes {
        for j in 0..total {
            data.push((j as f32 - (total as f32 - 1.0)) * s);
        }
    }
    Ok(Tensor::from_vec(
        data,
        (slopes.len(), 1, total),
        &Device::Cpu,
    )?)
}

#[cfg(test)]
mod tests {
    use super::slopes;

    #[test]
    fn slopes_for_powers_of_two_and_others() {
        let s = slopes(4, 8.0);
        assert_eq!(s, vec![0.25, 0.0625, 0.015625, 0.00390625]);
        // 3 heads: computed for 4, then [1::2] ++ [::2] cut to 3.
        assert_eq!(slopes(3, 8.0), vec![0.0625, 0.00390625, 0.25]);
    }
}
