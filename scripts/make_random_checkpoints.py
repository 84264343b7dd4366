#!/usr/bin/env python3
"""Write random-weight checkpoints with the real shapes, dtype (bf16) and layout of public
models, for benchmarks: SmolLM2-135M and TinyLlama-1.1B (Hugging Face safetensors layout).

The values are random (normal, std 0.02); only shapes, dtypes and names are real. The tokenizer
files are the tiny fixture's SentencePiece tokenizer (1000 pieces) — benchmarks feed synthetic ids,
and llama.cpp's converter pads the vocabulary to `vocab_size`.

usage: scripts/make_random_checkpoints.py OUT_DIR [smollm2-135m|tinyllama-1.1b ...]
needs: numpy
"""
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True, rms_norm_eps=1e-5),
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                           max_position_embeddings=2048, rope_theta=10000.0,
                           tie_word_embeddings=False, rms_norm_eps=1e-5),
}
FIXTURE = Path(__file__).resolve().parent.parent / "tests/data/models/llama"


def bf16_bytes(rng, shape, std=0.02, ones=False):
    a = np.ones(shape, np.float32) if ones else rng.standard_normal(shape, np.float32) * std
    bits = a.view(np.uint32)
    # round to nearest even, as torch does
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16).tobytes()


def tensors(c):
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    yield "model.embed_tokens.weight", (v, h), False
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", (h,), True
        yield p + "self_attn.q_proj.weight", (h, h), False
        yield p + "self_attn.k_proj.weight", (kv, h), False
        yield p + "self_attn.v_proj.weight", (kv, h), False
        yield p + "self_attn.o_proj.weight", (h, h), False
        yield p + "post_attention_layernorm.weight", (h,), True
        yield p + "mlp.gate_proj.weight", (i, h), False
        yield p + "mlp.up_proj.weight", (i, h), False
        yield p + "mlp.down_proj.weight", (h, i), False
    yield "model.norm.weight", (h,), True
    if not c["tie_word_embeddings"]:
        yield "lm_head.weight", (v, h), False


def write(out: Path, name: str):
    c = dict(SHAPES[name])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    header, offset, specs = {"__metadata__": {"format": "pt"}}, 0, list(tensors(c))
    for tname, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[tname] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    hjson = json.dumps(header).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for tname, shape, ones in specs:
            f.write(bf16_bytes(rng, shape, ones=ones))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16", **c}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"]:
        shutil.copyfile(FIXTURE / f, out / f)
    print(f"wrote {out} ({offset / 1e9:.2f} GB of bf16 weights)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    for name in sys.argv[2:] or list(SHAPES):
        write(root / name, name)
