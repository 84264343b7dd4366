#!/usr/bin/env bash
# kiln bench vs llama.cpp's llama-bench on the same weights (same run, same machine).
#
#   scripts/bench-vs-llamacpp.sh WORK_DIR [MODEL ...]     MODEL: smollm2-135m | tinyllama-1.1b
#   TYPES="F16 Q8_0 Q4_0 Q4_K_M" (default) picks the GGUF types; REAL_MODELS=DIR adds the real
#   SmolLM2 Q4_1 and gemma-3 Q4_K_M files from scripts/fetch-models.sh; ROUNDS=N alternates the
#   two programs N times per file.
#
# Steps (each skipped when its output exists): fetch llama-cpp-python's sdist from PyPI (it vendors
# llama.cpp), build llama-bench with GGML_NATIVE=OFF, AVX2/FMA/F16C on, AVX-512/VNNI/BF16 on only when
# /proc/cpuinfo lists them, and AMX always off (AMX is advertised but faults on some of these VMs); write random-weight bf16 checkpoints with the models' real shapes; convert them to
# F16 GGUF with llama.cpp's own converter; then run both benchmarks with 2 threads, prefill 512 and
# decode 128 tokens (both from an empty context — kiln: after a one-token prompt — and after 512
# tokens: llama.cpp `-d 512`, kiln after its 512-token prompt), 3 repetitions. Needs: python3 with pip (installs cmake, ninja, numpy, torch,
# transformers, sentencepiece into the user's Python).
set -euo pipefail
WORK=$(realpath -m "${1:?usage: $0 WORK_DIR [MODEL ...]}"); shift
MODELS=("${@:-smollm2-135m tinyllama-1.1b}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"; cd "$WORK"
LLAMA=llama_cpp_python-0.3.36/vendor/llama.cpp
flag() { grep -qw "$1" /proc/cpuinfo && echo ON || echo OFF; }
if [ ! -x "$LLAMA/build/bin/llama-bench" ]; then
  pip install -q cmake ninja numpy torch transformers sentencepiece protobuf
  pip download -q --no-deps llama-cpp-python==0.3.36 -d .
  tar xzf llama_cpp_python-0.3.36.tar.gz
  cmake -S "$LLAMA" -B "$LLAMA/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512="$(flag avx512f)" \
    -DGGML_AVX512_VNNI="$(flag avx512_vnni)" -DGGML_AVX512_BF16="$(flag avx512_bf16)" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
    -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF
  cmake --build "$LLAMA/build" --target llama-bench -j2
fi
[ -x "$LLAMA/build/bin/llama-quantize" ] || cmake --build "$LLAMA/build" --target llama-quantize -j2
TYPES=(${TYPES:-F16 Q8_0 Q4_0 Q4_K_M})
# Peak RSS (MiB) of a command, from GNU time.
rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.1f MiB", $1/1024}'; }
# ROUNDS=N (default 1) alternates the llama.cpp and kiln measurements N times per file: on a
# shared VM whose speed drifts within minutes, only alternated pairs give fair ratios.
bench_file() { # bench_file GGUF
  for round in $(seq "${ROUNDS:-1}"); do
    echo "== $(basename "$1"): llama.cpp (2 threads), round $round"
    "$LLAMA/build/bin/llama-bench" -m "$1" -t 2 -p 512 -n 128 -r 3 -o md
    # Decode after a 512-token context, as kiln bench measures it (tg128 @ d512).
    "$LLAMA/build/bin/llama-bench" -m "$1" -t 2 -p 0 -n 128 -d 512 -r 3 -o md | grep -E "tg128"
    if [ "$round" = 1 ]; then
      echo "   llama.cpp peak RSS (tg128): $(rss "$LLAMA/build/bin/llama-bench" -m "$1" -t 2 -p 0 -n 128 -r 1)"
      # The same work kiln bench does (a 512-token prompt, then 128 tokens): a 640-token context.
      echo "   llama.cpp peak RSS (pp512 + tg128): $(rss "$LLAMA/build/bin/llama-bench" -m "$1" -t 2 -p 512 -n 128 -r 1)"
    fi
    echo "== $(basename "$1"): kiln (2 threads), round $round"
    "$KILN" bench --model "$1" --prompt-tokens 512 --decode-tokens 128 --repetitions 3 || echo "   kiln could not run it"
    # Decode from an empty context (a one-token prompt), as llama-bench's plain tg128.
    "$KILN" bench --model "$1" --prompt-tokens 1 --decode-tokens 128 --repetitions 3 | grep -E "^decode" \
      | sed 's/^decode /decode @ d0/' || echo "   kiln could not run it"
  done
}
(cd "$ROOT" && cargo build --release -q -p kiln-cli)
KILN=${CARGO_TARGET_DIR:-$ROOT/target}/release/kiln
for m in ${MODELS[@]}; do
  [ -f "ckpt/$m/model.safetensors" ] || python3 "$ROOT/scripts/make_random_checkpoints.py" ckpt "$m"
  [ -f "$m-f16.gguf" ] || PYTHONPATH="$LLAMA/gguf-py${PYTHONPATH:+:$PYTHONPATH}" python3 "$LLAMA/convert_hf_to_gguf.py" \
    "ckpt/$m" --outtype f16 --outfile "$m-f16.gguf" > /dev/null 2>&1
  for t in "${TYPES[@]}"; do
    f="$m-f16.gguf"
    if [ "$t" != F16 ]; then
      f="$m-$t.gguf"
      [ -f "$f" ] || "$LLAMA/build/bin/llama-quantize" "$m-f16.gguf" "$f" "$t" 2 > /dev/null 2>&1
    fi
    bench_file "$f"
  done
done
if [ -n "${REAL_MODELS:-}" ]; then
  for f in "$REAL_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" "$REAL_MODELS/gemma-3-270m-q4_k_m.gguf"; do
    [ -f "$f" ] && bench_file "$f"
  done
fi
