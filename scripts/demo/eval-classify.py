#!/usr/bin/env python3
"""Scores a model (optionally with an adapter) on the demo's held-out
classification set: greedy `kiln generate --chat` on each sentence, exact
match of "type, topic" plus type-only and topic-only accuracy.

usage: eval-classify.py KILN MODEL TEST.jsonl [ADAPTER_DIR] > result.json"""
import json
import subprocess
import sys


def answer(kiln: str, model: str, adapter: str | None, prompt: str) -> str:
    cmd = [kiln, "generate", "--model", model, "--chat", "--prompt", prompt,
           "--max-new-tokens", "8", "--json"]
    if adapter:
        cmd += ["--adapter", adapter]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["text"]


def normalise(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.strip().strip(".").lower()


def main() -> None:
    kiln, model, test = sys.argv[1:4]
    adapter = sys.argv[4] if len(sys.argv) > 4 else None
    items = [json.loads(line) for line in open(test)]
    exact = kind = topic = 0
    samples = []
    for item in items:
        got = normalise(answer(kiln, model, adapter, item["messages"][0]["content"]))
        want = item["label"]
        exact += got == want
        got_parts = [p.strip() for p in got.split(",")]
        kind += got_parts[0] == want.split(", ")[0]
        topic += len(got_parts) > 1 and got_parts[1] == want.split(", ")[1]
        if len(samples) < 5:
            samples.append({"sentence": item["sentence"], "label": want, "output": got})
    n = len(items)
    print(json.dumps({
        "model": model, "adapter": adapter, "examples": n,
        "exact_match": exact / n, "type_accuracy": kind / n, "topic_accuracy": topic / n,
        "samples": samples,
    }, indent=2))


if __name__ == "__main__":
    main()
