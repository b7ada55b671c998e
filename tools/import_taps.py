#!/usr/bin/env python3
"""Turn the TAPS prostate model (PyPI ``lavlab-taps``, MIT) into a halo model folder.

TAPS ships its network as ONNX (``taps/resources/model_v1.onnx``): a MONAI
``SegResNetDS`` (3D, 32 initial filters, one input and one output channel,
GroupNorm with 8 groups, Mish, ``dsdepth=4``). This tool

1. rebuilds that network in MONAI and loads the ONNX initializers into it.
   Convolution weights carry the PyTorch parameter names; the GroupNorm
   affine parameters do not: PyTorch's exporter decomposed each GroupNorm into
   Reshape, InstanceNormalization, Reshape, Mul (weight) and Add (bias), so
   they are found by walking the graph from each InstanceNormalization node
   and matched to the network's GroupNorm modules in execution order (checked
   by channel count, then numerically);
2. checks the rebuilt network against the ONNX graph on a random input, with
   onnxruntime when it is installed, else with onnx's reference evaluator;
3. wraps it so that it takes halo's ``[b, c, z, y, x]`` (the network's
   own spatial axes are MONAI's ``i, j, k``, that is x, y, z), traces it to
   TorchScript (valid for any input size divisible by 8: three stride-2
   levels) and checks the trace on a second input size;
4. writes ``halo-model.json`` with TAPS 1.1.2's own prediction pipeline
   (``taps/inference.py``): RAS orientation, 0.8 x 0.8 x 3.0 mm bilinear
   resampling, z-score over non-zero voxels, crop to foreground (> 0 after
   normalisation) with margin 5, 128 x 128 x 32 sliding window with overlap
   0.5 and Gaussian weights, Gaussian smoothing of the logits (sigma 2.5
   voxels, edge mode), bilinear resampling back, sigmoid > 0.55, largest 3D
   component. A single network has no ensemble, so the members are one
   TorchScript file run under the test-time flips none, x, y and xy; the
   mask is the unflipped pass (TAPS's own prediction) and the flips give
   the probability and uncertainty maps. (The flips' mean logits differ
   from TAPS's mask by Dice 0.98 on ProstateX: they are a different
   prediction, not a reproduction.)

Usage::

    python tools/import_taps.py --out .cache/models/taps
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: The TAPS release whose network and pipeline this tool reproduces.
TAPS_VERSION = "1.1.2"

#: Tolerance of the ONNX check on logits (float32 accumulation differences).
ONNX_ATOL = 1e-3

#: File name of the traced network inside the model folder.
MEMBER_FILE = "taps_segresnetds.pt"


def onnx_path() -> Path:
    """The ONNX file of the installed ``lavlab-taps`` package."""
    version = importlib.metadata.version("lavlab-taps")
    if version != TAPS_VERSION:
        raise SystemExit(
            f"import_taps: lavlab-taps {version} is installed, this tool reproduces "
            f"{TAPS_VERSION} (tools/requirements-taps.txt)"
        )
    files = importlib.metadata.files("lavlab-taps") or []
    for f in files:
        if str(f).replace("\\", "/").endswith("taps/resources/model_v1.onnx"):
            return Path(f.locate())
    raise SystemExit("import_taps: taps/resources/model_v1.onnx not found in lavlab-taps")


def build_network():
    """The TAPS architecture, as ``taps.inference.build_model`` builds it."""
    from monai.networks.nets.segresnet_ds import SegResNetDS

    return SegResNetDS(
        spatial_dims=3,
        init_filters=32,
        in_channels=1,
        out_channels=1,
        norm=("GROUP", {"num_groups": 8}),
        act=("MISH", {"inplace": True}),
        dsdepth=4,
    )


def group_norm_parameters(graph) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The (weight, bias, epsilon) of every decomposed GroupNorm, in graph order.

    Each is the chain InstanceNormalization -> Reshape -> Mul(initializer)
    -> Add(initializer); the InstanceNormalization's own scale and bias must
    be ones and zeros (they normalise the groups, not the channels).
    """
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consts = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only_consumer(name: str, op: str):
        c = [n for n in consumers.get(name, []) if n.op_type == op]
        if len(c) != 1:
            raise SystemExit(f"import_taps: expected one {op} after {name}, found {len(c)}")
        return c[0]

    out = []
    for n in graph.node:
        if n.op_type != "InstanceNormalization":
            continue
        scale = consts.get(n.input[1], inits.get(n.input[1]))
        shift = consts.get(n.input[2], inits.get(n.input[2]))
        if scale is None or not np.all(scale == 1) or shift is None or not np.all(shift == 0):
            raise SystemExit(f"import_taps: {n.name} has a non-trivial scale or bias")
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        reshape = only_consumer(n.output[0], "Reshape")
        mul = only_consumer(reshape.output[0], "Mul")
        add = only_consumer(mul.output[0], "Add")
        w = next(inits[i] for i in mul.input if i in inits)
        b = next(inits[i] for i in add.input if i in inits)
        out.append((w.reshape(-1), b.reshape(-1), eps))
    return out


def load_onnx_weights(net, model) -> None:
    """Copies the ONNX initializers into ``net`` (see the module docs)."""
    import torch
    from onnx import numpy_helper

    graph = model.graph
    named = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state = net.state_dict()

    # Execution order of the GroupNorm modules, from forward hooks.
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name))
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.GroupNorm)
    ]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, 16, 16, 16))
    for h in hooks:
        h.remove()
    norms = group_norm_parameters(graph)
    if len(order) != len(norms):
        raise SystemExit(
            f"import_taps: the network runs {len(order)} GroupNorms, the ONNX graph has "
            f"{len(norms)}"
        )

    new_state = {}
    for name, (w, b, eps) in zip(order, norms):
        module = net.get_submodule(name)
        if module.num_channels != w.size or abs(module.eps - eps) > 1e-9:
            raise SystemExit(
                f"import_taps: {name} has {module.num_channels} channels (eps {module.eps}), "
                f"the ONNX norm in its place {w.size} (eps {eps})"
            )
        new_state[f"{name}.weight"] = torch.from_numpy(w.copy())
        new_state[f"{name}.bias"] = torch.from_numpy(b.copy())
    for key in state:
        if key in named:
            new_state[key] = torch.from_numpy(named[key].copy())

    # The deep-supervision heads of the coarser levels are unused in eval
    # mode, so the exporter dropped them; nothing else may be missing.
    missing = [k for k in state if k not in new_state]
    if any(".head." not in k or k.startswith("up_layers.2.") for k in missing):
        raise SystemExit(f"import_taps: no ONNX weights for {missing}")
    unused = set(named) - set(new_state) - {
        n for n in named if n.startswith("onnx::Mul_") or n.startswith("onnx::Add_")
    }
    if unused:
        raise SystemExit(f"import_taps: ONNX initializers not used: {sorted(unused)}")
    for k, v in new_state.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise SystemExit(f"import_taps: {k} is {tuple(v.shape)} in ONNX, {tuple(state[k].shape)}")
    net.load_state_dict(new_state, strict=False)
    log.info("loaded %d tensors (%d GroupNorms) from ONNX", len(new_state), len(order))


def _halo_axes_class():
    import torch

    class _HaloAxes(torch.nn.Module):
        """halo's network convention around the MONAI network.

        halo passes ``[b, c, z, y, x]``; TAPS's network was trained on
        MONAI's ``[b, c, i, j, k]`` of the RAS NIfTI, that is
        ``[b, c, x, y, z]``. The wrapper reverses the spatial axes on the
        way in and out.
        """

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.net(x.permute(0, 1, 4, 3, 2).contiguous())
            return y.permute(0, 1, 4, 3, 2).contiguous()

    return _HaloAxes


def onnx_reference(model_path: Path, x: np.ndarray) -> tuple[np.ndarray, str]:
    """The ONNX graph's output on ``x``, with onnxruntime or onnx's evaluator."""
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return sess.run(None, {name: x})[0], f"onnxruntime {ort.__version__}"
    except ImportError:
        import onnx
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(str(model_path))
        return ref.run(None, {"input": x})[0], f"onnx reference evaluator {onnx.__version__}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(member_sha: str) -> dict:
    """The halo manifest of TAPS's pipeline (taps/inference.py, version 1.1.2).

    Axes are the array's ``[z, y, x]``; after RAS orientation x grows towards
    the patient's right, y towards anterior and z towards superior, as MONAI's
    ``Orientationd("RAS")`` leaves the NIfTI axes i, j and k.
    """
    flips = [
        {"name": "none", "flip": []},
        {"name": "x", "flip": [2]},
        {"name": "y", "flip": [1]},
        {"name": "xy", "flip": [1, 2]},
    ]
    return {
        "format_version": 1,
        "name": "TAPS prostate",
        "source": f"PyPI lavlab-taps {TAPS_VERSION}, taps/resources/model_v1.onnx "
        "(MONAI SegResNetDS), imported by tools/import_taps.py",
        "license": "MIT",
        "input_channels": ["T2"],
        "labels": [{"value": 1, "name": "Prostate", "colour": [255, 0, 0], "rt_type": "ORGAN"}],
        "activation": "sigmoid",
        "members": [{"file": MEMBER_FILE, "sha256": member_sha}],
        "preprocessing": {
            "kind": "monai",
            "orientation": "ras",
            "target_spacing": [3.0, 0.8, 0.8],
            "spacing_tolerance": 1e-3,
            "resample": "linear",
            "normalisation": {"kind": "zscore", "nonzero": True},
            "crop_foreground": {"margin": 5},
            "patch_size": [32, 128, 128],
            "divisible_by": 8,
            "overlap": 0.5,
            "blend": "gaussian",
            "sigma_scale": 0.125,
            "logit_smoothing_sigma": 2.5,
            "threshold": 0.55,
            "export_resample": "linear",
            "largest_component": True,
            "test_time_flips": flips,
            "labels_from": "unflipped",
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--onnx", type=Path, help="ONNX file (default: the installed lavlab-taps)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random check input")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="import_taps: %(message)s")

    import onnx
    import torch

    src = args.onnx or onnx_path()
    model = onnx.load(str(src))
    net = build_network()
    load_onnx_weights(net, model)
    net.eval()

    # 1. Numerical check against the ONNX graph (its input is 128 x 128 x 32).
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((1, 1, 128, 128, 32)).astype(np.float32)
    want, how = onnx_reference(src, x)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    diff = float(np.max(np.abs(got - want)))
    log.info("rebuilt network vs %s: max |logit difference| %.2e", how, diff)
    if not diff <= ONNX_ATOL:
        raise SystemExit(f"import_taps: rebuilt network differs from the ONNX graph by {diff}")

    # 2. Trace in halo's axis order, then check the trace on another size
    # divisible by 8.
    wrapped = _halo_axes_class()(net).eval()
    zyx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 3, 2)))
    with torch.no_grad():
        traced = torch.jit.trace(wrapped, zyx, check_trace=False)
        d1 = float(np.max(np.abs(traced(zyx).numpy().transpose(0, 1, 4, 3, 2) - want)))
        torch.manual_seed(args.seed)
        y = torch.randn(1, 1, 40, 96, 64)
        d2 = float((traced(y) - wrapped(y)).abs().max())
    log.info("traced network: %.2e vs ONNX at 32x128x128 (zyx), %.2e vs eager at 40x96x64", d1, d2)
    if not (d1 <= ONNX_ATOL and d2 <= 1e-4):
        raise SystemExit(f"import_taps: the trace differs ({d1}, {d2})")

    # 3. Write the folder atomically: a temporary sibling renamed into place.
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        member = tmp / MEMBER_FILE
        traced.save(str(member))
        m = manifest(sha256(member))
        (tmp / "halo-model.json").write_text(json.dumps(m, indent=2) + "\n")
        check = {
            "onnx": str(src),
            "onnx_sha256": sha256(src),
            "reference": how,
            "max_abs_logit_difference_128x128x32": diff,
            "trace_vs_onnx_128x128x32": d1,
            "trace_vs_eager_zyx_40x96x64": d2,
        }
        (tmp / "import_check.json").write_text(json.dumps(check, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
