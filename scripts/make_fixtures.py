#!/usr/bin/env python3
"""Make tiny random-weight fixtures with transformers' goldens, in the layout of the shared
fixtures (see tests/data/README.md): rope-scaling variants and extra families.

usage: scripts/make_fixtures.py OUT_DIR [NAME ...]      (needs: torch, transformers)

Each fixture: config.json, model.safetensors (f32), the byte-level BPE tokenizer of the qwen2 fixture,
golden.json + golden.safetensors with, per prompt, logits at all positions, 24 greedy ids with EOS
suppressed (min_new_tokens=24) and the raw logits of each step; beam search (4 beams, 2 returned,
10 tokens); and the chat template rendering.
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
TOK_SRC = ROOT / "tests/data/models/qwen2"
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             vocab_size=1000, bos_token_id=0, eos_token_id=0, pad_token_id=0,
             tie_word_embeddings=False)
LLAMA = dict(model_type="llama", num_key_value_heads=2, max_position_embeddings=256, **SMALL)

FIXTURES = {
    # RoPE scaling as hub checkpoints write it (older `rope_scaling` layout and transformers-5 `rope_parameters`).
    "llama_rope_linear": dict(LLAMA, rope_scaling={"rope_type": "linear", "factor": 4.0}),
    "llama_rope_dynamic": dict(LLAMA, max_position_embeddings=16,
                               rope_scaling={"type": "dynamic", "factor": 2.0}),
    "llama_rope_llama3": dict(LLAMA, rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                              "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 16}),
    "llama_rope_yarn": dict(LLAMA, max_position_embeddings=64,
                            rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                          "original_max_position_embeddings": 16}),
    "phi3_longrope": dict(model_type="phi3", num_key_value_heads=2, max_position_embeddings=64,
                          original_max_position_embeddings=16, **SMALL,
                          rope_scaling={"type": "longrope",
                                        "short_factor": [1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0],
                                        "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]}),
    # More families.
    "phi": dict(model_type="phi", max_position_embeddings=256, partial_rotary_factor=0.5,
                hidden_act="gelu_new", qk_layernorm=False, **SMALL),
    "starcoder2": dict(model_type="starcoder2", num_key_value_heads=2, max_position_embeddings=256,
                       sliding_window=8, use_bias=True, hidden_act="gelu_pytorch_tanh", **SMALL),
    "falcon_new_arch": dict(model_type="falcon", new_decoder_architecture=True, num_kv_heads=2,
                            parallel_attn=True, bias=False, max_position_embeddings=256,
                            **{k: v for k, v in SMALL.items() if k != "intermediate_size"}),
    "falcon_per_head": dict(model_type="falcon", multi_query=False, parallel_attn=True, bias=True,
                            max_position_embeddings=256,
                            **{k: v for k, v in SMALL.items() if k != "intermediate_size"}),
    "stablelm": dict(model_type="stablelm", num_key_value_heads=2, max_position_embeddings=256,
                     partial_rotary_factor=0.25, use_qkv_bias=True, **SMALL),
}
CHAT = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of England?"},
        {"role": "assistant", "content": "London."},
        {"role": "user", "content": "And of Korea?"}]


def randomize(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def make(out: Path, name: str):
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(TOK_SRC / f, d / f)
    kwargs = dict(FIXTURES[name])
    model_type = kwargs.pop("model_type")
    config = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
    randomize(model)
    model.save_pretrained(d, safe_serialization=True)
    tok = AutoTokenizer.from_pretrained(d)
    prompts = json.loads((TOK_SRC / "golden.json").read_text())["prompts"]
    tensors, golden = {}, {"arch": model_type, "reference": "transformers (eager attention, float32)",
                           "prompts": []}
    with torch.no_grad():
        for i, p in enumerate(prompts):
            # A fresh model per prompt: dynamic RoPE keeps the longest length it has
            # seen in module state, which would leak from one prompt into the next.
            model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
            ids = tok(p["text"], return_tensors="pt").input_ids
            tensors[f"logits.{i}"] = model(ids).logits[0].contiguous()
            out = model.generate(ids, max_new_tokens=24, min_new_tokens=24, do_sample=False,
                                 output_logits=True, return_dict_in_generate=True, pad_token_id=0)
            new = out.sequences[0, ids.shape[1]:].tolist()
            tensors[f"greedy_step_logits.{i}"] = torch.stack([l[0] for l in out.logits]).contiguous()
            golden["prompts"].append({"text": p["text"], "input_ids": ids[0].tolist(),
                                      "logits": f"logits.{i}", "greedy_step_logits": f"greedy_step_logits.{i}",
                                      "greedy_24_new_ids": new})
        model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
        ids = tok(prompts[0]["text"], return_tensors="pt").input_ids
        beam = model.generate(ids, num_beams=4, num_return_sequences=2, max_new_tokens=10,
                              min_new_tokens=10, length_penalty=1.0, early_stopping=True,
                              do_sample=False, output_scores=True, return_dict_in_generate=True,
                              pad_token_id=0)
    golden["beam_search"] = {"prompt": 0, "num_beams": 4, "num_return_sequences": 2,
                             "max_new_tokens": 10, "min_new_tokens": 10, "length_penalty": 1.0,
                             "early_stopping": True,
                             "sequences_new_ids": [s[ids.shape[1]:].tolist() for s in beam.sequences],
                             "sequences_scores": beam.sequences_scores.tolist()}
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    golden["chat"] = {"messages": CHAT, "add_generation_prompt": True, "text": text,
                      "input_ids": tok(text, add_special_tokens=False).input_ids}
    (d / "golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1))
    save_file(tensors, d / "golden.safetensors")
    print("wrote", d)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for n in sys.argv[2:] or list(FIXTURES):
        make(Path(sys.argv[1]), n)
