#!/usr/bin/env bash
# Installs the client-side tools the server tests drive kiln with (idempotent):
#   - the official `openai` Python package and `jsonschema`, into $KILN_TOOLS/py (PYTHONPATH);
#   - torch, transformers and peft, into $KILN_TOOLS/ml (unless importable already);
#   - playwright-core (npm, pinned in tests/browser/package-lock.json);
#   - Debian's chromium, for the headless browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${KILN_TOOLS:-$HOME/.cache/kiln-test-tools}"
mkdir -p "$TOOLS"
if ! PYTHONPATH="$TOOLS/py" python3 -c "import openai, jsonschema" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS/py" "openai>=1.50,<3" "jsonschema>=4,<5"
fi
# torch + transformers + peft for the PEFT round-trip test (PyPI's Linux torch
# wheels are the CUDA builds: ~3 GB with their nvidia-* dependencies).
if ! PYTHONPATH="$TOOLS/ml" python3 -c "import torch, transformers, peft" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS/ml" \
    "torch==2.15.0" "transformers==5.24.0" "peft==0.21.2"
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  as_root apt-get update -qq && as_root apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
if ! command -v chromium >/dev/null; then
  as_root apt-get update -qq && as_root apt-get install -y -qq chromium >/dev/null
fi
