"""halo's series reader against SimpleITK's ImageSeriesReader on real scans.

For every series of the ProstateX studies that halo loads, geometry from
``halo inspect --json`` must match SimpleITK (origin 1e-4 mm, direction
1e-6, spacing 1e-4 mm) and every voxel of ``halo convert`` must equal
SimpleITK's. Series that are not one volume must be refused with their
specific message. pydicom's own test files cover single-slice, big-endian
and compressed transfer syntaxes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from conftest import require_path, run_halo

STUDIES = ["ProstateX-0000", "ProstateX-0001"]
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def inspect(halo_bin: Path, folder: Path) -> list[dict]:
    proc = run_halo(halo_bin, "inspect", "--json", folder)
    return json.loads(proc.stdout)["series"]


def sitk_series(folder: Path, uid: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder), uid, False, True)
    reader.SetFileNames(files)
    return reader.Execute()


def halo_array(halo_bin: Path, folder: Path, uid: str, tmp: Path) -> np.ndarray:
    out = tmp / f"{uid}.nii.gz"
    run_halo(halo_bin, "convert", folder, out, "--series", uid)
    # nibabel gives [x][y][z]; halo and SimpleITK arrays are [z][y][x].
    return np.asarray(nib.load(out).dataobj).transpose(2, 1, 0)


def assert_geometry(entry: dict, image: sitk.Image) -> None:
    uid = entry["series_instance_uid"]
    assert entry["dims"] == list(image.GetSize()), uid
    np.testing.assert_allclose(entry["spacing"], image.GetSpacing(), atol=1e-4, err_msg=uid)
    np.testing.assert_allclose(entry["origin"], image.GetOrigin(), atol=1e-4, err_msg=uid)
    np.testing.assert_allclose(entry["direction"], image.GetDirection(), atol=1e-6, err_msg=uid)


@pytest.mark.parametrize("study", STUDIES)
def test_every_loadable_series_matches_simpleitk(halo_bin, prostatex, study, tmp_path):
    folder = require_path(prostatex / study, study)
    series = inspect(halo_bin, folder)
    loadable = [s for s in series if s["problem"] is None]
    assert len(loadable) >= 5, f"only {len(loadable)} loadable series in {study}"

    for entry in loadable:
        uid = entry["series_instance_uid"]
        series_dir = Path(pydicom.dcmread(
            next(p for p in folder.rglob("*.dcm") if pydicom.dcmread(
                p, stop_before_pixels=True).SeriesInstanceUID == uid),
            stop_before_pixels=True).filename).parent
        image = sitk_series(series_dir, uid)

        assert_geometry(entry, image)
        ours = halo_array(halo_bin, folder, uid, tmp_path)
        theirs = sitk.GetArrayFromImage(image).astype(np.float32)
        assert ours.shape == theirs.shape, uid
        diff = np.argwhere(ours != theirs)
        assert diff.size == 0, f"{uid}: {len(diff)} voxels differ, first at [z,y,x]={diff[0]}"


def test_axial_t2_series_are_loadable_and_oblique(halo_bin, prostatex):
    series = inspect(halo_bin, require_path(prostatex / "ProstateX-0000", "study"))
    t2 = [s for s in series if s["series_description"] == "t2_tse_tra"]

    assert len(t2) == 1 and t2[0]["problem"] is None
    assert t2[0]["dims"] == [384, 384, 19]
    tilt = np.degrees(np.arccos(abs(t2[0]["direction"][8])))
    assert 18.0 < tilt < 19.2, f"tilt {tilt} degrees"


def test_two_axial_t2_series_of_one_study_are_told_apart(halo_bin, prostatex, tmp_path):
    folder = require_path(prostatex / "ProstateX-0001", "study")
    series = inspect(halo_bin, folder)
    t2 = [s for s in series if s["series_description"].startswith("t2_tse_tra")]
    assert len(t2) == 2

    ambiguous = run_halo(halo_bin, "convert", folder, tmp_path / "x.nii.gz",
                         "--series", "t2_tse_tra", check=False)
    chosen = run_halo(halo_bin, "convert", folder, tmp_path / "y.nii.gz",
                      "--series", str(t2[1]["series_number"]), check=False)

    assert ambiguous.returncode != 0 and "2 series match" in ambiguous.stderr
    unselected = run_halo(halo_bin, "convert", folder, tmp_path / "z.nii.gz", check=False)
    assert unselected.returncode != 0
    assert f"the folder holds {len(series)} series" in unselected.stderr, unselected.stderr
    assert chosen.returncode == 0, chosen.stderr


def test_diffusion_volumes_sharing_a_uid_are_refused_and_can_be_split(
        halo_bin, prostatex, tmp_path):
    folder = require_path(prostatex / "ProstateX-0000" / "6.000000-ep2ddifftraDYNDIST-69284",
                          "diffusion series")
    [entry] = inspect(halo_bin, folder)
    assert "several volumes share one series" in entry["problem"]
    assert "SequenceName (0018,0024)" in entry["problem"]

    refused = run_halo(halo_bin, "convert", folder, tmp_path / "d.nii.gz", check=False)
    split = run_halo(halo_bin, "convert", folder, tmp_path / "b50.nii.gz",
                     "--split-by", "SequenceName", "--split-value", "*ep_b50t", check=False)

    assert refused.returncode != 0 and "several volumes" in refused.stderr
    assert split.returncode == 0, split.stderr
    b50 = [pydicom.dcmread(p, stop_before_pixels=True) for p in folder.glob("*.dcm")]
    b50 = [d for d in b50 if d.SequenceName == "*ep_b50t"]
    iop = np.array(b50[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    b50.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(d.filename) for d in b50])
    theirs = sitk.GetArrayFromImage(reader.Execute()).astype(np.float32)
    ours = np.asarray(nib.load(tmp_path / "b50.nii.gz").dataobj).transpose(2, 1, 0)
    assert ours.shape == theirs.shape == (19, 128, 84)
    assert np.array_equal(ours, theirs)


def test_a_series_with_a_missing_slice_is_refused(halo_bin, prostatex, tmp_path):
    folder = require_path(prostatex / "missing-slice", "missing-slice series")

    proc = run_halo(halo_bin, "convert", folder, tmp_path / "m.nii.gz", check=False)

    assert proc.returncode == 1
    assert "missing slice" in proc.stderr and "1-05.dcm" in proc.stderr
    assert "panicked" not in proc.stderr
    assert not (tmp_path / "m.nii.gz").exists()


@pytest.mark.parametrize("name", [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_padded.dcm",
    "MR_small_jp2klossless.dcm",
    "CT_small.dcm",
    "examples_overlay.dcm",
])
def test_pydicom_single_slice_files_match_simpleitk(halo_bin, name, tmp_path):
    src = require_path(PYDICOM_FILES / name, f"pydicom test file {name}")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / name)
    out = tmp_path / "out.nii.gz"

    proc = run_halo(halo_bin, "convert", folder, out, check=False)

    assert proc.returncode == 0, proc.stderr
    image = sitk.ReadImage(str(src))
    ours = np.asarray(nib.load(out).dataobj).transpose(2, 1, 0)
    theirs = sitk.GetArrayFromImage(image).astype(np.float32)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs), name
    [entry] = inspect(halo_bin, folder)
    np.testing.assert_allclose(entry["origin"], image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(entry["direction"], image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(entry["spacing"][:2], image.GetSpacing()[:2], atol=1e-4)


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_truncated.dcm"])
def test_unsupported_or_damaged_pixel_data_is_a_clear_error(halo_bin, name, tmp_path):
    src = require_path(PYDICOM_FILES / name, f"pydicom test file {name}")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / name)

    proc = run_halo(halo_bin, "convert", folder, tmp_path / "o.nii.gz", check=False)

    assert proc.returncode == 1
    assert name in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr
    assert not (tmp_path / "o.nii.gz").exists()
