"""Cross-check of halo's metrics against the reference implementations.

240 seeded random anisotropic mask pairs (blobs, shifted, dilated and
eroded shapes, holes, speckle touching the image border, empty masks) go
through ``halo compare --batch`` and through:

- DeepMind's ``surface-distance`` 0.1 for the ``surfel`` model,
- MONAI 1.6.1's metrics for the ``voxel`` model,
- platipy 0.7.2's added path length for ``--apl-mode platipy``.

Values must agree within 1e-6, relative to the value above 1 (MONAI
returns float32 distances, good to about 1e-7 relative; its percentiles
are interpolated in float32, so they are checked by applying its rule to
its own distances in float64, and its float32 result to 1e-5). Documented policy
differences are asserted, not skipped: halo gives NaN where DeepMind gives
``inf`` for the Hausdorff distances of two empty masks, and ``inf`` where
MONAI gives NaN for the percentile Hausdorff distances of one empty mask.

These peers need their own environment (NumPy < 2); run with
``tools/setup_peers.sh`` then
``.venv-peers/bin/python -m pytest tests/python/test_metrics_peers.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import run_halo

PEERS_HINT = (
    "the peers live in .venv-peers: run tools/setup_peers.sh, then "
    ".venv-peers/bin/python -m pytest tests/python/test_metrics_peers.py"
)
sitk = pytest.importorskip("SimpleITK")
surface_distance = pytest.importorskip("surface_distance", reason=PEERS_HINT)
ndimage = pytest.importorskip("scipy.ndimage")

logger = logging.getLogger(__name__)

N_PAIRS = 240
SEED = 20240607
TOLERANCE_MM = 1.0
# Spacings exact in float32 (NIfTI's pixdim) and with exact squares, so
# that distance ties with the tolerance are exact in every implementation.
SPACINGS_MM = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
KINDS = ("blobs", "shifted", "dilated", "eroded", "holes", "speckle", "one_empty", "mixed")


@dataclass
class Pair:
    """One generated case: masks indexed [z, y, x], spacing in that order."""

    name: str
    kind: str
    reference: np.ndarray
    test: np.ndarray
    spacing_zyx: tuple[float, float, float]


def _ellipsoids(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> np.ndarray:
    """Union of ``count`` random axis-aligned ellipsoids (index units)."""
    grid = np.indices(shape, dtype=float)
    out = np.zeros(shape, bool)
    for _ in range(count):
        centre = [rng.uniform(-1, n) for n in shape]
        radii = [rng.uniform(1.0, max(1.5, n / 2.5)) for n in shape]
        d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
        out |= d <= 1.0
    return out


def _shift(mask: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """``mask`` moved by ``offset`` voxels, zero-filled (no wrap)."""
    out = np.zeros_like(mask)
    src = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, mask.shape))
    dst = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(offset, mask.shape))
    out[dst] = mask[src]
    return out


def make_pair(rng: np.random.Generator, index: int) -> Pair:
    """The ``index``-th case; kinds cycle so every kind is well represented."""
    kind = KINDS[index % len(KINDS)]
    shape = (int(rng.integers(3, 14)), int(rng.integers(8, 34)), int(rng.integers(8, 34)))
    spacing = tuple(float(s) for s in rng.choice(SPACINGS_MM, 3))
    base = _ellipsoids(rng, shape, int(rng.integers(1, 4)))

    if kind == "blobs":
        test = _ellipsoids(rng, shape, int(rng.integers(1, 4)))
    elif kind == "shifted":
        test = _shift(base, tuple(int(v) for v in rng.integers(-2, 3, 3)))
    elif kind == "dilated":
        test = ndimage.binary_dilation(base, iterations=int(rng.integers(1, 3)))
    elif kind == "eroded":
        test = ndimage.binary_erosion(base, iterations=1)
    elif kind == "holes":
        test = base & ~(rng.random(shape) < 0.15)
    elif kind == "speckle":
        base = rng.random(shape) < 0.08
        test = base ^ (rng.random(shape) < 0.05)
    elif kind == "one_empty":
        test = np.zeros(shape, bool)
        if index % 16 == 6:
            base, test = test, base
    else:  # mixed: both empty now and then, else blob against speckled blob
        if index % 32 == 7:
            base = np.zeros(shape, bool)
            test = np.zeros(shape, bool)
        else:
            test = base ^ (rng.random(shape) < 0.03)

    # The reference is the edited contour; the test the automatic one.
    return Pair(f"p{index:03d}", kind, base.astype(np.uint8), test.astype(np.uint8), spacing)


def _image(array: np.ndarray, spacing_zyx: tuple[float, float, float]):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(reversed(spacing_zyx)))
    return img


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory, halo_bin: Path) -> dict:
    """Write every pair as NIfTI, run halo's batch mode in three settings."""
    folder = tmp_path_factory.mktemp("metrics_peers")
    rng = np.random.default_rng(SEED)
    pairs = [make_pair(rng, i) for i in range(N_PAIRS)]
    with open(folder / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "reference", "test"])
        for p in pairs:
            sitk.WriteImage(_image(p.reference, p.spacing_zyx), str(folder / f"{p.name}_r.nii.gz"))
            sitk.WriteImage(_image(p.test, p.spacing_zyx), str(folder / f"{p.name}_t.nii.gz"))
            w.writerow([p.name, f"{p.name}_r.nii.gz", f"{p.name}_t.nii.gz"])

    results = {}
    for setting, extra in {
        "surfel": ["--boundary", "surfel", "--apl-mode", "platipy"],
        "voxel": ["--boundary", "voxel"],
    }.items():
        out = folder / f"results_{setting}.csv"
        run_halo(
            halo_bin, "compare", "--batch", folder / "pairs.csv", "--out", out,
            "--tolerance", str(TOLERANCE_MM), *extra,
        )
        with open(out, newline="") as f:
            results[setting] = {row["id"]: row for row in csv.DictReader(f)}
    return {"pairs": pairs, "halo": results}


def close(got: float, want: float) -> bool:
    """Equal within 1e-6 (relative above 1); NaN and inf must match exactly."""
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    return abs(got - want) <= 1e-6 * max(1.0, abs(want))


def check(mismatches: list, pair: Pair, metric: str, got: float, want: float) -> None:
    if not close(got, want):
        mismatches.append(
            f"{pair.name} ({pair.kind}, shape {pair.reference.shape}, spacing "
            f"{pair.spacing_zyx}) {metric}: halo {got!r}, peer {want!r}"
        )


def report(mismatches: list, compared: int) -> None:
    assert compared >= 200 * 5, f"only {compared} values compared"
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:30])


def test_generated_pairs_cover_every_kind_and_empty_masks(cases: dict) -> None:
    pairs = cases["pairs"]
    kinds = {p.kind for p in pairs}
    one_empty = sum((p.reference.any()) != (p.test.any()) for p in pairs)
    both_empty = sum(not p.reference.any() and not p.test.any() for p in pairs)
    border = sum(
        any(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, :, -1].any()
            for m in (p.reference, p.test))
        for p in pairs
    )
    anisotropic = sum(len(set(p.spacing_zyx)) > 1 for p in pairs)

    assert len(pairs) >= 200 and kinds == set(KINDS)
    assert one_empty >= 20 and both_empty >= 5, (one_empty, both_empty)
    assert border >= 50 and anisotropic >= 150, (border, anisotropic)


def test_surfel_model_matches_deepmind_surface_distance(cases: dict) -> None:
    sd = surface_distance
    mismatches: list[str] = []
    compared = 0
    for p in cases["pairs"]:
        row = cases["halo"]["surfel"][p.name]
        got = lambda k: float(row[k])  # noqa: E731
        assert row["boundary_model"] == "surfel"
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            d = sd.compute_surface_distances(
                p.reference.astype(bool), p.test.astype(bool), p.spacing_zyx
            )
            asd = sd.compute_average_surface_distance(d)
            want = {
                "asd_reference_to_test": asd[0],
                "asd_test_to_reference": asd[1],
                "hausdorff": sd.compute_robust_hausdorff(d, 100),
                "hausdorff95": sd.compute_robust_hausdorff(d, 95),
                "hausdorff99": sd.compute_robust_hausdorff(d, 99),
                "surface_dice": sd.compute_surface_dice_at_tolerance(d, TOLERANCE_MM),
                "dice": sd.compute_dice_coefficient(p.reference.astype(bool), p.test.astype(bool)),
            }
        both_empty = not p.reference.any() and not p.test.any()
        for k, v in want.items():
            v = float(v)
            if both_empty and k.startswith("hausdorff"):
                # halo's documented policy: NaN, where DeepMind gives inf.
                assert v == math.inf
                v = math.nan
            check(mismatches, p, k, got(k), v)
            compared += 1
    report(mismatches, compared)


def test_voxel_model_matches_monai(cases: dict) -> None:
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    monai_utils = pytest.importorskip("monai.metrics.utils")
    mismatches: list[str] = []
    compared = 0
    for p in cases["pairs"]:
        row = cases["halo"]["voxel"][p.name]
        assert row["boundary_model"] == "voxel"
        # MONAI: y_pred is the test mask, y the reference, [batch, channel, ...].
        pred = torch.as_tensor(p.test.astype(bool))[None, None]
        ref = torch.as_tensor(p.reference.astype(bool))[None, None]
        spacing = list(p.spacing_zyx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")

            def hd(percentile):
                return metrics.compute_hausdorff_distance(
                    pred, ref, include_background=True, percentile=percentile, spacing=spacing
                )

            def asd(a, b, symmetric):
                return metrics.compute_average_surface_distance(
                    a, b, include_background=True, symmetric=symmetric, spacing=spacing
                )

            # torch.quantile interpolates in float32 (errors near 1e-5 mm):
            # apply MONAI's own rule to MONAI's distances in float64 for the
            # 1e-6 check, and hold its float32 result to 1e-5.
            _, directed, _ = monai_utils.get_edge_surface_distance(
                pred[0, 0], ref[0, 0], spacing=spacing, symmetric=True
            )

            def hd64(percentile):
                if any(d.numel() == 0 for d in directed):
                    return hd(percentile)
                q = [torch.quantile(d.double(), percentile / 100) for d in directed]
                return torch.stack(q).max()

            for percentile in (95, 99):
                a, b = float(hd(percentile).reshape(-1)[0]), float(hd64(percentile))
                assert (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-5 * max(
                    1.0, abs(b)), (p.name, percentile, a, b)

            want = {
                "hausdorff": hd(None),
                "hausdorff95": hd64(95),
                "hausdorff99": hd64(99),
                "asd_test_to_reference": asd(pred, ref, False),
                "asd_reference_to_test": asd(ref, pred, False),
                "asd_symmetric": asd(pred, ref, True),
                "surface_dice": metrics.compute_surface_dice(
                    pred, ref, [TOLERANCE_MM], include_background=True, spacing=spacing
                ),
            }
        one_empty = p.reference.any() != p.test.any()
        for k, v in want.items():
            v = float(v.reshape(-1)[0])
            if one_empty and k in ("hausdorff95", "hausdorff99"):
                # MONAI interpolates between infinite distances (NaN); halo's
                # documented policy is inf, as for the maximum.
                assert math.isnan(v)
                v = math.inf
            check(mismatches, p, k, float(row[k]), v)
            compared += 1
    report(mismatches, compared)


def test_added_path_length_matches_platipy(cases: dict) -> None:
    comparison = pytest.importorskip("platipy.imaging.label.comparison")
    mismatches: list[str] = []
    compared = 0
    for p in cases["pairs"]:
        row = cases["halo"]["surfel"][p.name]
        assert row["apl_mode"] == "platipy"
        # platipy measures label_ref's contour against label_test's: the
        # edited contour against the automatic one.
        edited = _image(p.reference, p.spacing_zyx)
        automatic = _image(p.test, p.spacing_zyx)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for tau in (TOLERANCE_MM,):
                total = comparison.compute_metric_total_apl(edited, automatic, tau)
                mean = comparison.compute_metric_mean_apl(edited, automatic, tau)
                check(mismatches, p, "apl_total_mm", float(row["apl_total_mm"]), float(total))
                check(mismatches, p, "apl_mean_mm", float(row["apl_mean_mm"]), float(mean))
                compared += 2
    assert compared >= 400
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:30])


def test_apl_per_slice_and_other_tolerances_match_platipy(cases: dict, halo_bin: Path,
                                                          tmp_path: Path) -> None:
    """Per-slice values and tolerances 0 and 3 mm, through the JSON output."""
    comparison = pytest.importorskip("platipy.imaging.label.comparison")
    mismatches: list[str] = []
    checked = 0
    for p in cases["pairs"][:48]:
        r, t = tmp_path / f"{p.name}_r.nii.gz", tmp_path / f"{p.name}_t.nii.gz"
        sitk.WriteImage(_image(p.reference, p.spacing_zyx), str(r))
        sitk.WriteImage(_image(p.test, p.spacing_zyx), str(t))
        for tau in (0.0, 3.0):
            out = json.loads(run_halo(
                halo_bin, "compare", "--reference", r, "--test", t, "--json",
                "--apl-mode", "platipy", "--tolerance", str(tau),
            ).stdout)
            pixel_mm = (p.spacing_zyx[1] + p.spacing_zyx[2]) / 2
            want = comparison.compute_apl(
                _image(p.reference, p.spacing_zyx), _image(p.test, p.spacing_zyx), tau
            )
            got = [s["mm"] / pixel_mm for s in out["apl_per_slice_mm"]]
            if len(got) != len(want) or any(abs(g - w) > 1e-6 for g, w in zip(got, want)):
                mismatches.append(f"{p.name} tau {tau}: halo {got}, platipy {want}")
            checked += 1
    assert checked == 96
    assert not mismatches, "\n".join(mismatches[:20])


def test_json_has_exactly_the_documented_keys(cases: dict, halo_bin: Path, tmp_path: Path) -> None:
    p = next(p for p in cases["pairs"] if p.reference.any() and p.test.any())
    r, t, u = (tmp_path / n for n in ("r.nii.gz", "t.nii.gz", "u.nii.gz"))
    sitk.WriteImage(_image(p.reference, p.spacing_zyx), str(r))
    sitk.WriteImage(_image(p.test, p.spacing_zyx), str(t))
    unc = np.random.default_rng(1).random(p.reference.shape).astype(np.float32) * 0.6
    sitk.WriteImage(_image(unc, p.spacing_zyx), str(u))

    out = json.loads(run_halo(
        halo_bin, "compare", "--reference", r, "--test", t, "--uncertainty", u, "--json"
    ).stdout)

    required = {
        "dice", "surface_dice", "hausdorff", "hausdorff95", "hausdorff99",
        "asd_reference_to_test", "asd_test_to_reference", "asd_symmetric",
        "volume_reference_cm3", "volume_test_cm3", "volume_difference_cm3", "volume_ratio",
        "sensitivity", "specificity", "apl_total_mm", "apl_mean_mm", "apl_per_slice_mm",
        "added_voxels", "removed_voxels", "edited_histogram", "boundary_model", "tolerance_mm",
    }
    assert required <= set(out), sorted(required - set(out))
    edited = (p.reference != p.test)
    bins = np.minimum(np.floor(unc.astype(np.float64) / 0.1), 4).astype(int)
    want = np.bincount(bins[edited], minlength=5).tolist()
    assert out["edited_histogram"]["counts"] == want
    assert out["added_voxels"] == int((p.reference.astype(bool) & ~p.test.astype(bool)).sum())
    assert out["boundary_model"] == "surfel" and out["tolerance_mm"] == 1.0
