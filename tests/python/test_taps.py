"""Agreement of halo's TAPS model folder with the official ``taps segment``.

``tools/setup.d/30-taps.sh`` imports the TAPS prostate network (PyPI
``lavlab-taps``) into ``.cache/models/taps`` with TAPS's own pipeline as a
``"kind": "monai"`` manifest whose ensemble members are four test-time flips
(none, x, y, xy) of the one network; its mask comes from the unflipped pass
(TAPS's own prediction), its probability and uncertainty maps from all four.
On two real axial T2 series (ProstateX-0000 and ProstateX-0001) halo's mask
must agree with the mask ``taps segment`` writes (issue 4 asks Dice >= 0.98;
halo reproduces TAPS's pipeline, so this test holds it to 0.995, a few dozen
voxels of float rounding near the threshold). The mean of the four flips is a
different prediction (Dice about 0.98 with TAPS's); it must still be close.

``taps segment`` takes two minutes or more per case on two cores, so its
masks are cached under ``.cache/taps-reference/``, keyed by the input's
voxels and geometry, the TAPS version and the ONNX file's checksum.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, require_path, run_halo

nib = pytest.importorskip("nibabel")
ndimage = pytest.importorskip("scipy.ndimage")

CASES = {
    "ProstateX-0000": "ProstateX-0000/4.000000-t2tsetra-00702",
    "ProstateX-0001": "ProstateX-0001/10.000000-t2tsetra-17541",
}
FLIPS = ["none", "x", "y", "xy"]
THRESHOLD = 0.55
CACHE = REPO / ".cache" / "taps-reference"


def taps_command() -> Path:
    exe = Path(sys.executable).parent / "taps"
    return require_path(exe, "the taps command (tools/requirements-taps.txt)")


def reference_key(image: Path) -> str:
    """Input voxels and affine, TAPS version and its ONNX file, hashed."""
    img = nib.load(str(image))
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(img.dataobj, dtype=np.float32)).tobytes())
    h.update(np.asarray(img.affine, dtype=np.float64).round(6).tobytes())
    h.update(importlib.metadata.version("lavlab-taps").encode())
    import taps.inference

    onnx = taps.inference.resolve_checkpoint(None)
    h.update(hashlib.sha256(onnx.read_bytes()).digest())
    return h.hexdigest()[:24]


def taps_reference(image: Path) -> Path:
    """The mask of ``taps segment`` for ``image`` (from the cache when there)."""
    cached = CACHE / f"{reference_key(image)}.nii.gz"
    if cached.exists():
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".partial-{os.getpid()}.nii.gz")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(
        [str(taps_command()), "segment", str(image), str(tmp), "--device", "cpu", "--exact"],
        capture_output=True, text=True, timeout=1200, env=env,
    )
    assert proc.returncode == 0, f"taps segment failed:\n{proc.stderr[-3000:]}"
    shutil.move(tmp, cached)
    return cached


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (np.argmax(sizes) + 1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def voxels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


@pytest.fixture(scope="module")
def taps_model() -> Path:
    return require_path(
        REPO / ".cache" / "models" / "taps" / "halo-model.json",
        "the TAPS model folder (run tools/setup.d/30-taps.sh)",
    ).parent


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, halo_bin: Path, prostatex: Path, taps_model: Path, tmp_path_factory) -> dict:
    series = require_path(prostatex / CASES[request.param], f"{request.param} axial T2")
    work = tmp_path_factory.mktemp(request.param)
    image = work / "t2.nii.gz"
    run_halo(halo_bin, "convert", series, image)
    reference = taps_reference(image)

    out = work / "halo"
    run_halo(
        halo_bin, "segment", "--model", taps_model, "--series", series, "--out", out,
        "--threads", "2", "--member-probabilities", "--nifti", timeout=1200,
    )
    return {"name": request.param, "out": out, "reference": reference, "image": image}


def test_halos_mask_agrees_with_taps_segment(case):
    ref, ref_affine = voxels(case["reference"])
    got, affine = voxels(case["out"] / "labels.nii.gz")
    assert np.allclose(affine, ref_affine, atol=1e-3), "the masks are on different grids"

    d = dice(got > 0, ref > 0)

    assert np.sum(ref > 0) > 1000, "TAPS found no prostate"
    assert d >= 0.995, (
        f"{case['name']}: Dice {d:.5f} between halo and taps segment, "
        f"{np.sum((got > 0) != (ref > 0))} voxels differ"
    )


def test_the_unflipped_member_is_the_mask_before_post_processing(case):
    got, _ = voxels(case["out"] / "labels.nii.gz")
    p, _ = voxels(case["out"] / "members" / "member_0_probability_Prostate.nii.gz")

    mask = largest_component(p > THRESHOLD)

    assert np.array_equal(mask, got > 0)


def test_the_mean_of_the_flips_stays_close_to_taps(case):
    ref, _ = voxels(case["reference"])
    mean, _ = voxels(case["out"] / "probability_Prostate.nii.gz")

    d = dice(largest_component(mean > THRESHOLD), ref > 0)

    assert d >= 0.95, f"{case['name']}: the flips' mean mask has Dice {d:.4f} with TAPS's"


def test_the_report_lists_the_four_flips_as_members(case):
    report = json.loads((case["out"] / "report.json").read_text())

    flips = [m["test_time_flip"] for m in report["ensemble"]["members"]]

    assert flips == FLIPS
    assert "unflipped" in report["ensemble"]["labels_from"]
    assert report["settings"]["ensemble"] == "unflipped-pass"
    assert len(report["timings"]["members_s"]) == 4
    assert len(list((case["out"] / "members").glob("member_*_probability_Prostate.nii.gz"))) == 4


def test_the_flips_give_an_uncertainty_band_at_the_border(case):
    u, _ = voxels(case["out"] / "uncertainty_Prostate.nii.gz")
    labels, _ = voxels(case["out"] / "labels.nii.gz")
    mask = labels > 0
    border = mask & ~ndimage.binary_erosion(mask)
    # In-plane erosion by 6 voxels (3 mm): the slices are 3 mm apart.
    core = ndimage.binary_erosion(mask, structure=np.ones((3, 3, 1)), iterations=6)

    assert 0.0 <= u.min() and u.max() <= 0.5
    assert u[border].mean() > 0.02, f"mean uncertainty on the border {u[border].mean():.4f}"
    assert core.any()
    assert u[border].mean() > 3 * u[core].mean(), "the border is not more uncertain than the core"


# halo with the TAPS folder on further T2 series, with the outputs the
# planning system imports: a sagittal series (the network sees it in RAS like
# any other) and the second axial T2 of ProstateX-0001.
MORE_SERIES = {
    "ProstateX-0000 sagittal": "ProstateX-0000/3.000000-t2tsesag-87368",
    "ProstateX-0001 axial (series 6)": "ProstateX-0001/6.000000-t2tsetra-76610",
}
SAME_PATIENT_AXIAL = {
    "ProstateX-0000 sagittal": CASES["ProstateX-0000"],
    "ProstateX-0001 axial (series 6)": CASES["ProstateX-0001"],
}


def validator_errors(path: Path) -> list[str]:
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [l for l in (proc.stdout + proc.stderr).splitlines() if l.startswith("Error")]


def mask_volume_ml(mask: np.ndarray, affine: np.ndarray) -> float:
    return float(mask.sum() * abs(np.linalg.det(affine[:3, :3])) / 1000.0)


@pytest.fixture(scope="module", params=sorted(MORE_SERIES))
def dicom_run(request, halo_bin: Path, prostatex: Path, taps_model: Path,
              tmp_path_factory) -> dict:
    series = require_path(prostatex / MORE_SERIES[request.param], request.param)
    out = tmp_path_factory.mktemp("taps-dicom") / "out"
    run_halo(
        halo_bin, "segment", "--model", taps_model, "--series", series, "--out", out,
        "--threads", "2", "--nifti", "--band", "0.1", timeout=1200,
    )
    return {"name": request.param, "series": series, "out": out}


def test_taps_on_further_series_writes_valid_planning_outputs(dicom_run, halo_bin, tmp_path):
    out = dicom_run["out"]
    rtstruct = out / "rtstruct.dcm"
    [pt_dir] = sorted(out.glob("uncertainty-*"))
    assert pt_dir.name == "uncertainty-Prostate"
    for f in [rtstruct, *sorted(pt_dir.iterdir())]:
        assert validator_errors(f) == [], f"{f.name}: {validator_errors(f)}"

    masks = tmp_path / "masks"
    run_halo(halo_bin, "rasterize", rtstruct, masks, "--image", dicom_run["series"])
    [prostate] = [p for p in masks.iterdir() if p.name.split("_", 1)[1] == "Prostate.nii.gz"]
    contoured, _ = voxels(prostate)
    labels, _ = voxels(out / "labels.nii.gz")

    d = dice(contoured > 0, labels > 0)

    assert d >= 0.99, f"{dicom_run['name']}: RTSTRUCT contours vs label map, Dice {d:.4f}"


def test_taps_finds_the_same_gland_as_on_the_patients_reference_axial_t2(
        dicom_run, halo_bin, prostatex, tmp_path):
    labels, affine = voxels(dicom_run["out"] / "labels.nii.gz")
    axial = tmp_path / "axial.nii.gz"
    run_halo(halo_bin, "convert", prostatex / SAME_PATIENT_AXIAL[dicom_run["name"]], axial)
    ref, ref_affine = voxels(taps_reference(axial))

    got_ml = mask_volume_ml(labels > 0, affine)
    ref_ml = mask_volume_ml(ref > 0, ref_affine)

    assert 10.0 <= got_ml <= 200.0, f"{dicom_run['name']}: prostate of {got_ml:.1f} mL"
    assert abs(got_ml - ref_ml) <= 0.25 * ref_ml, (
        f"{dicom_run['name']}: {got_ml:.1f} mL, TAPS on the reference axial T2 {ref_ml:.1f} mL"
    )
    # Both series share the study's frame of reference: the glands must sit
    # in the same place (allowing for the patient moving between series).
    shift = np.linalg.norm(centroid_mm(labels > 0, affine) - centroid_mm(ref > 0, ref_affine))
    assert shift <= 10.0, f"{dicom_run['name']}: gland centre {shift:.1f} mm from the axial's"


def centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ijk = np.argwhere(mask).mean(axis=0)
    return affine[:3, :3] @ ijk + affine[:3, 3]


def test_a_diffusion_series_is_refused_for_the_t2_model(halo_bin, prostatex, taps_model, tmp_path):
    adc = require_path(prostatex / "ProstateX-0000/7.000000-ep2ddifftraDYNDISTADC-48780",
                       "ProstateX-0000 ADC")
    out = tmp_path / "out"

    proc = run_halo(halo_bin, "segment", "--model", taps_model, "--series", adc, "--out", out,
                    check=False)

    assert proc.returncode == 1
    assert "ADC" in proc.stderr and "T2" in proc.stderr and "--any-series" in proc.stderr, \
        proc.stderr
    assert "segmenting" not in proc.stderr
    assert not out.exists()


def test_a_sigmoid_label_with_the_background_value_is_refused(halo_bin, taps_model, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "taps_segresnetds.pt").symlink_to(taps_model / "taps_segresnetds.pt")
    manifest = json.loads((taps_model / "halo-model.json").read_text())
    manifest["labels"][0]["value"] = 0
    (model / "halo-model.json").write_text(json.dumps(manifest))

    proc = run_halo(halo_bin, "segment", "--model", model, "--image", tmp_path / "none.nii.gz",
                    "--out", tmp_path / "out", check=False)

    assert proc.returncode == 1
    assert "halo-model.json" in proc.stderr and "value 0" in proc.stderr, proc.stderr
