#!/usr/bin/env python3
"""sentence-transformers baseline for kiln's embedding benchmark.

python3 scripts/bench-embed.py MODEL_DIR TEXTS.jsonl [N] [REPEATS]
Same texts as crates/kiln-models/examples/embed_bench.rs (the first N `text`
fields), batch_size 32, torch on 2 threads; prints embeddings/s per repeat
and the median. Needs `pip install sentence-transformers` (benchmark only).
"""
import json
import statistics
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    torch.set_num_threads(2)
    texts = [json.loads(l).get("text", "") for l in open(path)][:n]
    model = SentenceTransformer(model_dir, device="cpu")
    rates = []
    for r in range(repeats):
        t = time.time()
        model.encode(texts, batch_size=32)
        rate = len(texts) / (time.time() - t)
        print(f"repeat {r}: {rate:.1f} embeddings/s")
        rates.append(rate)
    print(f"sentence-transformers median {statistics.median(rates):.1f} embeddings/s")


if __name__ == "__main__":
    main()
