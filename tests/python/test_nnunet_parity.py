"""Parity of halo's ensemble inference with nnU-Net v2's own predictor.

A small nnU-Net v2 results folder is built from scratch (PlainConvUNet,
features 4-8-16, patch 8 x 48 x 48, three folds of fixed-seed random
weights) with a target spacing of 3.6 x 1.1 x 1.1 mm, unlike the input's
3.0 x 0.5 x 0.5 mm and anisotropic enough that nnU-Net resamples the slice
axis apart. nnunetv2's ``nnUNetPredictor`` runs each fold on CPU on a
cropped ProstateX T2 volume (19 x 120 x 120) (with a zero frame, so that cropping to the
non-zero box and un-cropping are exercised); halo runs the same folds after
``tools/export_nnunet.py``. Tolerances are those of issue 3: per-fold
probabilities within 1e-3, ensemble labels equal on >= 99.9 % of voxels
with every difference a near tie in nnU-Net's own probabilities (its
accumulators are float16), uncertainty equal to NumPy's population standard
deviation of nnU-Net's per-fold probabilities within 1e-3.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_halo

sitk = pytest.importorskip("SimpleITK")
torch = pytest.importorskip("torch")
pytest.importorskip("nnunetv2")

sys.path.insert(0, str(REPO / "tools"))
import nnunet_plans  # noqa: E402

T2 = "ProstateX-0000/4.000000-t2tsetra-00702"
LABELS = ["gland", "rim"]
TARGET_SPACING = [3.6, 1.1, 1.1]
PATCH = [8, 48, 48]
FEATURES = [4, 8, 16]
FOLDS = 3


def make_results(folder: Path) -> Path:
    plans = nnunet_plans.plans(TARGET_SPACING, PATCH, FEATURES)
    dataset = nnunet_plans.dataset(LABELS)
    weights = []
    for fold in range(FOLDS):
        torch.manual_seed(1000 + fold)
        net = nnunet_plans.build_network(plans, dataset)
        weights.append(net.state_dict())
    return nnunet_plans.write_results(folder, plans, dataset, weights)


def make_input(halo_bin: Path, series: Path, folder: Path) -> Path:
    full = folder / "t2.nii.gz"
    run_halo(halo_bin, "convert", series, full)
    img = sitk.ReadImage(str(full))
    crop = img[132:252, 120:240, :]
    arr = sitk.GetArrayFromImage(crop)
    arr[:, :6, :] = 0
    arr[:, -4:, :] = 0
    arr[:, :, :5] = 0
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(crop)
    path = folder / "t2_crop.nii.gz"
    sitk.WriteImage(out, str(path))
    return path


def run_nnunet(results: Path, image: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per-fold probabilities, ensemble labels and ensemble probabilities."""
    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape as export,
    )
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    # One thread: multi-threaded libtorch on a loaded 2-core machine is many
    # times slower, and the result does not depend on it.
    torch.set_num_threads(1)
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=True,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(str(results), use_folds=tuple(range(FOLDS)))
    img = sitk.ReadImage(str(image))
    arr = sitk.GetArrayFromImage(img).astype(np.float32)[None]
    props = {"spacing": list(img.GetSpacing())[::-1]}
    pre = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, props = pre.run_case_npy(
        arr, None, props, predictor.plans_manager, predictor.configuration_manager,
        predictor.dataset_json,
    )
    data = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)

    def to_image(logits):
        return export(
            logits, predictor.plans_manager, predictor.configuration_manager,
            predictor.label_manager, props, return_probabilities=True,
        )

    params = predictor.list_of_parameters
    logits, per_fold = [], []
    for p in params:
        predictor.list_of_parameters = [p]
        fold_logits = predictor.predict_logits_from_preprocessed_data(data).cpu()
        logits.append(fold_logits)
        per_fold.append(to_image(fold_logits)[1])
    # The ensemble exactly as predict_logits_from_preprocessed_data forms
    # it over all folds: a float16 running sum divided by the fold count.
    ensemble = logits[0].clone()
    for fold_logits in logits[1:]:
        ensemble += fold_logits
    ensemble /= len(logits)
    seg, probs = to_image(ensemble)
    return per_fold, seg, probs


@pytest.fixture(scope="module")
def parity(halo_bin: Path, prostatex: Path, tmp_path_factory) -> dict:
    from conftest import require_path

    series = require_path(prostatex / T2, "ProstateX T2 series")
    work = tmp_path_factory.mktemp("parity")
    results = make_results(work / "Dataset900_Halo" / "nnUNetTrainer__nnUNetPlans__3d_fullres")
    image = make_input(halo_bin, series, work)

    per_fold, seg, probs = run_nnunet(results, image)

    model = work / "model"
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "export_nnunet.py"), str(results), str(model)],
        check=True, capture_output=True, text=True,
    )
    out = work / "halo"
    run_halo(
        halo_bin, "segment", "--model", model, "--image", image, "--out", out,
        "--threads", "1", "--member-probabilities",
    )
    return {"per_fold": per_fold, "seg": seg, "probs": probs, "out": out}


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64)


def test_every_folds_probabilities_match_nnunet_within_1e_3(parity):
    names = ["background", *LABELS]
    for fold, ref in enumerate(parity["per_fold"]):
        for c, name in enumerate(names):
            got = read(parity["out"] / "members" / f"member_{fold}_probability_{name}.nii.gz")
            diff = np.abs(got - ref[c])
            worst = np.unravel_index(np.argmax(diff), diff.shape)
            assert diff.max() <= 1e-3, (
                f"fold {fold} class {name}: max diff {diff.max():.2e} at {worst} "
                f"(halo {got[worst]:.6f}, nnU-Net {ref[c][worst]:.6f})"
            )


def test_the_probabilities_exercise_every_class_and_the_crop(parity):
    winners = set()
    for ref in parity["per_fold"]:
        winners |= set(np.unique(np.argmax(ref, axis=0)).tolist())
        # The zero frame lies outside nnU-Net's crop: background probability 1.
        assert np.all(ref[0][:, :6, :] == 1.0)
    assert winners == {0, 1, 2}, f"classes winning somewhere: {winners}"


def test_ensemble_labels_match_nnunet_but_for_near_ties(parity):
    labels = read(parity["out"] / "labels.nii.gz").astype(np.int64)
    seg = parity["seg"].astype(np.int64)
    differ = labels != seg
    agree = 1.0 - differ.mean()
    assert agree >= 0.999, f"labels agree on {agree:.5%} of voxels"
    top2 = np.sort(parity["probs"], axis=0)[-2:]
    gap = (top2[1] - top2[0])[differ]
    assert np.all(gap <= 0.01), f"{np.sum(gap > 0.01)} differing voxels are not near ties"


def test_uncertainty_is_the_population_std_of_nnunets_folds(parity):
    stack = np.stack(parity["per_fold"])
    for c, name in enumerate(LABELS, start=1):
        want = np.std(stack[:, c], axis=0)
        got = read(parity["out"] / f"uncertainty_{name}.nii.gz")
        diff = np.abs(got - want)
        assert diff.max() <= 1e-3, f"{name}: max diff {diff.max():.2e}"
        assert want.max() > 0.05, f"{name}: the folds hardly disagree ({want.max():.3f})"
