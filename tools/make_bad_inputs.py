"""Write halo's corpus of bad DICOM inputs into ``tests/dicom-corpus/``.

Each case is a folder holding a small MR series (8 x 8 pixels, 4 slices,
1 x 1 x 2 mm) with one defect, plus ``good/`` without any. The expected
error of each case is listed in ``tests/dicom-corpus/cases.json``, which the
tests read. Run from the repository root:

    .venv/bin/python tools/make_bad_inputs.py

The output is deterministic (fixed UIDs), so re-running changes nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RTStructureSetStorage

logger = logging.getLogger(__name__)

OUT = Path("tests/dicom-corpus")
ROOT_UID = "1.2.826.0.1.3680043.10.1414"  # fixed prefix: deterministic files
pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE


def slice_ds(k: int, n_rows: int = 8, n_cols: int = 8, series: str = "1") -> Dataset:
    """One MR slice ``k`` of the good series: axial, z = 2 k mm."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = f"{ROOT_UID}.{series}.{k + 1}"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = "Corpus^Bad"
    ds.PatientID = "CORPUS"
    ds.StudyInstanceUID = f"{ROOT_UID}.100"
    ds.SeriesInstanceUID = f"{ROOT_UID}.200.{series}"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "corpus"
    ds.FrameOfReferenceUID = f"{ROOT_UID}.300"
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [-4.0, -4.0, 2.0 * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 2.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = n_rows
    ds.Columns = n_cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    pixels = (np.arange(n_rows * n_cols, dtype=np.uint16) + 100 * k).reshape(n_rows, n_cols)
    ds.PixelData = pixels.tobytes()
    return ds


def write_series(folder: Path, slices: list[Dataset]) -> None:
    """Write ``slices`` as ``folder/sliceNN.dcm``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, ds in enumerate(slices):
        ds.save_as(folder / f"slice{i:02d}.dcm", enforce_file_format=True)


def good(n: int = 4) -> list[Dataset]:
    """The good series."""
    return [slice_ds(k) for k in range(n)]


def main() -> None:
    """Write every case and ``cases.json``."""
    logging.basicConfig(level=logging.INFO)
    if OUT.exists():
        shutil.rmtree(OUT)
    cases: dict[str, str] = {}

    def case(name: str, expected: str, slices: list[Dataset] | None = None) -> Path:
        folder = OUT / name
        if slices is not None:
            write_series(folder, slices)
        else:
            folder.mkdir(parents=True)
        cases[name] = expected
        return folder

    write_series(OUT / "good", good())

    f = case("zero-byte-file", "no DICOM files found")
    (f / "empty.dcm").write_bytes(b"")

    f = case("not-dicom", "no DICOM files found")
    (f / "notes.dcm").write_text("this is a text file, not DICOM\n")

    f = case("truncated-file", "slice03.dcm", good())
    data = (f / "slice03.dcm").read_bytes()
    (f / "slice03.dcm").write_bytes(data[: len(data) - 60])

    f = case("duplicate-instance", "duplicate instance", good())
    shutil.copy(f / "slice01.dcm", f / "slice01-copy.dcm")

    s = good()
    s[2] = slice_ds(2, n_cols=10)
    case("mixed-sizes", "Columns (0028,0011) varies", s)

    s = good()
    del s[1].PixelData
    case("missing-pixel-data", "has no PixelData (7FE0,0010)", s)

    s = good()
    s[0].RescaleSlope = "NaN"
    case("nan-rescale", "RescaleSlope (0028,1053) value NaN is not finite", s)

    s = good()
    s[3].RescaleSlope = "1e38"
    s[3].RescaleIntercept = "3e38"
    case("overflowing-rescale", "is not finite", s)

    s = good()
    del s[2].ImagePositionPatient
    case("missing-position", "has no ImagePositionPatient (0020,0032)", s)

    s = good()
    for ds in s:
        del ds.ImageOrientationPatient
    case("missing-orientation", "has no ImageOrientationPatient (0020,0037)", s)

    s = good()
    s[1].ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43588989]
    case("orientation-varies", "ImageOrientationPatient (0020,0037) varies", s)

    s = good()
    s[3].PixelSpacing = [1.0, 1.2]
    case("pixel-spacing-varies", "PixelSpacing (0028,0030) varies", s)

    s = good(6)
    del s[3]
    case("missing-slice", "missing slice", s)

    s = good(5)
    s[4].ImagePositionPatient = [-4.0, -4.0, 9.1]
    case("irregular-spacing", "slice spacing varies", s)

    s = good()
    for ds in s:
        ds.ImageOrientationPatient = [1, 0, 0, 0.5, 0.5, 0]
    case("non-orthonormal-orientation", "is not two orthogonal unit vectors", s)

    s = good(1)
    del s[0].SliceThickness
    case("single-slice-no-thickness", "single slice without a positive SliceThickness", s)

    s = good() + [slice_ds(k) for k in range(4)]
    for k, ds in enumerate(s[4:]):
        ds.SOPInstanceUID = f"{ROOT_UID}.9.{k + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for ds in s[:4]:
        ds.SequenceName = "*ep_b50t"
    for ds in s[4:]:
        ds.SequenceName = "*ep_b800t"
    case("two-volumes-one-series", "several volumes share one series", s)

    s = good()
    s[2].PixelData = s[2].PixelData[:40]
    case("short-pixel-data", "slice02.dcm", s)

    s = good()
    for ds in s:
        ds.PixelSpacing = [0.0, 0.0]
    case("zero-pixel-spacing", "PixelSpacing (0028,0030) [0.0, 0.0] is not positive", s)

    s = good()
    for ds in s:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.PixelData = ds.PixelData * 3
    case("rgb-pixels", "only greyscale images are supported", s)

    f = case("malformed-position", "slice01.dcm: is a DICOM file that cannot be parsed", good())
    raw = (f / "slice01.dcm").read_bytes()
    original = b"-4.0\\-4.0\\2.0"
    assert raw.count(original) == 1, "position string not found once"
    (f / "slice01.dcm").write_bytes(raw.replace(original, b"abc\\-4.0\\2.0"))

    s = good()
    for ds in s:
        ds.Rows = 0
        ds.PixelData = b""
    case("zero-rows", "image size 0 x 8 is empty", s)

    rt = Dataset()
    rt.file_meta = FileMetaDataset()
    rt.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    rt.file_meta.MediaStorageSOPInstanceUID = f"{ROOT_UID}.500"
    rt.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rt.SOPClassUID = RTStructureSetStorage
    rt.SOPInstanceUID = rt.file_meta.MediaStorageSOPInstanceUID
    rt.Modality = "RTSTRUCT"
    rt.SeriesInstanceUID = f"{ROOT_UID}.501"
    f = case("not-an-image", "has no Rows (0028,0010)")
    rt.save_as(f / "rtstruct.dcm", enforce_file_format=True)

    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
    logger.info("wrote %d cases to %s", len(cases), OUT)


if __name__ == "__main__":
    main()
