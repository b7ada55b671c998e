"""Generate ``samples/study/``: a small synthetic observer study.

Four observers edit the automatic prostate contour of six synthetic MR
cases twice: without the uncertainty map (step 1) and with it (step 2).
Everything is drawn from a fixed seed, so the output is reproducible:

- the phantom: a 40 x 40 x 12 grid of 1 x 1 x 3 mm voxels, an ellipsoidal
  gland (radii 10 to 13 mm in-plane, 7 to 9 mm through-plane) in smooth
  tissue; the "true" gland differs from the automatic one by a few
  millimetres at the apex side;
- the uncertainty map: an ensemble-like standard deviation, at most 0.45,
  falling off with distance from the automatic surface (sigma 2.5 mm);
- step 1 edits move each radius a random 20 to 60 % of the way to the
  truth, plus a per-observer bias of up to +-0.6 mm and case noise; step 2
  edits move 60 to 90 % of the way with half the noise (the map points at
  where to edit); one step 2 edit over-contours on purpose, as an outlier
  of the step 2 / step 1 volume ratio;
- ratings: quality on a four-point scale and confidence on a five-point
  scale, a little higher in step 2; editing times in minutes, about 20 %
  shorter in step 2.

Usage: ``python tools/make_sample_study.py [--out samples/study]``; then
``halo study samples/study/study.toml --out /tmp/study-report``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SHAPE_XYZ = (40, 40, 12)
SPACING_MM = (1.0, 1.0, 3.0)
OBSERVERS = ["O1", "O2", "O3", "O4"]
CASES = 6
SEED = 7


def grid_mm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel centre coordinates in mm, arrays indexed [x, y, z]."""
    axes = [np.arange(n) * s for n, s in zip(SHAPE_XYZ, SPACING_MM)]
    return np.meshgrid(*axes, indexing="ij")


def ellipsoid_level(centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Implicit ellipsoid function: < 1 inside, 1 on the surface."""
    x, y, z = grid_mm()
    return np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                   + ((z - centre[2]) / radii[2]) ** 2)


def save(path: Path, data: np.ndarray) -> None:
    """Writes a NIfTI volume with the study's voxel size (RAS affine)."""
    affine = np.diag([*SPACING_MM, 1.0])
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))


def edited_radii(rng: np.random.Generator, auto: np.ndarray, truth: np.ndarray,
                 towards: tuple[float, float], bias_mm: float, noise_mm: float) -> np.ndarray:
    """Radii of an edit that moves part of the way from auto to truth."""
    share = rng.uniform(*towards, size=3)
    return auto + share * (truth - auto) + bias_mm + rng.normal(0.0, noise_mm, size=3)


def make_case(rng: np.random.Generator, out: Path, case: str, bias: dict[str, float],
              outlier: tuple[str, str] | None) -> list[dict]:
    """Writes one case's volumes; returns its ratings rows."""
    folder = out / case
    folder.mkdir(parents=True, exist_ok=True)
    centre = np.array([20.0, 20.0, 16.5]) + rng.normal(0.0, 1.0, size=3)
    auto_r = np.array([rng.uniform(10, 13), rng.uniform(10, 13), rng.uniform(7, 9)])
    truth_r = auto_r + np.array([rng.uniform(-2, 2), rng.uniform(0.5, 3), rng.uniform(-3, -1)])

    level = ellipsoid_level(centre, auto_r)
    auto = (level <= 1.0).astype(np.uint8)
    distance_mm = np.abs(level - 1.0) * auto_r.mean()
    # Quantised to 1/1024 so that the map compresses well.
    uncertainty = np.round(0.45 * np.exp(-(distance_mm / 2.5) ** 2) * 1024) / 1024
    mr = (100 + 200 * (level <= 1.0) + 2 * grid_mm()[1]).astype(np.int16)

    save(folder / "mr.nii.gz", mr)
    save(folder / "uncertainty.nii.gz", uncertainty.astype(np.float32))
    save(folder / "auto_prostate.nii.gz", auto)

    rows = []
    base_quality = rng.integers(1, 4)
    base_confidence = rng.integers(2, 5)
    for observer in OBSERVERS:
        minutes1 = max(2.0, rng.normal(8.0, 2.0))
        for step, towards, noise in [(1, (0.2, 0.6), 0.8), (2, (0.6, 0.9), 0.4)]:
            radii = edited_radii(rng, auto_r, truth_r, towards, bias[observer], noise)
            if outlier == (observer, str(step)):
                radii = radii * 1.15
            mask = (ellipsoid_level(centre, radii) <= 1.0).astype(np.uint8)
            save(folder / f"{observer}_step{step}_prostate.nii.gz", mask)

            lift = int(step == 2 and rng.random() < 0.5)
            rows.append({
                "case": case,
                "observer": observer,
                "step": step,
                "minutes": round(minutes1 * (1.0 if step == 1 else rng.uniform(0.6, 0.95)), 1),
                "quality": int(np.clip(base_quality + lift + rng.integers(-1, 2), 1, 4)),
                "confidence": int(np.clip(base_confidence + lift + rng.integers(-1, 2), 1, 5)),
            })
    return rows


def manifest(cases: list[str]) -> str:
    """The study.toml text."""
    lines = [
        "# Synthetic observer study written by tools/make_sample_study.py.",
        "[study]",
        'name = "Sample study: prostate edits with and without uncertainty maps"',
        'ratings = "ratings.csv"',
        f"observers = {OBSERVERS!r}".replace("'", '"'),
        'structures = ["prostate"]',
        "outlier_volume_ratio = [0.8, 1.25]",
        "bootstrap = 2000",
        "permutations = 2000",
        "seed = 1",
    ]
    for case in cases:
        lines += ["", "[[cases]]", f'id = "{case}"', f'mr = "{case}/mr.nii.gz"',
                  f'uncertainty = "{case}/uncertainty.nii.gz"',
                  f'automatic = {{ prostate = "{case}/auto_prostate.nii.gz" }}']
        for step in (1, 2):
            entries = ", ".join(
                f'{o} = {{ prostate = "{case}/{o}_step{step}_prostate.nii.gz" }}' for o in OBSERVERS)
            lines.append(f"step{step} = {{ {entries} }}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "samples" / "study",
                        help="output folder (default samples/study)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rng = np.random.default_rng(SEED)
    bias = {o: float(rng.uniform(-0.6, 0.6)) for o in OBSERVERS}
    cases = [f"case{i + 1:02d}" for i in range(CASES)]
    rows: list[dict] = []
    for i, case in enumerate(cases):
        outlier = ("O3", "2") if i == 3 else None
        rows += make_case(rng, args.out, case, bias, outlier)
        log.info("wrote %s", args.out / case)

    header = ["case", "observer", "step", "minutes", "quality", "confidence"]
    csv = "\n".join([",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows])
    (args.out / "ratings.csv").write_text(csv + "\n")
    (args.out / "study.toml").write_text(manifest(cases))
    log.info("wrote %s with %d cases and %d observers", args.out / "study.toml", CASES,
             len(OBSERVERS))


if __name__ == "__main__":
    main()
