//! llama.cpp's tensor names (`blk.N.attn_q`), shared by every GGUF family.

use crate::arch::TensorRole;
use crate::ModelSpec;

/// The GGUF name prefix (without `.weight`/`.bias`) of a role in a layer.
pub fn gguf_tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let blk = |s: &str| Some(format!("blk.{layer}.{s}"));
    match role {
        TensorRole::TokenEmbedding => Some("token_embd".into()),
        TensorRole::PositionEmbedding => Some("position_embd".into()),
        TensorRole::OutputNorm => Some("output_norm".into()),
        TensorRole::Output => Some("output".into()),
        TensorRole::AttnNorm => blk("attn_norm"),
        TensorRole::AttnQ => blk("attn_q"),
        TensorRole::AttnK => blk("attn_k"),
        TensorRole::AttnV => blk("attn_v"),
        TensorRole::AttnQkv => blk("attn_qkv"),
        TensorRole::AttnOut => blk("attn_output"),
        TensorRole::AttnQNorm => blk("attn_q_norm"),
        TensorRole::AttnKNorm => blk("attn_k_norm"),
        TensorRole::AttnPostNorm => blk("post_attention_norm"),
        TensorRole::FfnNorm => blk("ffn_norm"),
        TensorRole::FfnGate => blk("ffn_gate"),
        TensorRole::FfnUp | TensorRole::FfnGateUp => blk("ffn_up"),
        TensorRole::FfnDown => blk("ffn_down"),
        TensorRole::FfnPostNorm => blk("post_ffw_norm"),
    }
}
