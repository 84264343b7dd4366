#!/usr/bin/env bash
# Regenerates tests/data/ir/cacm/minilm.f16: all-MiniLM-L6-v2 embeddings of
# the 3,204 CACM abstracts (f16, corpus order), so the CI tests of HNSW
# recall and dense MAP on CACM need not embed the corpus (~3-4 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${KILN_MODELS:-$HOME/.cache/kiln-models}"
cargo run --release -q -p kiln-models --example embed_jsonl -- \
  "$MODELS/all-MiniLM-L6-v2" tests/data/ir/cacm/corpus.jsonl tests/data/ir/cacm/minilm.f16
