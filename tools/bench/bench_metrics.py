"""Benchmark halo's full metric set against surface-distance plus platipy.

Two pairs on a 384 x 384 x 88 grid (0.5 x 0.5 x 1.5 mm): a prostate-like
ellipsoid against a shifted, reshaped one, and a large object (body-like
ellipsoid over most of the grid) against a dilated, shifted copy. For each
pair the full set is timed:

- halo: one ``halo compare --json --apl-mode platipy`` process (reading
  both NIfTI files included);
- peers: DeepMind ``surface-distance`` 0.1 (surface distances, Dice,
  Hausdorff, HD95, HD99, ASD both ways, surface Dice at 1 mm) plus platipy
  0.7.2's total and mean added path length at 1 mm, on arrays already in
  memory (reading excluded).

Values are checked equal (1e-6) before timing counts. Medians of ``--runs``
runs (at least 3). Writes its section of ``docs/benchmarks.md`` between
``<!-- metrics:begin -->`` and ``<!-- metrics:end -->``. Run with the peers'
environment, after ``cargo build --release`` and ``tools/setup_peers.sh``:

    .venv-peers/bin/python tools/bench/bench_metrics.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import surface_distance as sd
from platipy.imaging.label.comparison import compute_metric_mean_apl, compute_metric_total_apl
from scipy import ndimage

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SHAPE_ZYX = (88, 384, 384)
SPACING_ZYX = (1.5, 0.5, 0.5)
TOLERANCE_MM = 1.0
BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"


def ellipsoid(centre_mm: tuple, radii_mm: tuple) -> np.ndarray:
    """Voxels whose centres lie in the ellipsoid (mm, array order)."""
    axes = [np.arange(n) * s for n, s in zip(SHAPE_ZYX, SPACING_ZYX)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    d = sum(((g - c) / r) ** 2 for g, c, r in zip((z, y, x), centre_mm, radii_mm))
    return d <= 1.0


def make_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The two benchmark pairs as (reference, test) uint8 arrays."""
    rng = np.random.default_rng(7)
    centre = (66.0, 96.0, 96.0)
    prostate_ref = ellipsoid(centre, (20.0, 17.0, 24.0))
    prostate_test = ellipsoid((67.5, 97.0, 95.5), (18.5, 18.0, 23.0))
    # Some clinician-like local edits: a bulge and a notch.
    prostate_ref |= ellipsoid((60.0, 110.0, 100.0), (6.0, 5.0, 6.0))
    prostate_ref &= ~ellipsoid((75.0, 80.0, 90.0), (4.0, 4.0, 5.0))

    body_ref = ellipsoid((66.0, 96.0, 96.0), (60.0, 80.0, 90.0))
    body_test = ndimage.binary_dilation(body_ref, iterations=1)
    body_test = np.roll(body_test, (0, 2, -1), axis=(0, 1, 2))
    body_test &= ~(rng.random(SHAPE_ZYX) < 0.001)
    return {
        "prostate-like": (prostate_ref.astype(np.uint8), prostate_test.astype(np.uint8)),
        "large object": (body_ref.astype(np.uint8), body_test.astype(np.uint8)),
    }


def image(array: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(reversed(SPACING_ZYX)))
    return img


def run_peers(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """The full set from the peers, reference = edited, test = automatic."""
    r, t = reference.astype(bool), test.astype(bool)
    d = sd.compute_surface_distances(r, t, SPACING_ZYX)
    asd = sd.compute_average_surface_distance(d)
    ref_img, test_img = image(reference), image(test)
    return {
        "dice": sd.compute_dice_coefficient(r, t),
        "hausdorff": sd.compute_robust_hausdorff(d, 100),
        "hausdorff95": sd.compute_robust_hausdorff(d, 95),
        "hausdorff99": sd.compute_robust_hausdorff(d, 99),
        "asd_reference_to_test": asd[0],
        "asd_test_to_reference": asd[1],
        "surface_dice": sd.compute_surface_dice_at_tolerance(d, TOLERANCE_MM),
        "apl_total_mm": compute_metric_total_apl(ref_img, test_img, TOLERANCE_MM),
        "apl_mean_mm": compute_metric_mean_apl(ref_img, test_img, TOLERANCE_MM),
    }


COMPUTE_TIMES: list[float] = []


def _seconds(text: str) -> float:
    """A Rust ``Duration`` debug string (``1.2s``, ``35.1ms``, ``950µs``) in s."""
    for unit, scale in (("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(f"duration {text!r} has no known unit")


def run_halo(halo: Path, ref_path: Path, test_path: Path) -> dict:
    """One ``halo compare`` process; its in-process metric time goes to
    COMPUTE_TIMES (from the ``-v`` log line ``compared in ...``)."""
    out = subprocess.run(
        [str(halo), "-v", "compare", "--reference", str(ref_path), "--test", str(test_path),
         "--json", "--apl-mode", "platipy", "--tolerance", str(TOLERANCE_MM)],
        check=True, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    line = next(x for x in out.stderr.splitlines() if "compared in " in x)
    COMPUTE_TIMES.append(_seconds(line.rsplit("compared in ", 1)[1].strip()))
    return json.loads(out.stdout)


def timed(fn, runs: int) -> tuple[float, object]:
    """Median wall time in seconds over ``runs`` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def write_section(text: str) -> Path:
    doc = REPO / "docs" / "benchmarks.md"
    current = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        current = head + block + tail
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(current)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (>= 3)")
    parser.add_argument("--halo", type=Path, default=REPO / "target" / "release" / "halo")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the doc")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error(f"--runs {args.runs}: medians need at least 3 runs")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (reference, test) in make_pairs().items():
            ref_path, test_path = Path(tmp) / "ref.nii.gz", Path(tmp) / "test.nii.gz"
            sitk.WriteImage(image(reference), str(ref_path))
            sitk.WriteImage(image(test), str(test_path))

            COMPUTE_TIMES.clear()
            halo_s, got = timed(lambda: run_halo(args.halo, ref_path, test_path), args.runs)
            compute_s = statistics.median(COMPUTE_TIMES)
            peer_s, want = timed(lambda: run_peers(reference, test), args.runs)
            worst = max(abs(float(got[k]) - float(v)) for k, v in want.items())
            if worst > 1e-6:
                raise SystemExit(f"{name}: values differ by {worst}: halo {got}, peers {want}")
            voxels = int(reference.sum()), int(test.sum())
            logger.info("%s: halo %.3f s (metrics %.3f s), peers %.3f s", name, halo_s,
                        compute_s, peer_s)
            rows.append((name, voxels, halo_s, compute_s, peer_s, worst))

    halo_version = subprocess.run(
        [str(args.halo), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = [
        "## Metrics: `halo compare` against surface-distance + platipy",
        "",
        f"Full metric set (Dice, Hausdorff, HD95, HD99, ASD both ways, surface Dice at "
        f"{TOLERANCE_MM:g} mm, added path length total and mean at {TOLERANCE_MM:g} mm, "
        f"platipy mode) on a {' x '.join(map(str, reversed(SHAPE_ZYX)))} grid of "
        f"{' x '.join(f'{s:g}' for s in reversed(SPACING_ZYX))} mm. halo process: one "
        "`halo compare --json --apl-mode platipy` run, start and reading of both gzipped "
        "NIfTI files included; halo metrics: the same run's metric time alone (its `-v` "
        "log); peers: surface-distance then platipy on arrays already in memory. Medians of "
        f"{args.runs} runs; values equal within 1e-6 (largest difference shown).",
        "",
        "| pair | voxels (reference / test) | halo process s | halo metrics s | peers s "
        "| ratio process | ratio metrics | max abs diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, voxels, halo_s, compute_s, peer_s, worst in rows:
        lines.append(
            f"| {name} | {voxels[0]} / {voxels[1]} | {halo_s:.3f} | {compute_s:.3f} | "
            f"{peer_s:.3f} | {peer_s / halo_s:.1f}x | {peer_s / compute_s:.1f}x | {worst:.1e} |"
        )
    missed = [name for name, _, halo_s, _, peer_s, _ in rows if peer_s / halo_s < 20]
    lines += [
        "",
        "Target, halo process at least 20x faster: "
        + (f"not met for {', '.join(missed)}." if missed else "met for every pair."),
        "",
        f"Machine: {machine()}. Versions: {halo_version}, "
        f"Python {platform.python_version()}, surface-distance {version('surface-distance')}, "
        f"platipy {version('platipy')}, NumPy {np.__version__}, SciPy {version('scipy')}, "
        f"SimpleITK {version('simpleitk')}. Command: "
        "`.venv-peers/bin/python tools/bench/bench_metrics.py`.",
        f"Load average when run: {', '.join(f'{v:.1f}' for v in os.getloadavg())} "
        "(a shared machine: other work competes with halo's threads).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        logger.info("wrote %s", write_section(text))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
