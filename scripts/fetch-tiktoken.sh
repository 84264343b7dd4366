#!/usr/bin/env bash
# Fetches OpenAI's tiktoken rank files (cl100k_base, o200k_base) without
# reaching openaipublic.blob.core.windows.net: the npm package js-tiktoken
# (MIT) ships the same ranks in a compact form, which this script expands back
# into the standard `.tiktoken` format and checks against the SHA-256 that the
# `tiktoken` Python package pins, so the result is byte-identical to OpenAI's.
# Usage: scripts/fetch-tiktoken.sh DIR   (files land in DIR/<name>.tiktoken)
# kiln itself downloads the files from OpenAI on first use; this is for
# machines that cannot reach it (CI, the tests).
set -euo pipefail
dest="${1:?usage: fetch-tiktoken.sh DIR}"
mkdir -p "$dest"
declare -A want=(
    [cl100k_base]=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7
    [o200k_base]=446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d
)
missing=()
for name in "${!want[@]}"; do
    [ -s "$dest/$name.tiktoken" ] || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] && exit 0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching tiktoken ranks (${missing[*]}) from npm js-tiktoken…" >&2
(cd "$tmp" && npm pack --silent js-tiktoken@1.0.21 >/dev/null && tar xzf js-tiktoken-1.0.21.tgz)
for name in "${missing[@]}"; do
    # Each line of `bpe_ranks` is "! <first rank> <base64 token> <base64 token> …"
    # with consecutive ranks.
    node --input-type=module - "$tmp/package/dist/ranks/$name.js" "$dest/$name.tiktoken.part" <<'JS'
import fs from 'fs';
const [source, target] = process.argv.slice(2);
const { default: ranks } = await import(source);
const out = [];
for (const line of ranks.bpe_ranks.split('\n').filter(Boolean)) {
  const [, first, ...tokens] = line.split(' ');
  const offset = Number.parseInt(first, 10);
  tokens.forEach((token, i) => out.push(`${token} ${offset + i}\n`));
}
fs.writeFileSync(target, out.join(''));
JS
    have="$(sha256sum "$dest/$name.tiktoken.part" | cut -d' ' -f1)"
    if [ "$have" != "${want[$name]}" ]; then
        echo "$name: checksum mismatch ($have, expected ${want[$name]})" >&2
        rm -f "$dest/$name.tiktoken.part"
        exit 1
    fi
    mv "$dest/$name.tiktoken.part" "$dest/$name.tiktoken"
done
