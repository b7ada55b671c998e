#!/usr/bin/env bash
# .venv-peers: the metrics' reference implementations (surface-distance,
# MONAI, platipy), which need numpy below 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/setup_peers.sh
