"""Small nnU-Net v2 results folders written from scratch.

Used by the parity test and by the sample builder: ``plans.json`` and
``dataset.json`` in the layout nnunetv2 2.x reads, a ``PlainConvUNet``
configuration (``dynamic_network_architectures``), and checkpoints holding
only what ``nnUNetPredictor.initialize_from_trained_model_folder`` reads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

CONFIGURATION = "3d_fullres"
TRAINER = "nnUNetTrainer"
PLANS_NAME = "nnUNetPlans"


def arch_kwargs(features: list[int], patch_z_pooled: bool = True) -> dict:
    """PlainConvUNet keyword arguments: one conv per stage, in-plane-only
    first stage (anisotropic data), InstanceNorm and LeakyReLU as nnU-Net.

    ``features`` gives the channels per stage; the first stage keeps full
    resolution, later ones halve y and x, and z too when ``patch_z_pooled``
    (from the third stage on).
    """
    n = len(features)
    kernels = [[1, 3, 3]] + [[3, 3, 3]] * (n - 1)
    strides = [[1, 1, 1]] + [
        [2 if (patch_z_pooled and i >= 2) else 1, 2, 2] for i in range(1, n)
    ]
    return {
        "n_stages": n,
        "features_per_stage": features,
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": kernels,
        "strides": strides,
        "n_conv_per_stage": [1] * n,
        "n_conv_per_stage_decoder": [1] * (n - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def plans(
    spacing_zyx: list[float],
    patch_zyx: list[int],
    features: list[int],
    dataset_name: str = "Dataset900_Halo",
) -> dict:
    """A ``plans.json`` with one 3D configuration and default resampling."""
    return {
        "dataset_name": dataset_name,
        "plans_name": PLANS_NAME,
        "original_median_spacing_after_transp": spacing_zyx,
        "original_median_shape_after_transp": [16, 128, 128],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            CONFIGURATION: {
                "data_identifier": f"{PLANS_NAME}_{CONFIGURATION}",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": patch_zyx,
                "median_image_size_in_voxels": [16, 128, 128],
                "spacing": spacing_zyx,
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {
                    "is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None
                },
                "resampling_fn_seg_kwargs": {
                    "is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None
                },
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None
                },
                "architecture": {
                    "network_class_name":
                        "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                    "arch_kwargs": arch_kwargs(features),
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 1000.0, "mean": 300.0, "median": 290.0, "min": 0.0,
                  "percentile_00_5": 10.0, "percentile_99_5": 900.0, "std": 120.0}
        },
    }


def dataset(label_names: list[str], channel: str = "T2") -> dict:
    """A ``dataset.json`` with background 0 and ``label_names`` 1, 2, ..."""
    labels = {"background": 0}
    labels.update({name: i + 1 for i, name in enumerate(label_names)})
    return {
        "channel_names": {"0": channel},
        "labels": labels,
        "numTraining": 0,
        "file_ending": ".nii.gz",
    }


def build_network(plans_dict: dict, dataset_dict: dict):
    """The network nnU-Net's predictor would build for these files."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    pm = PlansManager(plans_dict)
    cm = pm.get_configuration(CONFIGURATION)
    heads = pm.get_label_manager(dataset_dict).num_segmentation_heads
    channels = len(dataset_dict["channel_names"])
    return nnUNetTrainer.build_network_architecture(
        pm, cm, channels, heads, enable_deep_supervision=False
    )


def write_results(
    folder: Path,
    plans_dict: dict,
    dataset_dict: dict,
    fold_weights: list[dict],
    mirror_axes: tuple[int, ...] = (0, 1, 2),
) -> Path:
    """Writes ``folder`` as an nnU-Net trained-configuration folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans_dict, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_dict, indent=2))
    for k, weights in enumerate(fold_weights):
        d = folder / f"fold_{k}"
        d.mkdir(exist_ok=True)
        torch.save(
            {
                "network_weights": weights,
                "trainer_name": TRAINER,
                "init_args": {
                    "plans": plans_dict,
                    "configuration": CONFIGURATION,
                    "fold": k,
                    "dataset_json": dataset_dict,
                },
                "inference_allowed_mirroring_axes": mirror_axes,
            },
            d / "checkpoint_final.pth",
        )
    logger.info("wrote nnU-Net results folder %s with %d folds", folder, len(fold_weights))
    return folder
