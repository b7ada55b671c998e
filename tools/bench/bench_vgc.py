"""Benchmark VGC analysis and record it in docs/benchmarks.md.

Builds and runs the ``bench_vgc`` example of halo-core (4 readers x 35
cases, 2000 bootstrap replicates, 2000 permutations, one thread), takes
the median of several runs, and rewrites only the section between
``<!-- vgc:begin -->`` and ``<!-- vgc:end -->`` of ``docs/benchmarks.md``
(creating the file or the section if absent). Other sections belong to
other benchmarks and are left as they are.

Usage: ``python tools/bench/bench_vgc.py [--runs N] [--out docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
BEGIN = "<!-- vgc:begin -->"
END = "<!-- vgc:end -->"
TARGET_MS = 100.0


def run_bench(runs: int) -> dict:
    """Runs the example on one thread and returns its JSON line."""
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    cmd = ["cargo", "run", "--quiet", "--release", "-p", "halo-core",
           "--example", "bench_vgc", "--", str(runs)]
    log.info("running %s", " ".join(cmd))
    out = subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def section(result: dict) -> str:
    """The Markdown of the VGC section, markers included."""
    verdict = "meets" if result["median_ms"] < TARGET_MS else "MISSES"
    today = datetime.date.today().isoformat()
    return "\n".join([
        BEGIN,
        "## VGC analysis",
        "",
        "`stats::vgc` on 4 readers x 35 cases (five-point scale), 2000 bootstrap",
        "replicates and 2000 permutations, one thread. Written by",
        "`tools/bench/bench_vgc.py`; do not edit by hand.",
        "",
        "| median | min | max | runs | target |",
        "| --- | --- | --- | --- | --- |",
        f"| {result['median_ms']:.2f} ms | {result['min_ms']:.2f} ms "
        f"| {result['max_ms']:.2f} ms | {result['runs']} | < {TARGET_MS:.0f} ms ({verdict}) |",
        "",
        f"Measured {today} on {cpu_name()}.",
        END,
    ])


def update(path: Path, text: str) -> None:
    """Replaces the marked section of `path`, or appends it."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs (default 15)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="Markdown file to update")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    result = run_bench(args.runs)
    log.info("vgc median %.3f ms over %d runs", result["median_ms"], result["runs"])
    update(args.out, section(result))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
