"""Regenerate ``core/src/metrics/surfel_table.rs`` from DeepMind's package.

The surfel model's area table is data: for each of the 256 corner codes,
the area vectors of its marching-cubes triangles as ``surface-distance``
0.1 defines them. This script reads them from the installed package (in
``.venv-peers``) and writes them as eighths. Run:

    .venv-peers/bin/python tools/gen_surfel_table.py
"""

from __future__ import annotations

import logging
from pathlib import Path

from surface_distance import lookup_tables

logger = logging.getLogger(__name__)

OUT = Path(__file__).resolve().parents[1] / "core" / "src" / "metrics" / "surfel_table.rs"
HEADER = '''//! Surface element normals of the 256 corner codes (`surfel` model).
//!
//! Numbers, not code: for every 2x2x2 neighbourhood code, the area vectors
//! (in eighths of a unit voxel face) of the marching-cubes triangles that
//! DeepMind's `surface-distance` 0.1 (`lookup_tables.py`) assigns to it. An
//! area vector's component along axis `a` scales with the product of the
//! other two spacings; a code's area is the sum of the scaled vectors'
//! norms. Generated from the installed package, see
//! `tools/gen_surfel_table.py`.

/// Area vectors per code, in eighths, axes in array order `[z, y, x]`.
#[rustfmt::skip]
pub(super) static NORMALS_EIGHTHS: [&[[i8; 3]]; 256] = [
'''


def eighths(normal: list[float]) -> list[int]:
    """The components of ``normal`` in eighths; raise if one is not whole."""
    out = [round(v * 8) for v in normal]
    if any(abs(v * 8 - r) > 1e-12 for v, r in zip(normal, out)):
        raise ValueError(f"normal {normal} is not in eighths")
    return out


def main() -> None:
    rows = []
    for normals in lookup_tables._NEIGHBOUR_CODE_TO_NORMALS:
        kept = [n for n in (eighths(n) for n in normals) if n != [0, 0, 0]]
        rows.append("    &[" + ", ".join("[%d, %d, %d]" % tuple(n) for n in kept) + "],")
    OUT.write_text(HEADER + "\n".join(rows) + "\n];\n")
    logger.info("wrote %d codes to %s", len(rows), OUT)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
