"""Build halo's embedded sample: a phantom pelvis MR series and a tiny ensemble.

Everything derives from one seed, so a rerun gives the same phantoms, the
same training subsets and initialisations (training on CPU with one thread
is deterministic up to the libtorch build).

- ``samples/series/``: a synthetic axial T2-like pelvis MR series, 128 x 128
  x 24 voxels of 0.8 x 0.8 x 3.0 mm, written as DICOM MR Image Storage with
  pydicom. It holds a prostate-like gland (darker central zone, brighter
  peripheral rim), a rectum-like tube behind it (wall and dark lumen), a
  bladder above, femoral heads, muscle and a fat ring; air outside the body
  is exactly zero, so nnU-Net's crop to the non-zero box matters.
- ``samples/model/``: five nnU-Net v2 style members (PlainConvUNet,
  features 4-8-16, patch 16 x 48 x 48 at 3.0 x 1.6 x 1.6 mm), each trained
  briefly on its own random subset of phantoms from its own seed, written
  as an nnU-Net results folder (``plans.json`` written here) and exported
  with ``tools/export_nnunet.py``, so the sample runs halo's real nnU-Net
  pipeline. The members disagree along the borders of both structures:
  that is the sample's uncertainty band.

Usage::

    python tools/make_samples.py [--out samples] [--seed 20240611]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_nnunet  # noqa: E402
import nnunet_plans  # noqa: E402

logger = logging.getLogger(__name__)

SHAPE_ZYX = (24, 128, 128)
SPACING_ZYX = (3.0, 0.8, 0.8)
TARGET_SPACING_ZYX = [3.0, 1.6, 1.6]
PATCH_ZYX = [16, 48, 48]
FEATURES = [4, 8, 16]
LABELS = ["Prostate", "Rectum"]
MEMBERS = 5
PHANTOMS = 24
ITERATIONS = 360


def _grid(shape=SHAPE_ZYX, spacing=SPACING_ZYX):
    """Voxel-centre coordinates in mm (z, y, x), centred on the volume."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij")


def _smooth(a: np.ndarray, sigma_mm: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sig = [sigma_mm / s for s in SPACING_ZYX]
    sig[0] = min(sig[0], 0.4)
    return gaussian_filter(a, sig)


def phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: image (float32, 0 outside the body) and labels (uint8:
    1 prostate, 2 rectum), arrays (z, y, x)."""
    z, y, x = _grid()
    j = lambda s: rng.normal(0.0, s)  # noqa: E731

    body = (x / (46 + j(2))) ** 2 + ((y - 2) / (37 + j(2))) ** 2 <= 1
    inner = (x / (40 + j(2))) ** 2 + ((y - 2) / (31 + j(2))) ** 2 <= 1
    img = np.where(body, 520.0, 0.0)
    img = np.where(inner, 260.0 + j(15), img)

    for side in (-1, 1):
        head = ((x - side * (34 + j(1.5))) / 8.5) ** 2 + ((y + 2) / 8.5) ** 2 + (z / 30) ** 2 <= 1
        img = np.where(head, 110.0, img)

    cz, cy, cx = j(3), -6 + j(2), j(2)
    rz, ry, rx = 17 + j(1.5), 13 + j(1.2), 18 + j(1.5)
    r_gland = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    gland = r_gland <= 1
    img = np.where(gland, 330.0 + j(20), img)
    img = np.where(r_gland <= 0.45, 190.0 + j(15), img)

    bz = cz + rz + 14 + j(2)
    bladder = ((z - bz) / 16) ** 2 + ((y - cy + 6) / 20) ** 2 + ((x - cx) / 24) ** 2 <= 1
    img = np.where(bladder & ~gland, 900.0, img)

    ty, tx = cy + ry + 11 + j(1.2), j(1.5)
    wy, wx = 9.5 + j(0.8), 12.5 + j(1)
    r_rect = ((y - ty) / wy) ** 2 + ((x - tx) / wx) ** 2
    rectum = (r_rect <= 1) & (np.abs(z - cz) <= 30)
    img = np.where(rectum, 150.0 + j(10), img)
    img = np.where(rectum & (r_rect <= 0.35), 45.0, img)

    img = _smooth(img, 0.9)
    bias = 1 + 0.12 * np.sin(x / 37 + j(1)) * np.cos(y / 41 + j(1))
    img = img * bias
    sigma = 14.0
    img = np.sqrt((img + rng.normal(0, sigma, img.shape)) ** 2 + rng.normal(0, sigma, img.shape) ** 2)
    img = np.where(body, img, 0.0)

    labels = np.zeros(SHAPE_ZYX, np.uint8)
    labels[gland] = 1
    labels[rectum & ~gland] = 2
    return img.astype(np.float32), labels


def write_dicom(img: np.ndarray, folder: Path, rng: np.random.Generator) -> None:
    """Writes ``img`` (z, y, x) as an axial MR series, one file per slice."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

    def uid() -> str:
        return "2.25." + str(int.from_bytes(rng.bytes(16), "big"))

    study, series, frame = uid(), uid(), uid()
    pixels = np.clip(np.round(img), 0, 4095).astype(np.uint16)
    nz, ny, nx = img.shape
    origin = [-(nx - 1) / 2 * SPACING_ZYX[2], -(ny - 1) / 2 * SPACING_ZYX[1], -30.0]
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(nz):
        sop = uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset(str(folder / f"MR{k + 1:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.Modality = "MR"
        ds.Manufacturer = "halo phantom"
        ds.PatientName = "Phantom^Pelvis"
        ds.PatientID = "HALO-PHANTOM-1"
        ds.PatientBirthDate = ""
        ds.PatientSex = "M"
        ds.StudyDate = "20240101"
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber = 4
        ds.SeriesDescription = "t2 phantom tra"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTime = 104
        ds.RepetitionTime = 4000
        ds.EchoTrainLength = 16
        ds.MagneticFieldStrength = 3
        ds.SliceThickness = SPACING_ZYX[0]
        ds.SpacingBetweenSlices = SPACING_ZYX[0]
        ds.PixelSpacing = [SPACING_ZYX[1], SPACING_ZYX[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        # Rounded so that every DS value fits 16 characters (PS3.5 6.2).
        position = [round(origin[0], 6), round(origin[1], 6), round(origin[2] + k * SPACING_ZYX[0], 6)]
        ds.ImagePositionPatient = position
        ds.SliceLocation = position[2]
        ds.PatientPosition = "HFS"
        ds.Laterality = ""  # type 2C in General Series; the pelvis is unpaired
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = pixels[k].tobytes()
        ds.save_as(folder / f"MR{k + 1:04d}.dcm", enforce_file_format=True)


def preprocess(cases, plans: dict, dataset: dict):
    """nnU-Net's own preprocessing of (image, labels) pairs."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(plans)
    cm = pm.get_configuration(nnunet_plans.CONFIGURATION)
    pre = DefaultPreprocessor(verbose=False)
    out = []
    for img, seg in cases:
        d, s, _ = pre.run_case_npy(
            img[None].astype(np.float32), seg[None].astype(np.int8),
            {"spacing": list(SPACING_ZYX)}, pm, cm, dataset,
        )
        out.append((d.astype(np.float32), np.maximum(s, 0).astype(np.int64)))
    return out


def _crop(rng, d, s, patch):
    pads = [(0, max(0, p - n)) for p, n in zip(patch, d.shape[1:])]
    d = np.pad(d, [(0, 0), *pads])
    s = np.pad(s, [(0, 0), *pads])
    start = [rng.integers(0, n - p + 1) for p, n in zip(patch, d.shape[1:])]
    sl = tuple(slice(a, a + p) for a, p in zip(start, patch))
    return d[(slice(None), *sl)], s[(slice(None), *sl)]


def train_member(member: int, data, plans: dict, dataset: dict, seed: int) -> dict:
    """Trains one member briefly (Adam, cross-entropy + soft Dice)."""
    rng = np.random.default_rng(seed + 1000 * member)
    torch.manual_seed(seed + member)
    subset = rng.choice(len(data), size=int(0.7 * len(data)), replace=False)
    net = nnunet_plans.build_network(plans, dataset)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for it in range(ITERATIONS):
        xs, ys = [], []
        for _ in range(2):
            d, s = data[rng.choice(subset)]
            d, s = _crop(rng, d, s, PATCH_ZYX)
            for ax in (1, 2, 3):
                if rng.random() < 0.5:
                    d, s = np.flip(d, ax), np.flip(s, ax)
            xs.append(d * rng.uniform(0.9, 1.1))
            ys.append(s)
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs)))
        y = torch.from_numpy(np.ascontiguousarray(np.stack(ys)))[:, 0]
        logits = net(x)
        ce = torch.nn.functional.cross_entropy(logits, y)
        p = logits.softmax(1)
        onehot = torch.nn.functional.one_hot(y, 3).permute(0, 4, 1, 2, 3).float()
        inter = (p * onehot).sum((0, 2, 3, 4))
        dice = (2 * inter + 1) / (p.sum((0, 2, 3, 4)) + onehot.sum((0, 2, 3, 4)) + 1)
        loss = ce + (1 - dice[1:].mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 0 or it == ITERATIONS - 1:
            logger.info("member %d iteration %d loss %.3f dice %s", member, it, loss.item(),
                        [round(v, 3) for v in dice[1:].tolist()])
    net.eval()
    return net.state_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "samples")
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)

    rng = np.random.default_rng(args.seed)
    sample_img, _ = phantom(rng)
    series = args.out / "series"
    if series.exists():
        shutil.rmtree(series)
    write_dicom(sample_img, series, rng)
    logger.info("wrote %s", series)

    plans = nnunet_plans.plans(TARGET_SPACING_ZYX, PATCH_ZYX, FEATURES, "Dataset901_Phantom")
    dataset = nnunet_plans.dataset(LABELS)
    cases = [phantom(np.random.default_rng(args.seed + 1 + i)) for i in range(PHANTOMS)]
    data = preprocess(cases, plans, dataset)
    weights = [train_member(m, data, plans, dataset, args.seed) for m in range(MEMBERS)]

    with tempfile.TemporaryDirectory() as tmp:
        results = nnunet_plans.write_results(
            Path(tmp) / "Dataset901_Phantom" / "nnUNetTrainer__nnUNetPlans__3d_fullres",
            plans, dataset, weights,
        )
        export_nnunet.export(
            results, args.out / "model", name="halo phantom pelvis (sample)",
            source=f"tools/make_samples.py --seed {args.seed}", license_="Apache-2.0",
            force=True,
        )
    logger.info("wrote %s", args.out / "model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
