#!/usr/bin/env bash
# Regenerates include/halo.h from ffi/src with the pinned cbindgen.
# With --check, writes nothing and fails when the committed header differs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.cache/cargo/bin/cbindgen
[[ -x $bin ]] || bash tools/setup.d/10-cbindgen.sh
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
$bin --quiet --config ffi/cbindgen.toml --crate halo-ffi --output "$tmp" ffi
if [[ ${1:-} == --check ]]; then
  if ! diff -u include/halo.h "$tmp"; then
    echo "include/halo.h is stale: run tools/gen_header.sh and commit it" >&2
    exit 1
  fi
  echo "include/halo.h is up to date" >&2
else
  cp "$tmp" include/halo.h
fi
