#!/usr/bin/env python3
"""Benchmark halo's ensemble inference against nnU-Net v2's own pipeline.

One synthetic nnU-Net v2 results folder (``tools/nnunet_plans.py``: a
PlainConvUNet with fixed-seed random weights, five folds, test-time
mirroring on all three axes) and one real input (ProstateX-0000 axial T2,
19 x 384 x 384 at 3.0 x 0.5 x 0.5 mm, resampled by the plans to
3.6 x 1.1 x 1.1 mm). Three comparisons, each the median of ``--runs`` runs,
whole processes timed from start to exit, on the CPU with the same number
of intra-op threads on both sides:

1. the published way to get an uncertainty map: ``nnUNetv2_predict_from_
   modelfolder`` on all folds (the segmentation), then once per fold with
   ``--save_probabilities``, then NumPy's standard deviation across the
   saved per-fold probabilities; against ``halo segment`` (labels, mean
   probabilities and uncertainty in one pass). Wall time and peak memory
   (the largest sum of proportional set sizes over the process tree,
   sampled every 50 ms; for the pipeline, the largest of its steps);
2. one ``nnUNetPredictor`` call on all folds (segmentation only) against
   the same ``halo segment`` run; for reference also with glibc's
   allocator set as ``halo`` sets it for itself
   (``halo_core::backend::keep_freed_memory``), through ``GLIBC_TUNABLES``;
3. the share of halo's wall time outside the networks' forward passes
   (``core/examples/forward_timing.rs``: the run of ``halo segment`` with
   ``Network::forward`` timed).

Writes its section of ``docs/benchmarks.md`` (between
``<!-- inference:begin -->`` and ``<!-- inference:end -->``), leaving the
other sections as they are. Needs the release build of ``halo``, the
``halo-torch`` plug-in and the ``forward_timing`` example::

    cargo build --release -p halo-cli -p halo-torch
    cargo build --release -p halo-core --example forward_timing
    .venv/bin/python tools/bench/bench_inference.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import nnunet_plans  # noqa: E402

log = logging.getLogger(__name__)

BEGIN = "<!-- inference:begin -->"
END = "<!-- inference:end -->"
SERIES = "data/prostatex/ProstateX-0000/4.000000-t2tsetra-00702"
LABELS = ["gland", "rim"]
TARGET_SPACING = [3.6, 1.1, 1.1]
PATCH = [16, 128, 128]
FEATURES = [4, 8, 16, 32]
FOLDS = 5

STD_SCRIPT = """
import sys, numpy as np
files = sys.argv[2:]
stack = np.stack([np.load(f)["probabilities"] for f in files])
np.save(sys.argv[1], np.std(stack, axis=0))
"""

PREDICTOR_SCRIPT = """
import sys, torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
torch.set_num_threads(int(sys.argv[4]))
p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                    perform_everything_on_device=False, device=torch.device("cpu"),
                    verbose=False, verbose_preprocessing=False, allow_tqdm=False)
p.initialize_from_trained_model_folder(sys.argv[1], use_folds=tuple(range(int(sys.argv[5]))))
p.predict_from_files(sys.argv[2], sys.argv[3], save_probabilities=False, overwrite=True,
                     num_processes_preprocessing=1, num_processes_segmentation_export=1)
"""


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """Runs ``cmd``; returns (wall seconds, peak tree PSS in MiB, CPU seconds).

    CPU seconds are user plus system time of the process and every
    descendant it waited for (``RUSAGE_CHILDREN`` before and after).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(pss_kib(p) for p in descendants(proc.pid)))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, cmd))} failed:\n{out.decode()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, peak / 1024.0, cpu


def prepare(work: Path, halo: Path, shared: Path) -> dict:
    """Results folder, exported halo model and input folder."""
    import torch

    results = work / "Dataset900_Halo" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    if not (results / f"fold_{FOLDS - 1}" / "checkpoint_final.pth").exists():
        plans = nnunet_plans.plans(TARGET_SPACING, PATCH, FEATURES)
        dataset = nnunet_plans.dataset(LABELS)
        weights = []
        for fold in range(FOLDS):
            torch.manual_seed(2000 + fold)
            weights.append(nnunet_plans.build_network(plans, dataset).state_dict())
        nnunet_plans.write_results(results, plans, dataset, weights)
    model = work / "halo-model"
    if not (model / "halo-model.json").exists():
        subprocess.run(
            [sys.executable, str(REPO / "tools" / "export_nnunet.py"), str(results), str(model)],
            check=True, capture_output=True,
        )
    inputs = work / "input"
    image = inputs / "case_0000.nii.gz"
    if not image.exists():
        inputs.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(halo), "convert", str(shared / SERIES), str(image)], check=True,
                       capture_output=True)
    return {"results": results, "model": model, "inputs": inputs, "image": image}


def run_published(p: dict, work: Path, threads: int, env: dict) -> tuple[float, float, float]:
    """nnUNetv2_predict on all folds, then per fold with probabilities, then std."""
    bin_dir = Path(sys.executable).parent
    predict = [bin_dir / "nnUNetv2_predict_from_modelfolder", "-m", p["results"],
               "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    steps = []
    out = work / "published"
    shutil.rmtree(out, ignore_errors=True)
    steps.append(measure([*predict, "-i", p["inputs"], "-o", out / "all",
                          "-f", *map(str, range(FOLDS))], env))
    for k in range(FOLDS):
        steps.append(measure([*predict, "-i", p["inputs"], "-o", out / f"fold_{k}",
                              "-f", str(k), "--save_probabilities"], env))
    npz = [out / f"fold_{k}" / "case.npz" for k in range(FOLDS)]
    steps.append(measure([sys.executable, "-c", STD_SCRIPT, out / "std.npy", *npz], env))
    return sum(s[0] for s in steps), max(s[1] for s in steps), sum(s[2] for s in steps)


# What `halo_core::backend::keep_freed_memory` sets with mallopt, for a peer.
HALO_MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824"


def run_predictor(p: dict, work: Path, threads: int, env: dict) -> tuple[float, float, float]:
    out = work / "predictor"
    shutil.rmtree(out, ignore_errors=True)
    return measure([sys.executable, "-c", PREDICTOR_SCRIPT, p["results"], p["inputs"], out,
                    threads, FOLDS], env)


def run_halo(
    p: dict, work: Path, halo: Path, threads: int, env: dict
) -> tuple[float, float, float]:
    out = work / "halo-out"
    shutil.rmtree(out, ignore_errors=True)
    return measure([halo, "segment", "--model", p["model"], "--image", p["image"], "--out", out,
                    "--threads", threads], env)


def run_forward_share(p: dict, work: Path, example: Path, threads: int, env: dict) -> dict:
    out = work / "forward-out"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([str(example), str(p["model"]), str(p["image"]), str(out),
                           str(threads)], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def versions() -> str:
    import importlib.metadata as md

    pkgs = ["nnunetv2", "torch", "numpy"]
    v = ", ".join(f"{k} {md.version(k)}" for k in pkgs)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{v}, Python {platform.python_version()}, {rustc}"


def section(r: dict) -> str:
    def ratio(a: float, b: float, target: float) -> str:
        q = a / b
        return f"{q:.2f}x ({'meets' if q <= target else 'misses'} <= {target}x)"

    med = {k: statistics.median(v) for k, v in r["series"].items()}
    share = statistics.median(r["share"])
    fw = statistics.median(r["forward_s"])
    lines = [
        BEGIN,
        "## Ensemble inference: halo against nnU-Net v2's pipeline",
        "",
        f"Model: synthetic nnU-Net v2 results folder, PlainConvUNet features {FEATURES}, "
        f"patch {PATCH} (z, y, x), {FOLDS} folds of fixed-seed random weights, mirroring on "
        f"all axes (8 passes per tile), target spacing {TARGET_SPACING} mm. Input: "
        "ProstateX-0000 axial T2, 19 x 384 x 384 at 3.0 x 0.5 x 0.5 mm. CPU only, "
        f"{r['threads']} intra-op threads on both sides (`halo --threads {r['threads']}`; "
        "`nnUNetv2_predict_from_modelfolder` sets torch to the core count, "
        f"{os.cpu_count()}; OMP_NUM_THREADS={r['threads']}; nnU-Net's "
        "`-npp 1 -nps 1`). Whole processes timed, start to exit; peak memory is the "
        "largest sum of proportional set sizes over the process tree (sampled every "
        "50 ms; for the pipeline, its largest step). Medians of "
        f"{r['runs']} runs. Written by `tools/bench/bench_inference.py`; do not edit by hand.",
        "",
        "| run | wall time (s) | peak memory (MiB) | CPU time (s) |",
        "| --- | --- | --- | --- |",
        f"| nnU-Net pipeline: all folds, then {FOLDS} single-fold runs with "
        f"`--save_probabilities`, then NumPy std | {med['published_s']:.1f} | "
        f"{med['published_mib']:.0f} | {med['published_cpu']:.1f} |",
        f"| one `nnUNetPredictor` call, all folds, no per-fold output | "
        f"{med['predictor_s']:.1f} | {med['predictor_mib']:.0f} | {med['predictor_cpu']:.1f} |",
        f"| the same call with halo's allocator settings (`GLIBC_TUNABLES={HALO_MALLOC}`), "
        f"for reference | {med['tuned_s']:.1f} | {med['tuned_mib']:.0f} | "
        f"{med['tuned_cpu']:.1f} |",
        f"| `halo segment` (labels, mean probabilities, uncertainty) | {med['halo_s']:.1f} | "
        f"{med['halo_mib']:.0f} | {med['halo_cpu']:.1f} |",
        "",
        "| comparison | ratio (halo / other) |",
        "| --- | --- |",
        f"| wall time vs the uncertainty pipeline | "
        f"{ratio(med['halo_s'], med['published_s'], 0.5)} |",
        f"| peak memory vs the uncertainty pipeline | "
        f"{ratio(med['halo_mib'], med['published_mib'], 0.5)} |",
        f"| wall time vs one nnUNetPredictor call | "
        f"{ratio(med['halo_s'], med['predictor_s'], 1.0)} |",
        f"| CPU time vs one nnUNetPredictor call (less sensitive to a shared machine) | "
        f"{ratio(med['halo_cpu'], med['predictor_cpu'], 1.0)} |",
        "",
        f"Share of halo's wall time outside libtorch forward passes: {share:.1%} "
        f"({'meets' if share <= 0.10 else 'misses'} <= 10 %; forward passes "
        f"{fw:.1f} s of {statistics.median(r['total_s']):.1f} s, "
        f"{r['forwards']} calls; `core/examples/forward_timing.rs`, which times "
        "`Network::forward` inside the run of `halo segment`, NIfTI outputs included).",
        "",
        "halo's own settings in these runs: at start `halo` has glibc serve every "
        "allocation from its heap and keep freed memory (without it a third of the "
        "forward time went to the kernel zeroing fresh pages), and each member's export "
        "to the image grid runs on a second thread during the next member's forward "
        "passes. Neither changes a voxel of the output.",
        "",
        f"Load average when started: {r['load']} (a shared machine: other work competes "
        "with both sides).",
        f"Measured {datetime.date.today().isoformat()} on {cpu_name()} "
        f"({os.cpu_count()} cores), {versions()}.",
        END,
    ]
    return "\n".join(lines)


def update(path: Path, text: str) -> None:
    """Replaces the marked section of ``path``, or appends it."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per variant (median)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=REPO / ".cache" / "bench-inference")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--shared", type=Path,
                    default=Path(os.environ.get("HALO_SHARED", REPO.parent / "shared")))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")

    halo = REPO / "target" / "release" / "halo"
    example = REPO / "target" / "release" / "examples" / "forward_timing"
    for f in (halo, example, args.shared / SERIES):
        if not f.exists():
            raise SystemExit(f"bench: {f} not found (see the module docs)")
    args.work.mkdir(parents=True, exist_ok=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    p = prepare(args.work, halo, args.shared)
    t = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t,
               nnUNet_results=str(args.work), nnUNet_raw=str(args.work),
               nnUNet_preprocessed=str(args.work))

    keys = ["published_s", "published_mib", "published_cpu", "predictor_s", "predictor_mib",
            "predictor_cpu", "tuned_s", "tuned_mib", "tuned_cpu", "halo_s", "halo_mib",
            "halo_cpu"]
    tuned_env = dict(env, GLIBC_TUNABLES=HALO_MALLOC)
    r: dict = {"series": {k: [] for k in keys}, "share": [], "forward_s": [], "total_s": [],
               "threads": args.threads, "runs": args.runs, "load": load}
    for i in range(args.runs):
        # Alternate the order so that a slow spell of a shared machine does
        # not always fall on the same side.
        if i % 2 == 0:
            h = run_halo(p, args.work, halo, args.threads, env)
            q = run_predictor(p, args.work, args.threads, env)
            qt = run_predictor(p, args.work, args.threads, tuned_env)
            pub = run_published(p, args.work, args.threads, env)
            fs = run_forward_share(p, args.work, example, args.threads, env)
        else:
            fs = run_forward_share(p, args.work, example, args.threads, env)
            pub = run_published(p, args.work, args.threads, env)
            qt = run_predictor(p, args.work, args.threads, tuned_env)
            q = run_predictor(p, args.work, args.threads, env)
            h = run_halo(p, args.work, halo, args.threads, env)
        for k, v in zip(keys, [*pub, *q, *qt, *h]):
            r["series"][k].append(v)
        r["share"].append(fs["outside_share"])
        r["forward_s"].append(fs["forward_s"])
        r["total_s"].append(fs["total_s"])
        r["forwards"] = fs["forwards"]
        log.info("run %d: halo %.1f s %.0f MiB; pipeline %.1f s %.0f MiB; predictor %.1f s "
                 "%.0f MiB; outside forward %.1f %%", i + 1, h[0], h[1], pub[0], pub[1], q[0],
                 q[1], 100 * fs["outside_share"])
    text = section(r)
    update(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
