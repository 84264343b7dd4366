#!/usr/bin/env bash
# Files written by `kiln quantize` load in llama.cpp and give the same greedy
# text as kiln. Builds llama-simple from the llama-cpp-python sdist (as
# scripts/bench-vs-llamacpp.sh does) under WORK_DIR.
#   scripts/check-quantize-llamacpp.sh WORK_DIR [MODEL_DIR ...]   (default: the bundled fixtures)
set -euo pipefail
WORK=$(realpath -m "${1:?usage: $0 WORK_DIR [MODEL_DIR ...]}"); shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODELS=("${@:-$ROOT/tests/data/models/llama_k $ROOT/tests/data/models/llama $ROOT/tests/data/models/qwen2 $ROOT/tests/data/models/qwen3}")
LLAMA=$WORK/llama_cpp_python-0.3.36/vendor/llama.cpp
if [ ! -x "$LLAMA/build/bin/llama-simple" ]; then
  bash "$ROOT/scripts/bench-vs-llamacpp.sh" "$WORK" none >/dev/null 2>&1 || true
  cmake --build "$LLAMA/build" --target llama-simple -j2
fi
(cd "$ROOT" && cargo build --release -q -p kiln-cli)
KILN=${CARGO_TARGET_DIR:-$ROOT/target}/release/kiln
PROMPT="Hello world"
pass=0; fail=0
for dir in ${MODELS[@]}; do
  for t in F16 Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K; do
    out="$WORK/kiln-$(basename "$dir")-$t.gguf"
    "$KILN" quantize --model "$dir" --type "$t" -o "$out" > /dev/null
    # llama-simple prints each token's raw bytes; kiln prints the decoded text.
    # Compare both as UTF-8 with invalid bytes collapsed to one U+FFFD per run.
    norm='import re,sys; t=sys.stdin.buffer.read().decode("utf-8","replace"); t=re.sub("^(<s> |<[|]endoftext[|]>)","",t); print(re.sub("\ufffd+","\ufffd",t).replace("\n"," "))'
    theirs=$("$LLAMA/build/bin/llama-simple" -m "$out" -n 16 "$PROMPT" 2>/dev/null | python3 -c "$norm")
    ours=$( { printf '%s' "$PROMPT"; "$KILN" generate --model "$out" --prompt "$PROMPT" --max-new-tokens 16 --min-new-tokens 16; } | python3 -c "$norm")
    if [ "$theirs" = "$ours" ]; then pass=$((pass+1)); r=same; else fail=$((fail+1)); r=DIFFERENT; fi
    printf '%-10s %-7s %s\n  llama.cpp: %q\n  kiln:      %q\n' "$(basename "$dir")" "$t" "$r" "$theirs" "$ours"
  done
done
echo "$pass same, $fail different"
