"""`halo stats` against the installed SciPy on random observer-study data.

The Rust tests pin halo to SciPy 1.16.3's recorded outputs; this oracle
test checks the same agreement on fresh data with whatever SciPy 1.15+ the
environment has: Likert-style paired ratings (ties and zeros, so every
p-value path is exercised) and continuous samples.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import scipy
from scipy import stats

from conftest import run_halo

logger = logging.getLogger(__name__)

SCIPY_VERSION = tuple(int(p) for p in scipy.__version__.split(".")[:2])


def _halo_json(halo_bin: Path, tmp_path: Path, test: str, entry: dict) -> dict:
    path = tmp_path / f"{test}.json"
    path.write_text(json.dumps(entry))
    return json.loads(run_halo(halo_bin, "stats", test, path).stdout)


@pytest.mark.skipif(SCIPY_VERSION < (1, 15), reason="needs SciPy 1.15+ rules")
@pytest.mark.parametrize("seed", range(12))
def test_wilcoxon_matches_scipy_on_random_ratings(halo_bin: Path, tmp_path: Path, seed: int):
    rng = np.random.default_rng(seed)
    n = [6, 9, 13, 20, 35, 60][seed % 6]
    x = rng.integers(1, 6, n).astype(float)
    y = np.clip(x + rng.integers(-1, 3, n), 1, 5).astype(float)
    kwargs = {"zero_method": ["wilcox", "pratt"][seed % 2], "correction": seed % 3 == 0}

    want = stats.wilcoxon(x, y, **kwargs)
    got = _halo_json(halo_bin, tmp_path, "wilcoxon",
                     {"x": x.tolist(), "y": y.tolist(), "kwargs": kwargs})

    assert got["statistic"] == pytest.approx(want.statistic, rel=1e-15, abs=0)
    if np.isnan(want.pvalue):
        assert got["pvalue"] is None
    else:
        assert got["pvalue"] == pytest.approx(want.pvalue, rel=1e-12), got["method"]


@pytest.mark.parametrize("seed", range(8))
def test_fligner_matches_scipy_on_random_groups(halo_bin: Path, tmp_path: Path, seed: int):
    rng = np.random.default_rng(100 + seed)
    groups = [np.round(rng.normal(0, 1 + k, rng.integers(3, 30)), 2) for k in range(2 + seed % 3)]
    center = ["median", "mean"][seed % 2]

    want = stats.fligner(*groups, center=center)
    got = _halo_json(halo_bin, tmp_path, "fligner",
                     {"samples": [g.tolist() for g in groups], "kwargs": {"center": center}})

    assert got["statistic"] == pytest.approx(want.statistic, rel=1e-12)
    assert got["pvalue"] == pytest.approx(want.pvalue, rel=1e-12)


def test_vgc_auc_is_mann_whitney_u_over_n_squared(halo_bin: Path, tmp_path: Path):
    rng = np.random.default_rng(5)
    ref = rng.integers(1, 5, (3, 20))
    test = np.clip(ref + rng.integers(-1, 2, (3, 20)), 1, 4)

    got = _halo_json(halo_bin, tmp_path, "vgc",
                     {"reference_step1": ref.tolist(), "test_step2": test.tolist()})

    for r in range(3):
        u = stats.mannwhitneyu(test[r], ref[r]).statistic / 400
        assert got["readers"][r]["auc"] == pytest.approx(u, rel=1e-15)
    assert got["pooled"]["auc"] == pytest.approx(
        np.mean([x["auc"] for x in got["readers"]]), rel=1e-15)
