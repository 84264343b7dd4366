#!/usr/bin/env bash
# Serving benchmark: kiln serve vs llama.cpp's llama-server -np N on the same GGUF, same run.
#
#   scripts/bench-serve.sh WORK_DIR [GGUF]
#
# WORK_DIR is the folder scripts/bench-vs-llamacpp.sh fills (llama.cpp sdist build and the
# random-weight SmolLM2-135M-shaped GGUFs); GGUF defaults to WORK_DIR/smollm2-135m-Q8_0.gguf.
# Both servers get 2 threads and room for 32 sequences of 512 tokens; the load generator
# (scripts/serve_load.py) runs 1, 8 and 32 concurrent streams of 128 greedy tokens, 3 rounds each.
set -euo pipefail
WORK=$(realpath "${1:?usage: $0 WORK_DIR [GGUF]}")
GGUF=$(realpath "${2:-$WORK/smollm2-135m-Q8_0.gguf}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA=$WORK/llama_cpp_python-0.3.36/vendor/llama.cpp
[ -x "$LLAMA/build/bin/llama-server" ] || cmake --build "$LLAMA/build" --target llama-server -j2
(cd "$ROOT" && cargo build --release -q -p kiln-cli)
KILN=${CARGO_TARGET_DIR:-$ROOT/target}/release/kiln
STREAMS=${STREAMS:-1 8 32}
ROUNDS=${ROUNDS:-3}
wait_up() { for _ in $(seq 600); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.2; done; return 1; }
# A server left on a port (e.g. by an interrupted run) would be measured instead of the new one.
for port in 18181 18182; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/health"; then echo "port $port is busy: stop what listens there" >&2; exit 1; fi
done
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT

echo "== llama-server -np 32 -t 2 ($(basename "$GGUF"))"
"$LLAMA/build/bin/llama-server" -m "$GGUF" -np 32 -c $((32 * 512)) -t 2 --port 18181 \
  --log-disable >/dev/null 2>&1 &
PID=$!
wait_up http://127.0.0.1:18181
python3 "$ROOT/scripts/serve_load.py" http://127.0.0.1:18181 model --streams $STREAMS --rounds "$ROUNDS"
kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true

echo "== kiln serve --max-sequences 32 (RAYON_NUM_THREADS=2)"
RAYON_NUM_THREADS=2 "$KILN" serve --model "bench=$GGUF" --max-sequences 32 --port 18182 >/dev/null 2>&1 &
PID=$!
wait_up http://127.0.0.1:18182
python3 "$ROOT/scripts/serve_load.py" http://127.0.0.1:18182 bench --streams $STREAMS --rounds "$ROUNDS"
kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true
