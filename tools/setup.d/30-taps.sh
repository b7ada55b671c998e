#!/usr/bin/env bash
# The TAPS prostate model as a halo model folder, .cache/models/taps
# (tools/import_taps.py; not committed). Rebuilt only when the importer or
# its pins change: the folder carries a stamp of both.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=.cache/models/taps
want=$(cat tools/import_taps.py tools/requirements-taps.txt | sha256sum | cut -d' ' -f1)
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$want" ]]; then
  echo "setup: $out is up to date" >&2
  exit 0
fi
echo "setup: importing the TAPS model into $out (about a minute)" >&2
.venv/bin/python tools/import_taps.py --out "$out"
echo "$want" >"$out/.stamp"
