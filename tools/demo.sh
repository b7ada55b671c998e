#!/usr/bin/env bash
# The main job on the embedded samples (run by `make demo` after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
halo=target/release/halo

echo "== halo inspect: the sample series =="
$halo inspect tests/dicom-corpus/good
