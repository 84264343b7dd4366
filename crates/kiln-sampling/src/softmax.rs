//! Numerically stable softmax over logits, with a vectorisable exp, and the
//! partial-sort helper the warpers use to avoid sorting whole vocabularies.

/// `e^x` for f32 to within ~2 ulp: Cody–Waite range reduction and a degree-6
/// polynomial, written so the compiler vectorises loops over it.
#[inline]
pub fn fast_exp(x: f32) -> f32 {
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.7);
    // Round to nearest with the 1.5·2^23 trick: `f32::round` is a libm call
    // on baseline x86-64, which would stop the loop from vectorising.
    const SHIFT: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    // x - n·ln2 in two steps for precision.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67 + r * (0.041_666_52 + r * (0.008_333_6 + r * 0.001_394_3)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    let v = p * f32::from_bits(bits);
    if underflow {
        0.0
    } else {
        v
    }
}

/// Softmax of `logits` in f32 (`-inf` → 0).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    softmax_into(logits, &mut out);
    out
}

/// Softmax into a reused buffer; returns the sum of the unnormalised exps.
pub(crate) fn softmax_into(logits: &[f32], out: &mut Vec<f32>) -> f32 {
    out.clear();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        out.resize(logits.len(), 0.0);
        return 0.0;
    }
    out.extend(logits.iter().map(|&l| fast_exp(l - max)));
    let sum: f32 = out.iter().sum();
    let inv = 1.0 / sum;
    for p in out.iter_mut() {
        *p *= inv;
    }
    sum
}

/// When at most a quarter of `logits` are finite (an earlier top-k or mask
/// removed the rest), their indices and values, so later steps can work on
/// a compact copy instead of the whole vocabulary.
pub(crate) fn compact_finite(logits: &[f32]) -> Option<(Vec<usize>, Vec<f32>)> {
    let finite = logits.iter().filter(|l| l.is_finite()).count();
    if finite == 0 || finite * 4 > logits.len() {
        return None;
    }
    let idx: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    let values = idx.iter().map(|&i| logits[i]).collect();
    Some((idx, values))
}

/// Runs `f` on the compact finite logits when most were removed (writing
/// the result back), else on all of them.
pub(crate) fn on_compact(logits: &mut [f32], mut f: impl FnMut(&mut [f32])) {
    match compact_finite(logits) {
        Some((idx, mut values)) => {
            f(&mut values);
            for (&i, &v) in idx.iter().zip(&values) {
                logits[i] = v;
            }
        }
        None => f(logits),
    }
}

/// Buffers the warpers reuse between tokens, so a 150k vocabulary costs no
/// fresh allocation (and page faults) per step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scratch {
    pub(crate) probs: Vec<f32>,
    pub(crate) key: Vec<f32>,
    bins: Vec<f64>,
}

/// Log-softmax of `logits` (`-inf` stays `-inf`).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![f32::NEG_INFINITY; logits.len()];
    }
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_sum = sum.ln() + max;
    logits.iter().map(|&l| l - log_sum).collect()
}

/// The key of the first token, in ascending `key` order, at which the
/// cumulative probability (inclusive) reaches `target`; `None` if it never
/// does. Runs in linear time: a histogram of the keys finds the bin where
/// the mass crosses `target`, and only that bin is sorted.
pub(crate) fn first_key_reaching(scratch: &mut Scratch, target: f32) -> Option<f32> {
    const BINS: usize = 4096;
    let Scratch { probs, key, bins } = scratch;
    let (key, probs) = (&key[..], &probs[..]);
    let finite = || key.iter().copied().filter(|k| k.is_finite());
    let lo = finite().fold(f32::INFINITY, f32::min);
    let hi = finite().fold(f32::NEG_INFINITY, f32::max);
    if !lo.is_finite() {
        return None;
    }
    let scale = if hi > lo {
        (BINS - 1) as f32 / (hi - lo)
    } else {
        0.0
    };
    let bin_of = |k: f32| (((k - lo) * scale) as usize).min(BINS - 1);
    bins.clear();
    bins.resize(BINS, 0.0);
    let mass = bins;
    for (&k, &p) in key.iter().zip(probs) {
        if k.is_finite() {
            mass[bin_of(k)] += f64::from(p);
        }
    }
    let target = f64::from(target);
    let mut before = 0f64;
    for (b, &m) in mass.iter().enumerate() {
        let m: f64 = m;
        if before + m < target {
            before += m;
            continue;
        }
        let mut members: Vec<usize> = (0..key.len())
            .filter(|&i| key[i].is_finite() && bin_of(key[i]) == b)
            .collect();
        members.sort_unstable_by(|&x, &y| key[x].total_cmp(&key[y]).then(x.cmp(&y)));
        for i in members {
            before += f64::from(probs[i]);
            if before >= target {
                return Some(key[i]);
            }
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = ((fast_exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(0.0), 1.0);
    }
}
