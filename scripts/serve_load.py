"""Load generator for OpenAI-compatible servers (kiln serve, llama-server).

    python3 scripts/serve_load.py BASE_URL MODEL --streams 1 8 32 --tokens 128 --rounds 3

For each concurrency N, runs N simultaneous streaming /v1/completions
requests (distinct prompts, greedy, `ignore_eos`, `max_tokens` fixed) and
reports aggregate output tokens/s (all tokens / wall time of the round) and
time to first token (first token chunk) p50/p99 over all requests;
with several rounds, the median round and the spread. Prints one JSON line
per concurrency. Standard library only.
"""

import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse

# The nonce comes first so that no server can reuse a cached prompt prefix
# from an earlier request: every request prefills its whole prompt.
PROMPT = ("[{nonce}] Here is a short story about a lighthouse keeper named {i} who finds a "
          "message in a bottle on a stormy night, and what the message says:")


def one_request(base, model, i, tokens, out):
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    body = json.dumps({
        "model": model, "prompt": PROMPT.format(i=i, nonce=random.getrandbits(48)), "max_tokens": tokens, "temperature": 0,
        "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True},
    })
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    first, first_data, chunks, usage = None, None, 0, None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        if first_data is None:
            first_data = time.perf_counter() - start
        data = line[6:]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            usage = chunk["usage"]
        for c in chunk.get("choices", []):
            # One chunk per token (its text may be empty: random weights).
            if "text" in c and c.get("finish_reason") is None:
                chunks += 1
                if first is None:
                    first = time.perf_counter() - start
    conn.close()
    # A stream whose only text came with its finish_reason: its first data line.
    if first is None:
        first = first_data
    out[i] = {"ttft": first, "tokens": (usage or {}).get("completion_tokens", tokens), "chunks": chunks}


def round_at(base, model, n, tokens):
    out = [None] * n
    threads = [threading.Thread(target=one_request, args=(base, model, i, tokens, out)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if any(o is None for o in out):
        raise RuntimeError("a request failed")
    total = sum(o["tokens"] for o in out)
    return total / wall, [o["ttft"] for o in out]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("model")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    round_at(a.base, a.model, 1, 8)  # warm-up
    for n in a.streams:
        rates, ttfts, p50s, p99s = [], [], [], []
        for _ in range(a.rounds):
            rate, tt = round_at(a.base, a.model, n, a.tokens)
            rates.append(rate)
            ttfts += tt
            p50s.append(pct(tt, 50))
            p99s.append(pct(tt, 99))
        print(json.dumps({
            "streams": n,
            "tokens_per_s_median": round(statistics.median(rates), 1),
            "tokens_per_s_min": round(min(rates), 1),
            "tokens_per_s_max": round(max(rates), 1),
            "ttft_p50_s": round(pct(ttfts, 50), 3),
            "ttft_p99_s": round(pct(ttfts, 99), 3),
            "ttft_p99_rounds_s": [round(x, 3) for x in p99s],
        }), flush=True)


if __name__ == "__main__":
    main()
