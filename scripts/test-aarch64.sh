#!/usr/bin/env bash
# kiln-models built for aarch64 and its whole test suite run under user-mode emulation on an
# x86_64 machine: the NEON kernels against the portable ones bit for bit, and the GGUF/model
# goldens through them (about 4 minutes of tests on a 2-core VM, plus the cross build; the
# real-model tests are left to the native run):
#   scripts/test-aarch64.sh [LIB_TEST_FILTER]     e.g. `kernels`: only the library's kernel tests
# Installs what it needs (idempotent): rustup's aarch64-unknown-linux-gnu standard library, and
# Debian's cross linker, aarch64 C library and qemu-user. Builds into $CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
FILTER="${1:-}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  # rustup's server is not one of the registries every CI machine reaches: without it, say so
  # loudly and skip (the x86_64 tests still ran), rather than fail the whole test command.
  if ! rustup target add aarch64-unknown-linux-gnu; then
    echo "*** aarch64 tests SKIPPED: rustup could not install aarch64-unknown-linux-gnu ***" >&2
    exit 0
  fi
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross qemu-user >/dev/null
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# The real-model tests (SmolLM2, gemma-3 through whole prompts) take many minutes emulated; they
# run natively in `cargo test`. Without KILN_MODELS they say so and return.
unset KILN_MODELS
if [ -n "$FILTER" ]; then
  cargo test --locked -p kiln-models --lib --target aarch64-unknown-linux-gnu -- "$FILTER"
else
  cargo test --locked -p kiln-models --target aarch64-unknown-linux-gnu
fi
