#!/usr/bin/env python3
"""hnswlib baseline for kiln's ANN benchmark (crates/kiln-store/examples/ann_bench.rs).

Same data (xorshift64* uniform vectors, normalised), same M / ef_construction,
recall@10 against exact search and single-thread queries/s at several ef.
Usage: python3 scripts/bench-ann.py [N] [DIM] [QUERIES] [M] [EF_CONSTRUCTION]
Needs `pip install hnswlib numpy` (a benchmark tool, not a kiln dependency).
HNSWLIB_INDEX=FILE saves the built index there, or loads it when it exists.
"""
import os
import sys
import time

import hnswlib
import numpy as np

M64 = (1 << 64) - 1


def data(n, dim, seed):
    # xorshift64* vectorised over independent streams would change the
    # sequence; a plain loop in numpy-friendly chunks keeps it identical.
    out = np.empty(n * dim, dtype=np.float32)
    s = seed
    for i in range(n * dim):
        s ^= s >> 12
        s ^= (s << 25) & M64
        s ^= s >> 27
        r = (s * 0x2545F4914F6CDD1D) & M64
        out[i] = (r >> 40) / float(1 << 24) - 0.5
    x = out.reshape(n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    a = [int(v) for v in sys.argv[1:]]
    n, dim, nq, m, efc = (a + [100_000, 384, 1000, 16, 200][len(a):])[:5]
    base, queries = data(n, dim, 42), data(nq, dim, 4242)
    t = time.time()
    index = hnswlib.Index(space="ip", dim=dim)
    cache = os.environ.get("HNSWLIB_INDEX")
    if cache and os.path.exists(cache):
        index.load_index(cache, max_elements=n)
        print(f"index loaded from {cache}")
    else:
        index.init_index(max_elements=n, M=m, ef_construction=efc, random_seed=100)
        index.set_num_threads(2)
        index.add_items(base, np.arange(n))
        print(f"build n={n} dim={dim} M={m} efC={efc}: {time.time() - t:.1f} s (2 threads)")
        if cache:
            index.save_index(cache)
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    index.set_num_threads(1)
    for ef in [40, 100, 200, 400, 800, 1200, 1600, 2400]:
        index.set_ef(ef)
        t = time.time()
        labels = np.stack([index.knn_query(q, k=10)[0][0] for q in queries])
        secs = time.time() - t
        found = sum(len(set(l) & set(tr)) for l, tr in zip(labels, truth))
        print(f"ef={ef:4}  recall@10={found / (10 * nq):.4f}  qps={nq / secs:.0f}")


if __name__ == "__main__":
    main()
