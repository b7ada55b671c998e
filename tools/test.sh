#!/usr/bin/env bash
# Every test suite, in order (run by `make test` after set-up and build).
# Stops at the first failing suite and says which.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1

# dcmtk's storescp, not pynetdicom's same-named script in .venv/bin.
for candidate in $(which -a storescp 2>/dev/null); do
  case $candidate in "$PWD"/.venv*) ;; *) export HALO_STORESCP=$candidate; break ;; esac
done

suite() { printf '\n=== %s ===\n' "$1" >&2; }

suite "format and lint"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings

suite "Rust tests"
cargo test --release --workspace

suite "Python oracle tests"
.venv/bin/python -m pytest -q tests/python --ignore=tests/python/test_metrics_peers.py

suite "Metrics against surface-distance, MONAI and platipy"
.venv-peers/bin/python -m pytest -q tests/python/test_metrics_peers.py

suite "C header is current"
bash tools/gen_header.sh --check

suite "C ABI tests under valgrind"
bash tools/test_c.sh

suite "C# bridge under Mono (NUnit)"
bash tools/test_csharp.sh
