"""Export an nnU-Net v2 results folder as a halo model folder.

The input is a trained configuration's folder, the one holding
``plans.json``, ``dataset.json`` and ``fold_K/checkpoint_final.pth``
(``nnUNet_results/DatasetXXX/Trainer__Plans__Configuration``). Each chosen
fold's network is built exactly as nnU-Net's ``nnUNetPredictor`` builds it
(the checkpoint's trainer class, deep supervision off, eval mode), loaded
with the fold's weights, traced to TorchScript on a zero patch, and saved as
``fold_K.pt``. ``plans.json`` and ``dataset.json`` are copied and
``halo-model.json`` is written with every member's SHA-256.

Usage::

    python tools/export_nnunet.py RESULTS_DIR OUT_DIR [--folds 0 1 2]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import shutil
import sys
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

# Distinct display colours (RGB) for labels 1, 2, ...; cycled when longer.
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
]


def sha256(path: Path) -> str:
    """SHA-256 of a file, lowercase hexadecimal."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def find_folds(results: Path, checkpoint: str) -> list[int | str]:
    """Folds with ``checkpoint`` present, numbers first, then ``all``."""
    folds: list[int | str] = []
    for d in sorted(results.glob("fold_*")):
        if not (d / checkpoint).is_file():
            continue
        name = d.name[len("fold_"):]
        folds.append(int(name) if name.isdigit() else name)
    return sorted(folds, key=lambda f: (isinstance(f, str), str(f).zfill(8)))


def build_network(results: Path, checkpoint: dict, dataset: dict, plans: dict):
    """The network of ``checkpoint`` as ``nnUNetPredictor`` builds it."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    configuration = checkpoint["init_args"]["configuration"]
    configuration_manager = plans_manager.get_configuration(configuration)
    channels = determine_num_input_channels(plans_manager, configuration_manager, dataset)
    heads = plans_manager.get_label_manager(dataset).num_segmentation_heads
    trainer_name = checkpoint["trainer_name"]
    trainer = recursive_find_trainer_class_by_name(trainer_name)
    if trainer is None:
        raise SystemExit(f"trainer class {trainer_name!r} of {results} not found in nnunetv2")
    if "plans_manager" in inspect.signature(trainer.build_network_architecture).parameters:
        net = trainer.build_network_architecture(
            plans_manager, configuration_manager, channels, heads, enable_deep_supervision=False
        )
    else:
        net = trainer.build_network_architecture(
            configuration_manager.network_arch_class_name,
            configuration_manager.network_arch_init_kwargs,
            configuration_manager.network_arch_init_kwargs_req_import,
            channels,
            heads,
            enable_deep_supervision=False,
        )
    return net, configuration, configuration_manager.patch_size, channels


def manifest_labels(dataset: dict) -> tuple[str, list[dict]]:
    """Activation and output-channel labels from ``dataset.json``."""
    labels = dataset["labels"]
    regions = any(isinstance(v, (list, tuple)) for v in labels.values())
    out = []
    if regions:
        order = dataset["regions_class_order"]
        names = [k for k in labels if k != "background"]
        for i, (name, value) in enumerate(zip(names, order)):
            out.append(
                {"value": int(value), "name": name, "colour": list(PALETTE[i % len(PALETTE)]),
                 "rt_type": "ORGAN"}
            )
        return "sigmoid", out
    for i, (name, value) in enumerate(sorted(labels.items(), key=lambda kv: int(kv[1]))):
        entry = {"value": int(value), "name": name}
        if int(value) != 0:
            entry["colour"] = list(PALETTE[(i - 1) % len(PALETTE)])
            entry["rt_type"] = "ORGAN"
        out.append(entry)
    return "softmax", out


def export(
    results: Path,
    out: Path,
    folds: list[int | str] | None = None,
    checkpoint_name: str = "checkpoint_final.pth",
    name: str | None = None,
    source: str | None = None,
    license_: str = "unknown",
    force: bool = False,
) -> Path:
    """Writes the model folder ``out`` from the results folder ``results``."""
    dataset = json.loads((results / "dataset.json").read_text())
    plans = json.loads((results / "plans.json").read_text())
    folds = folds if folds else find_folds(results, checkpoint_name)
    if not folds:
        raise SystemExit(f"no fold_*/{checkpoint_name} in {results}")
    if out.exists():
        if not force:
            raise SystemExit(f"{out} exists; use --force to replace it")
        shutil.rmtree(out)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    members = []
    configuration = None
    mirror_axes: list[int] = []
    channels = 1
    for fold in folds:
        path = results / f"fold_{fold}" / checkpoint_name
        if not path.is_file():
            raise SystemExit(f"fold {fold}: {path} not found")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        net, configuration, patch, channels = build_network(results, ckpt, dataset, plans)
        net.load_state_dict(ckpt["network_weights"])
        net.eval()
        axes = ckpt.get("inference_allowed_mirroring_axes")
        mirror_axes = [int(a) for a in axes] if axes is not None else []

        example = torch.zeros((1, channels, *patch), dtype=torch.float32)
        with torch.no_grad():
            traced = torch.jit.trace(net, example)
        file = f"fold_{fold}.pt"
        traced.save(str(tmp / file))
        members.append({"file": file, "sha256": sha256(tmp / file)})
        if isinstance(fold, int):
            members[-1]["fold"] = fold
        logger.info("exported fold %s (patch %s) to %s", fold, list(patch), file)

    shutil.copy(results / "plans.json", tmp / "plans.json")
    shutil.copy(results / "dataset.json", tmp / "dataset.json")
    activation, labels = manifest_labels(dataset)
    channel_names = dataset.get("channel_names", dataset.get("modality", {}))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name or plans.get("dataset_name", results.name),
        "source": source or f"nnU-Net v2 {results.name}",
        "license": license_,
        "input_channels": [channel_names[k] for k in sorted(channel_names, key=int)],
        "labels": labels,
        "activation": activation,
        "members": members,
        "preprocessing": {
            "kind": "nnunet",
            "plans": "plans.json",
            "dataset": "dataset.json",
            "configuration": configuration,
            "tile_step_size": 0.5,
            "mirror_axes": mirror_axes,
            "accumulate": "float16",
        },
    }
    (tmp / "halo-model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="nnU-Net v2 trained configuration folder")
    parser.add_argument("out", type=Path, help="halo model folder to write")
    parser.add_argument("--folds", nargs="+", help="folds to export (default: all found)")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth")
    parser.add_argument("--name")
    parser.add_argument("--source")
    parser.add_argument("--license", default="unknown", dest="license_")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    folds = [int(f) if f.isdigit() else f for f in args.folds] if args.folds else None
    export(args.results, args.out, folds, args.checkpoint, args.name, args.source,
           args.license_, args.force)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
