#!/usr/bin/env bash
# kiln's main job on a fresh machine: build the release binary, then show what
# it does on the model bundled in the repo (a tiny random-weight Llama whose
# numbers match transformers exactly; its text is meaningless by design).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kiln-cli
KILN=${CARGO_TARGET_DIR:-target}/release/kiln
MODEL=tests/data/models/llama
echo "== kiln inspect --model $MODEL"
"$KILN" inspect --model "$MODEL"
echo
echo "== kiln tokenize --model $MODEL --text 'Hello world'"
"$KILN" tokenize --model "$MODEL" --text "Hello world"
echo
echo "== kiln generate --model $MODEL --prompt 'Hello world' --max-new-tokens 24 --json"
"$KILN" generate --model "$MODEL" --prompt "Hello world" --max-new-tokens 24 --json
