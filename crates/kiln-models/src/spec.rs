//! [`ModelSpec`]: the validated description of a decoder that the generic
//! forward pass runs. A family is a function from `config.json` to a spec
//! plus a tensor-name map (see `arch/`).

/// Which normalisation a layer uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// RMSNorm: `x / rms(x) * w`.
    Rms,
    /// LayerNorm: `(x - mean) / std * w + b` (bias optional).
    Layer {
        /// Whether the norm has a bias tensor.
        bias: bool,
    },
}

/// A normalisation layer's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormSpec {
    /// RMS or Layer norm.
    pub kind: NormKind,
    /// Epsilon added to the variance.
    pub eps: f64,
    /// Added to the stored weight at load (Gemma stores `w` and uses `1 + w`).
    pub weight_offset: f32,
}

/// The MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU / swish.
    Silu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`, `gelu_new`).
    GeluTanh,
    /// Exact (erf) GELU.
    Gelu,
    /// ReLU.
    Relu,
}

impl Activation {
    /// Parses a transformers activation name.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Self::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Some(Self::GeluTanh),
            "gelu" => Some(Self::Gelu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }
}

/// MLP shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `down(act(gate(x)) * up(x))` (Llama, Gemma); `fused` when gate and up
    /// are one `gate_up_proj` tensor (Phi-3), gate rows first.
    Gated {
        /// Gate and up stored as one tensor.
        fused: bool,
    },
    /// `down(act(up(x)))` (GPT-2, GPT-NeoX, Falcon, MPT).
    Plain,
}

/// How q, k and v are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvLayout {
    /// Three tensors.
    Separate,
    /// One tensor: all q rows, then all k rows, then all v rows (Phi-3, GPT-2,
    /// MPT, Falcon-7B's multi-query layout).
    Fused,
    /// One tensor laid out per head as `[heads, (q, k, v), head_dim]`
    /// (GPT-NeoX, Falcon without multi-query); regrouped to `Fused` at load.
    FusedPerHead,
    /// One tensor laid out per KV group as `[kv_heads, (q × group, k, v),
    /// head_dim]` (Falcon's new decoder architecture); regrouped at load.
    FusedGrouped,
}

/// RoPE frequency scaling, as transformers' `rope_type`s compute it.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// Divisor of positions.
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        /// Scale of low frequencies.
        factor: f64,
        /// Wavelength boundary (low).
        low_freq_factor: f64,
        /// Wavelength boundary (high).
        high_freq_factor: f64,
        /// Trained context length.
        original_max_position_embeddings: usize,
    },
    /// Dynamic NTK: the base grows once the sequence outgrows `max_position_embeddings`.
    Dynamic {
        /// Scaling factor.
        factor: f64,
        /// The context length the base is tuned for.
        max_position_embeddings: usize,
    },
    /// YaRN: interpolation ramped between extrapolated and interpolated
    /// frequencies, cos/sin multiplied by `attention_factor`.
    Yarn {
        /// Context extension factor.
        factor: f64,
        /// Trained context length.
        original_max_position_embeddings: usize,
        /// Rotations for the start of the ramp.
        beta_fast: f64,
        /// Rotations for the end of the ramp.
        beta_slow: f64,
        /// Multiplier of cos and sin.
        attention_factor: f64,
        /// Round the ramp's bounds outwards.
        truncate: bool,
    },
    /// Phi-3 LongRoPE: per-frequency divisors, short within the original
    /// context and long beyond it, cos/sin multiplied by `attention_factor`.
    LongRope {
        /// Divisors used while the sequence fits the original context.
        short_factor: Vec<f64>,
        /// Divisors used beyond it.
        long_factor: Vec<f64>,
        /// The original context length.
        original_max_position_embeddings: usize,
        /// Multiplier of cos and sin.
        attention_factor: f64,
    },
}

/// Rotary position embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSpec {
    /// Base frequency.
    pub theta: f64,
    /// How many leading dimensions of each head rotate (the rest pass through).
    pub rotary_dim: usize,
    /// GPT-J style: rotate adjacent pairs instead of the two halves.
    pub interleaved: bool,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// How positions enter the model.
#[derive(Debug, Clone, PartialEq)]
pub enum PositionEncoding {
    /// Rotary embeddings on q and k.
    Rope(RopeSpec),
    /// A learned position-embedding table added to the token embeddings.
    Learned,
    /// ALiBi linear biases on attention scores.
    Alibi {
        /// `alibi_bias_max` (8 in MPT and BLOOM).
        max_bias: f64,
    },
}

/// How a block combines attention and MLP with the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLayout {
    /// `h = x + attn(n1(x)); out = h + mlp(n2(h))`.
    Sequential,
    /// Gemma 2's sandwich: `h = x + n_post_attn(attn(n1(x))); out = h + n_post_ffn(mlp(n2(h)))`.
    Sandwich,
    /// `out = x + attn(n1(x)) + mlp(n(x))` where the MLP uses `n1` again
    /// (`shared_norm`, GPT-J/Falcon-7B) or its own `n2` (GPT-NeoX, Falcon-40B).
    Parallel {
        /// One norm feeds both branches.
        shared_norm: bool,
    },
}

/// Attention settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionSpec {
    /// Multiplier of `q·k` (usually `head_dim^-0.5`).
    pub scale: f64,
    /// Gemma 2: `tanh(s / cap) * cap` on scores.
    pub logit_softcap: Option<f64>,
    /// Qwen3: RMSNorm over each q and k head before RoPE.
    pub qk_norm: bool,
    /// Storage of the q/k/v projections.
    pub qkv_layout: QkvLayout,
    /// Biases on q, k and v.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
}

/// The validated description of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The `model_type` of `config.json`.
    pub model_type: String,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Context length the model was trained for.
    pub max_position_embeddings: usize,
    /// Every norm in the model.
    pub norm: NormSpec,
    /// MLP activation.
    pub activation: Activation,
    /// MLP shape.
    pub mlp: MlpKind,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// Positional scheme.
    pub position: PositionEncoding,
    /// Attention settings.
    pub attention: AttentionSpec,
    /// Sliding-window size of each layer (`None`: full attention).
    pub layer_windows: Vec<Option<usize>>,
    /// Residual layout of each block.
    pub block: BlockLayout,
    /// Multiplier of token embeddings (Gemma: `sqrt(hidden_size)`).
    pub embedding_scale: Option<f64>,
    /// `tanh(l / cap) * cap` on the final logits.
    pub final_logit_softcap: Option<f64>,
    /// The LM head is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on the LM head.
    pub lm_head_bias: bool,
    /// Linear weights are stored `[in, out]` (GPT-2's Conv1D) and transposed at load.
    pub transposed_linear_weights: bool,
    /// Attention in llama.cpp's arithmetic: keys and values cached as f16,
    /// queries and probabilities rounded to f16 for their products (set for
    /// GGUF models, so kiln matches llama.cpp on llama.cpp's files).
    pub kv_cache_f16: bool,
    /// RoPE base for the sliding-window layers when they differ from the
    /// global ones (Gemma 3: 10,000 local, 1,000,000 global; no scaling).
    pub local_rope_theta: Option<f64>,
    /// BOS id from config.json.
    pub bos_token_id: Option<u32>,
    /// EOS ids from config.json.
    pub eos_token_ids: Vec<u32>,
    /// Dtype the checkpoint declares.
    pub dtype: Option<String>,
}

impl ModelSpec {
    /// How many positions generation may use: `max_position_embeddings`, or
    /// `factor` times it for dynamic NTK scaling, which exists to run past it.
    pub fn context_length(&self) -> usize {
        match &self.position {
            PositionEncoding::Rope(RopeSpec {
                scaling:
                    RopeScaling::Dynamic {
                        factor,
                        max_position_embeddings,
                    },
                ..
            }) => (*max_position_embeddings as f64 * factor.max(1.0)) as usize,
            _ => self.max_position_embeddings,
        }
    }

    /// Width of all query heads together.
    pub fn q_width(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_width(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Checks the invariants the forward pass relies on.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.layer_windows.len() != self.num_hidden_layers {
            return Err(format!(
                "{} layer types for {} layers",
                self.layer_windows.len(),
                self.num_hidden_layers
            ));
        }
        if let PositionEncoding::Rope(rope) = &self.position {
            if rope.rotary_dim == 0
                || rope.rotary_dim > self.head_dim
                || !rope.rotary_dim.is_multiple_of(2)
            {
                return Err(format!(
                    "rotary dimension {} must be even and within head_dim {}",
                    rope.rotary_dim, self.head_dim
                ));
            }
            if rope.theta <= 0.0 {
                return Err("rope_theta must be positive".into());
            }
        }
        Ok(())
    }
}
