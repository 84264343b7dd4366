#!/usr/bin/env bash
# Training speed and memory: LoRA r=16 on every linear layer of a model,
# batch 1 of SEQ tokens, kiln (`kiln tune`, f32 base and QLoRA) vs PEFT +
# torch on the CPU, same machine, same run.
# usage: scripts/bench-tune.sh MODEL_DIR [SEQ=512] [STEPS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$1"; SEQ="${2:-512}"; STEPS="${3:-5}"
KILN="${KILN_BIN:-target/release/kiln}"
[ -x "$KILN" ] || cargo build --release -p kiln-cli
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
python3 - "$WORK/data.jsonl" "$STEPS" <<'PY'
import json, random, sys
random.seed(0)
words = ["alpha", "river", "stone", "quiet", "number", "garden", "light", "seven", "market", "cloud"]
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(json.dumps({"text": " ".join(random.choice(words) + str(random.randint(0, 999)) for _ in range(600))}) + "\n")
PY
run_kiln() {
  local label="$1"; shift
  /usr/bin/time -v "$KILN" tune -m "$MODEL" --data "$WORK/data.jsonl" -o "$WORK/$label" \
    --rank 16 --alpha 32 --batch-size 1 --max-seq-len "$SEQ" --quiet "$@" 2> "$WORK/$label.time" >/dev/null
  python3 - "$WORK/$label/metrics.jsonl" "$WORK/$label.time" "$label" <<'PY'
import json, re, statistics, sys
rates = [json.loads(l)["tokens_per_s"] for l in open(sys.argv[1])][1:]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1)) / 1024
print(f"kiln {sys.argv[3]} tokens/s median {statistics.median(rates):.1f} (steps {[round(r, 1) for r in rates]}), peak RSS {rss:.0f} MiB")
PY
}
run_kiln f32
run_kiln qlora-q4_k --quantize q4_k
run_kiln qlora-q8_0 --quantize q8_0
python3 scripts/bench-tune-peft.py "$MODEL" "$SEQ" "$STEPS"
