#!/usr/bin/env bash
# The main job on the embedded samples (run by `make demo` after the build):
# segment the phantom MR series with the five-member sample ensemble and
# write what a planning system imports.
set -euo pipefail
cd "$(dirname "$0")/.."
halo=target/release/halo
out=demo-out

$halo segment --model samples/model --series samples/series --out "$out" --force \
  --band 0.1 --nifti --threads 1

echo
echo "Outputs in $out/:"
echo "  rtstruct.dcm               ensemble contours (Prostate, Rectum) and U>=0.1 bands"
echo "  uncertainty-Prostate/      PT series: uncertainty on a fixed 0 to 0.5 scale"
echo "  uncertainty-Rectum/        PT series, likewise"
echo "  report.json                volumes, uncertain volumes, mean uncertainty, timings"
echo "  *.nii.gz                   labels, probabilities and uncertainty for research"
python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for s in r.get("structures", []):
    print(f"  {s.get('name', '?'):<10} volume {s.get('volume_cm3', float('nan')):7.2f} cm3, "
          f"uncertain (>= 0.1) {s.get('uncertain_volume_cm3', float('nan')):6.2f} cm3")
PY
