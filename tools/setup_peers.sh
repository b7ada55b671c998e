#!/usr/bin/env bash
# Create .venv-peers: the reference implementations that the metrics
# cross-check (tests/python/test_metrics_peers.py) and the metrics benchmark
# compare halo with: DeepMind's surface-distance 0.1, MONAI 1.6.1 and
# platipy 0.7.2.
#
# Why a second environment: surface-distance 0.1 uses np.Inf, gone in
# NumPy 2, and platipy 0.7.2 pins pydicom < 3 and pandas < 3, while .venv
# carries NumPy 2 and pydicom 3. Everything is pinned in
# tools/requirements-peers.txt and installed with --no-deps.
#
# torch (MONAI needs it) is not installed again: the PyPI wheel pulls about
# 4.7 GB of CUDA packages and no CPU-only wheel is on PyPI. Instead a .pth
# file appends .venv's site-packages to the path *after* .venv-peers' own,
# so .venv-peers' NumPy, SciPy, pydicom and pandas shadow .venv's and torch
# (with sympy, filelock, fsspec, jinja2) comes from .venv. torch 2.13 works
# with NumPy 1.26 for what MONAI's metrics do.
#
# Idempotent: does nothing when the stamp matches the requirements.
# Usage: tools/setup_peers.sh   (from anywhere; needs .venv with torch)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base_venv=${HALO_VENV:-$repo/.venv}
peers=$repo/.venv-peers
reqs=$repo/tools/requirements-peers.txt
stamp=$peers/.halo-peers-stamp

if [ ! -x "$base_venv/bin/python" ]; then
    echo "setup_peers: $base_venv/bin/python not found; create .venv first" >&2
    exit 1
fi
site_base=$("$base_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
want="$(sha256sum "$reqs" | cut -d' ' -f1) $site_base"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$peers/bin/python" -c 'import surface_distance, monai, torch, platipy' 2>/dev/null; then
    echo "setup_peers: $peers is up to date"
    exit 0
fi

base_python=$("$base_venv/bin/python" -c 'import sys; print(sys._base_executable)')
if [ ! -x "$peers/bin/python" ]; then
    "$base_python" -m venv "$peers"
fi
site_peers=$("$peers/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# Install without .venv on the path, so pip sees only .venv-peers.
rm -f "$site_peers/zz_halo_base_venv.pth" "$stamp"
"$peers/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$reqs"
echo "$site_base" > "$site_peers/zz_halo_base_venv.pth"

"$peers/bin/python" - <<'PY'
import numpy, torch, monai, surface_distance
import platipy.imaging.label.comparison  # noqa: F401
assert numpy.__version__.startswith("1."), numpy.__version__
t = torch.as_tensor(numpy.ones((2, 2), bool))
assert int(t.sum()) == 4
print(f"setup_peers: numpy {numpy.__version__}, torch {torch.__version__}, monai {monai.__version__}")
PY
echo "$want" > "$stamp"
