//! Beam search with transformers' scoring: a hypothesis scores
//! `sum(log-probs) / generated_len ^ length_penalty`; EOS candidates finish a
//! hypothesis only when they rank among the top `num_beams` candidates.

use kiln_core::TokenId;

/// A finished (or final) beam.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamHypothesis {
    /// Generated tokens (an ending EOS included).
    pub tokens: Vec<TokenId>,
    /// Length-normalised score.
    pub score: f32,
    /// Sum of log-probabilities.
    pub sum_logprobs: f32,
    /// Ended with an EOS token (rather than the length limit).
    pub ended_by_eos: bool,
}

#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<TokenId>,
    score: f32,
}

/// The state of one beam search.
#[derive(Debug, Clone)]
pub struct BeamSearch {
    num_beams: usize,
    length_penalty: f32,
    early_stopping: bool,
    eos: Vec<TokenId>,
    running: Vec<Beam>,
    finished: Vec<BeamHypothesis>,
    done: bool,
}

impl BeamSearch {
    /// A search that starts from the prompt as its single running beam.
    pub fn new(
        num_beams: usize,
        length_penalty: f32,
        early_stopping: bool,
        eos: &[TokenId],
    ) -> Self {
        Self {
            num_beams: num_beams.max(1),
            length_penalty,
            early_stopping,
            eos: eos.to_vec(),
            running: vec![Beam {
                tokens: Vec::new(),
                score: 0.0,
            }],
            finished: Vec::new(),
            done: false,
        }
    }

    /// Number of running beams (rows the caller must supply to [`Self::step`]).
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// True once no running beam can improve the finished set.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn normalise(&self, sum: f32, len: usize) -> f32 {
        sum / (len as f32).powf(self.length_penalty)
    }

    /// Advances every running beam by one token. `log_probs[b]` is the
    /// processed log-softmax row of running beam `b`. Returns, for each new
    /// running beam, the index of the beam it extends (so the caller can
    /// reorder KV caches) and the token it appends. `last_step` finishes the
    /// best candidates as the length limit does in transformers.
    pub fn step(&mut self, log_probs: &[Vec<f32>], last_step: bool) -> Vec<(usize, TokenId)> {
        let k = (1 + self.eos.len().max(1)) * self.num_beams;
        // (score, beam, token), best first; ties by beam then token.
        let mut candidates: Vec<(f32, usize, TokenId)> = Vec::new();
        for (b, (beam, row)) in self.running.iter().zip(log_probs).enumerate() {
            let mut idx: Vec<usize> = (0..row.len()).filter(|&t| row[t].is_finite()).collect();
            let keep = k.min(idx.len());
            if keep > 0 && keep < idx.len() {
                idx.select_nth_unstable_by(keep - 1, |&x, &y| row[y].total_cmp(&row[x]));
                idx.truncate(keep);
            }
            candidates.extend(
                idx.into_iter()
                    .map(|t| (beam.score + row[t], b, t as TokenId)),
            );
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        candidates.truncate(k);

        let gen_len = self.running.first().map_or(0, |b| b.tokens.len()) + 1;
        let mut next = Vec::new();
        let mut chosen = Vec::new();
        for (rank, &(score, b, token)) in candidates.iter().enumerate() {
            let is_eos = self.eos.contains(&token);
            if rank < self.num_beams && (is_eos || last_step) {
                let mut tokens = self.running[b].tokens.clone();
                tokens.push(token);
                self.add_finished(BeamHypothesis {
                    tokens,
                    score: self.normalise(score, gen_len),
                    sum_logprobs: score,
                    ended_by_eos: is_eos,
                });
            } else if !is_eos && next.len() < self.num_beams && !last_step {
                let mut tokens = self.running[b].tokens.clone();
                tokens.push(token);
                next.push(Beam { tokens, score });
                chosen.push((b, token));
            }
        }
        self.running = next;
        self.done = last_step || self.running.is_empty() || self.should_stop(gen_len);
        chosen
    }

    fn add_finished(&mut self, h: BeamHypothesis) {
        self.finished.push(h);
        self.finished.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.finished.truncate(self.num_beams);
    }

    fn should_stop(&self, gen_len: usize) -> bool {
        if self.finished.len() < self.num_beams {
            return false;
        }
        if self.early_stopping {
            return true;
        }
        // transformers' heuristic: the best running beam, normalised at the
        // current length, can no longer beat the worst finished hypothesis.
        let worst = self.finished.last().map_or(f32::NEG_INFINITY, |h| h.score);
        let best_running = self.running.first().map_or(f32::NEG_INFINITY, |b| b.score);
        self.normalise(best_running, gen_len) <= worst
    }

    /// The best `n` hypotheses, best first. Running beams count when too few
    /// finished (generation was cut short).
    pub fn finish(mut self, n: usize) -> Vec<BeamHypothesis> {
        if self.finished.len() < n {
            for beam in std::mem::take(&mut self.running) {
                let len = beam.tokens.len().max(1);
                self.finished.push(BeamHypothesis {
                    score: beam.score / (len as f32).powf(self.length_penalty),
                    sum_logprobs: beam.score,
                    tokens: beam.tokens,
                    ended_by_eos: false,
                });
            }
            self.finished.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        self.finished.truncate(n);
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ln(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
    }

    #[test]
    fn two_step_search_keeps_the_best_sequences() {
        // vocab {0: eos, 1, 2}; beam 2.
        let mut bs = BeamSearch::new(2, 1.0, true, &[0]);
        let picks = bs.step(&[ln(&[0.1, 0.6, 0.3])], false);
        assert_eq!(picks, vec![(0, 1), (0, 2)]);
        let picks = bs.step(&[ln(&[0.1, 0.5, 0.4]), ln(&[0.1, 0.1, 0.8])], true);
        assert!(picks.is_empty());
        let out = bs.finish(2);
        assert_eq!(out[0].tokens, vec![1, 1]);
        assert!((out[0].sum_logprobs - (0.6f32 * 0.5).ln()).abs() < 1e-6);
        assert!((out[0].score - out[0].sum_logprobs / 2.0).abs() < 1e-6);
        assert_eq!(out[1].tokens, vec![1, 2]);
    }

    #[test]
    fn top_ranked_eos_finishes_a_hypothesis() {
        let mut bs = BeamSearch::new(2, 1.0, true, &[0]);
        bs.step(&[ln(&[0.5, 0.3, 0.2])], false);
        assert_eq!(bs.finished.len(), 1);
        assert_eq!(bs.finished[0].tokens, vec![0]);
        assert!(bs.finished[0].ended_by_eos);
        assert_eq!(bs.running(), 2);
    }
}
