#!/usr/bin/env python3
"""How far reduced-precision products move all-MiniLM-L6-v2's embeddings.

python3 scripts/embed-precision.py MODEL_DIR TEXTS.jsonl [N]
Runs sentence-transformers in f32, then again with every Linear layer's
inputs and weights rounded as a faster kernel would see them, and prints the
largest |Δ| of any embedding value (issue 7 asks for ≤ 1e-4) and the lowest
cosine. Modes: bf16 (both operands), bf16-weights (weights only), fp16 (both),
int8 (per-row symmetric, both) and bf16x3 (each operand split into a high and
a low bf16 part, three products: what bf16 dot-product instructions would need
to stay within 1e-4). Benchmark/analysis only; needs sentence-transformers.
"""
import json
import sys

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer

ORIGINAL = F.linear


def rounded(mode):
    def bf(t):
        return t.bfloat16().float()

    def linear(x, w, b=None):
        if mode == "bf16":
            y = ORIGINAL(bf(x), bf(w))
        elif mode == "bf16-weights":
            y = ORIGINAL(x, bf(w))
        elif mode == "fp16":
            y = ORIGINAL(x.half().float(), w.half().float())
        elif mode == "int8":
            sx = x.abs().amax(-1, keepdim=True) / 127
            sw = w.abs().amax(-1, keepdim=True) / 127
            y = ORIGINAL(torch.round(x / sx) * sx, torch.round(w / sw) * sw)
        else:  # bf16x3
            xh, wh = bf(x), bf(w)
            xl, wl = bf(x - xh), bf(w - wh)
            y = ORIGINAL(xh, wh) + ORIGINAL(xh, wl) + ORIGINAL(xl, wh)
        return y if b is None else y + b

    return linear


def main():
    model_dir, path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    torch.set_num_threads(2)
    texts = [json.loads(l).get("text", "") for l in open(path)][:n]
    model = SentenceTransformer(model_dir, device="cpu")
    reference = model.encode(texts, batch_size=32, convert_to_tensor=True)
    for mode in ["bf16", "bf16-weights", "fp16", "int8", "bf16x3"]:
        F.linear = rounded(mode)
        try:
            got = model.encode(texts, batch_size=32, convert_to_tensor=True)
        finally:
            F.linear = ORIGINAL
        delta = (got - reference).abs().max().item()
        cosine = (got * reference).sum(-1).min().item()
        print(f"{mode:13} max|Δ| {delta:.2e}  lowest cosine {cosine:.7f}")


if __name__ == "__main__":
    main()
