"""``halo compare`` on DICOM inputs: RTSTRUCT ROIs on an MR grid and a PT
uncertainty series give the same numbers as the NIfTI masks they came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from conftest import require_path, run_halo


def ellipsoid(shape, centre, radii):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1.0


def test_rtstruct_and_pt_inputs_match_their_nifti_sources(halo_bin, prostatex, tmp_path):
    mr = require_path(prostatex / "ProstateX-0000" / "4.000000-t2tsetra-00702", "T2 series")
    run_halo(halo_bin, "convert", mr, tmp_path / "mr.nii.gz")
    image = nib.load(tmp_path / "mr.nii.gz")
    shape = image.shape[::-1]  # (z, y, x)
    auto = ellipsoid(shape, (9, 190, 192), (4, 40, 50))
    edited = ellipsoid(shape, (9, 195, 190), (4, 42, 47))
    u = np.clip(np.abs(auto.astype(float) - edited) * 0.45 + 0.02, 0, 0.5)
    for name, arr, dtype in [("auto", auto, np.uint8), ("edited", edited, np.uint8),
                             ("u", u, np.float32)]:
        nib.save(nib.Nifti1Image(arr.transpose(2, 1, 0).astype(dtype), image.affine),
                 tmp_path / f"{name}.nii.gz")
    out = tmp_path / "dicom"
    run_halo(halo_bin, "export-dicom", mr, out,
             "--mask", f"auto={tmp_path / 'auto.nii.gz'}",
             "--mask", f"edited={tmp_path / 'edited.nii.gz'}",
             "--uncertainty", f"prostate={tmp_path / 'u.nii.gz'}")
    rtstruct = out / "rtstruct.dcm"
    pt = next(p for p in out.iterdir() if p.is_dir())

    from_nifti = json.loads(run_halo(
        halo_bin, "compare", "--json", "--reference", tmp_path / "edited.nii.gz",
        "--test", tmp_path / "auto.nii.gz", "--uncertainty", tmp_path / "u.nii.gz").stdout)
    from_dicom = json.loads(run_halo(
        halo_bin, "compare", "--json", "--series", mr, "--reference", f"{rtstruct}#edited",
        "--test", f"{rtstruct}#auto", "--uncertainty", pt).stdout)

    # NIfTI stores the affine in float32 (the oblique origin moves by about
    # 1e-5 mm), so values agree to rounding, not bit for bit.
    for key in ["dice", "surface_dice", "hausdorff", "hausdorff95", "asd_symmetric",
                "added_voxels", "removed_voxels", "apl_total_mm", "volume_test_cm3"]:
        assert np.isclose(from_dicom[key], from_nifti[key], rtol=1e-6), key
    histogram = from_dicom["edited_histogram"]
    assert histogram["added"] == from_nifti["edited_histogram"]["added"]
    assert histogram["removed"] == from_nifti["edited_histogram"]["removed"]
    assert sum(histogram["counts"]) == from_dicom["added_voxels"] + from_dicom["removed_voxels"]
    assert 0.5 < from_dicom["dice"] < 1.0


def test_an_rtstruct_input_without_series_names_what_is_missing(halo_bin, tmp_path):
    proc = run_halo(halo_bin, "compare", "--reference", tmp_path / "x.dcm#A",
                    "--test", tmp_path / "x.dcm#B", check=False)

    assert proc.returncode == 1 and "--series" in proc.stderr
