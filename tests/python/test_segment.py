"""``halo segment`` on the embedded sample: outputs, report, refusals, memory.

The sample (``samples/series`` and ``samples/model``, built by
``tools/make_samples.py``) is a phantom pelvis MR series and a five-member
nnU-Net style ensemble; these tests run the real TorchScript pipeline
through the libtorch plug-in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_halo

sitk = pytest.importorskip("SimpleITK")

SERIES = REPO / "samples" / "series"
MODEL = REPO / "samples" / "model"
STRUCTURES = ["Prostate", "Rectum"]


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def sample_run(halo_bin: Path, tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("segment") / "out"
    start = time.monotonic()
    run_halo(halo_bin, "segment", "--model", MODEL, "--series", SERIES, "--out", out,
             "--threads", "1", "--entropy", "--mutual-information", "--nifti", "--band", "0.1")
    return out, time.monotonic() - start


def test_labels_hold_both_structures_on_the_series_grid(sample_run):
    out, _ = sample_run
    labels = read(out / "labels.nii.gz")
    assert labels.shape == (24, 128, 128)
    counts = {v: int(np.sum(labels == v)) for v in (1, 2)}
    # Each phantom structure is about 15 to 25 cm3 at 1.92 mm3 per voxel.
    assert all(3000 < n < 20000 for n in counts.values()), counts


def test_uncertainty_lies_in_0_to_half_and_marks_the_borders(sample_run):
    out, _ = sample_run
    labels = read(out / "labels.nii.gz")
    for value, name in enumerate(STRUCTURES, start=1):
        u = read(out / f"uncertainty_{name}.nii.gz")
        assert u.min() >= 0.0 and u.max() <= 0.5 + 1e-6, (name, u.min(), u.max())
        mask = labels == value
        from scipy.ndimage import binary_erosion

        border = mask & ~binary_erosion(mask)
        far = ~mask & ~np.pad(mask, 4, mode="edge")[4:-4, 4:-4, 4:-4]
        assert u[border].mean() > 0.05, f"{name}: border mean {u[border].mean():.3f}"
        assert u[border].mean() > 5 * u[far].mean(), f"{name}: no band at the border"


def test_the_report_summarises_each_structure(sample_run):
    out, _ = sample_run
    report = json.loads((out / "report.json").read_text())
    labels = read(out / "labels.nii.gz")
    assert [s["name"] for s in report["structures"]] == STRUCTURES
    for value, s in enumerate(report["structures"], start=1):
        want = np.sum(labels == value) * 0.8 * 0.8 * 3.0 / 1000
        assert abs(s["volume_cm3"] - want) < 1e-6 * max(want, 1)
        assert 0 < s["mean_uncertainty_surface"] <= 0.5
        assert s["uncertain_volume_cm3"] > 0
    assert len(report["members"]) == 5 and len(report["timings"]["members_s"]) == 5
    assert (out / "entropy.nii.gz").exists() and (out / "mutual_information.nii.gz").exists()


def test_ddof_1_scales_the_std_by_sqrt_m_over_m_minus_1(sample_run, halo_bin, tmp_path):
    out0, _ = sample_run
    out1 = tmp_path / "ddof1"
    run_halo(halo_bin, "segment", "--model", MODEL, "--series", SERIES, "--out", out1,
             "--threads", "1", "--ddof", "1", "--nifti")
    u0 = read(out0 / "uncertainty_Prostate.nii.gz").astype(np.float64)
    u1 = read(out1 / "uncertainty_Prostate.nii.gz").astype(np.float64)
    assert np.allclose(u1, u0 * np.sqrt(5 / 4), atol=1e-5)


def test_an_existing_output_is_refused_without_force(halo_bin, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_halo(halo_bin, "segment", "--model", MODEL, "--series", SERIES, "--out", out,
                    check=False)
    assert proc.returncode != 0 and "--force" in proc.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_a_tampered_member_is_refused_and_nothing_is_written(halo_bin, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    with open(model / "fold_2.pt", "ab") as f:
        f.write(b"\0")
    out = tmp_path / "out"
    proc = run_halo(halo_bin, "segment", "--model", model, "--series", SERIES, "--out", out,
                    check=False)
    assert proc.returncode != 0
    assert "fold_2.pt" in proc.stderr and "checksum mismatch" in proc.stderr
    assert not out.exists() and list(tmp_path.glob(".out.partial*")) == []


def test_a_block_that_would_hide_the_map_is_refused_before_the_run(halo_bin, tmp_path):
    out = tmp_path / "out"
    proc = run_halo(halo_bin, "segment", "--model", MODEL, "--series", SERIES, "--out", out,
                    "--block-size", "33", check=False)
    # The sample slices are 128 x 128: a quarter of a side is 32 voxels.
    assert proc.returncode != 0
    assert "--block-size 33" in proc.stderr and "at most 32" in proc.stderr, proc.stderr
    assert "segmenting" not in proc.stderr, "refused only after the ensemble ran"
    assert not out.exists() and list(tmp_path.glob(".out.partial*")) == []


def test_an_unknown_device_is_refused_by_name(halo_bin, tmp_path):
    out = tmp_path / "out"
    proc = run_halo(halo_bin, "segment", "--model", MODEL, "--series", SERIES, "--out", out,
                    "--device", "gpu", check=False)

    assert proc.returncode != 0
    assert '"gpu"' in proc.stderr and "cpu, cuda or cuda:N" in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("band", ["0", "-1", "NaN", "1.5", "x"])
def test_a_bad_band_is_refused_before_anything_runs(halo_bin, tmp_path, band):
    out = tmp_path / "out"
    proc = run_halo(halo_bin, "segment", "--model", MODEL, "--series", SERIES, "--out", out,
                    f"--band={band}", check=False)

    assert proc.returncode != 0
    assert "--band" in proc.stderr and band in proc.stderr, proc.stderr
    assert "scanning" not in proc.stderr
    assert not out.exists()


def test_a_member_outside_the_model_folder_is_refused(halo_bin, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    manifest = json.loads((model / "halo-model.json").read_text())
    manifest["members"][0]["file"] = f"../model/{manifest['members'][0]['file']}"
    (model / "halo-model.json").write_text(json.dumps(manifest))

    proc = run_halo(halo_bin, "segment", "--model", model, "--series", SERIES,
                    "--out", tmp_path / "out", check=False)

    assert proc.returncode != 0
    assert "inside the model folder" in proc.stderr, proc.stderr


def _copies(src: Path, dst: Path, n: int) -> Path:
    """The sample model with its first member repeated ``n`` times."""
    dst.mkdir()
    manifest = json.loads((src / "halo-model.json").read_text())
    first = manifest["members"][0]
    for name in ("plans.json", "dataset.json"):
        shutil.copy(src / name, dst / name)
    members = []
    for k in range(n):
        shutil.copy(src / first["file"], dst / f"copy_{k}.pt")
        members.append({"file": f"copy_{k}.pt", "sha256": first["sha256"]})
    manifest["members"] = members
    (dst / "halo-model.json").write_text(json.dumps(manifest))
    return dst


def _max_rss_mib(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, stderr
    return usage.ru_maxrss / 1024


def test_peak_memory_of_ten_members_is_within_1_5x_of_one(halo_bin, tmp_path):
    # A fine grid (7 million voxels) so that each member's probability
    # maps (85 MB) would show if members were held rather than streamed.
    full = tmp_path / "sample.nii.gz"
    run_halo(halo_bin, "convert", SERIES, full)
    img = sitk.ReadImage(str(full))
    spacing = (0.8 * 128 / 384, 0.8 * 128 / 384, 1.5)
    size = (384, 384, 48)
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(spacing)
    ref.SetDirection(img.GetDirection())
    shift = [(s1 - s0) / 2 for s0, s1 in zip(img.GetSpacing(), spacing)]
    ref.SetOrigin(img.TransformContinuousIndexToPhysicalPoint(
        [-0.5 + sh / sp for sh, sp in zip(shift, img.GetSpacing())]))
    fine = sitk.Resample(sitk.Cast(img, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear)
    image = tmp_path / "fine.nii.gz"
    sitk.WriteImage(fine, str(image))

    peaks = {}
    for n in (1, 10):
        model = _copies(MODEL, tmp_path / f"m{n}", n)
        peaks[n] = _max_rss_mib([str(halo_bin), "segment", "--model", str(model), "--image",
                                 str(image), "--out", str(tmp_path / f"out{n}"), "--threads", "1"])
    ratio = peaks[10] / peaks[1]
    print(f"peak RSS: {peaks[1]:.0f} MiB (1 member), {peaks[10]:.0f} MiB (10 members)")
    assert ratio <= 1.5, f"peak RSS {peaks[1]:.0f} MiB with 1 member, {peaks[10]:.0f} with 10"
    u = read(tmp_path / "out10" / "uncertainty_Prostate.nii.gz")
    assert np.all(u == 0), "identical members cannot disagree"


def test_the_dicom_outputs_pass_dciodvfy_and_read_back_onto_the_mr_grid(
        sample_run, halo_bin, tmp_path):
    out, _ = sample_run
    rtstruct = out / "rtstruct.dcm"
    pt_dirs = sorted(out.glob("uncertainty-*"))
    assert [d.name for d in pt_dirs] == ["uncertainty-Prostate", "uncertainty-Rectum"]
    for f in [rtstruct, *[p for d in pt_dirs for p in sorted(d.iterdir())]]:
        proc = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True)
        errors = [l for l in (proc.stdout + proc.stderr).splitlines() if l.startswith("Error")]
        assert errors == [], f"{f}: {errors}"

    masks = tmp_path / "masks"
    listing = json.loads(run_halo(halo_bin, "rasterize", rtstruct, masks,
                                  "--image", SERIES).stdout)
    names = sorted(r["name"] if isinstance(r, dict) else r for r in
                   (listing if isinstance(listing, list) else listing.get("rois", [])))
    assert "Prostate" in names and "Rectum" in names
    assert any(n.startswith("U>=0.1") for n in names), names
    labels = read(out / "labels.nii.gz")
    for value, name in [(1, "Prostate"), (2, "Rectum")]:
        [mask_file] = [p for p in masks.iterdir()
                       if p.name.split("_", 1)[0].isdigit() and p.name.split("_", 1)[1] == f"{name}.nii.gz"]
        assert np.array_equal(read(mask_file) > 0, labels == value), name

    mr = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(SERIES)))
    for d in pt_dirs:
        pt = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(d)))
        assert pt.GetSize() == mr.GetSize()
        assert np.allclose(pt.GetOrigin(), mr.GetOrigin(), atol=1e-4)
        assert np.allclose(pt.GetDirection(), mr.GetDirection(), atol=1e-6)
        values = sitk.GetArrayFromImage(pt).astype(np.float64)
        u = read(out / f"uncertainty_{d.name.split('-', 1)[1]}.nii.gz").astype(np.float64)
        step = 0.5 / 65535
        # The fixed-scale block (value 0.5) is the only place allowed to differ.
        differs = np.abs(values - u) > step
        assert np.all(np.isclose(values[differs], 0.5, atol=step)), d.name
        assert differs.sum() <= 4 * 4 * values.shape[0], d.name
