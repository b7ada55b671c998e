#!/usr/bin/env bash
# cbindgen, pinned, for generating and checking include/halo.h.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=0.29.4
bin=.cache/cargo/bin/cbindgen
if [[ -x $bin ]] && [[ $($bin --version) == "cbindgen $VERSION" ]]; then
  exit 0
fi
echo "setup: building cbindgen $VERSION (about a minute)" >&2
cargo install --quiet --locked --root .cache/cargo cbindgen --version "=$VERSION"
