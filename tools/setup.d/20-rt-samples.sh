#!/usr/bin/env bash
# Real RTSTRUCTs from PyPI source distributions, for the reader's tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/fetch_rt_samples.sh
