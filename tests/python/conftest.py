"""Shared fixtures for halo's Python oracle tests.

The tests run halo's binaries against peer tools (SimpleITK, pydicom,
nnunetv2, dicom3tools, ...) on real scans. Real data lives in ``../shared``
beside the repository (or in ``HALO_SHARED``). Outside CI a missing folder
skips the tests that need it with a loud message; in CI (``CI`` set) it is
a failure.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def _shared_dir() -> Path:
    return Path(os.environ.get("HALO_SHARED", REPO.parent / "shared")).resolve()


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; else fail in CI, skip loudly elsewhere."""
    if path.exists():
        return path
    message = f"{what} not found at {path}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: it must be present in CI")
    print(f"\n*** SKIPPING: {message} ***")
    pytest.skip(message)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def halo_bin() -> Path:
    """The release ``halo`` binary (``HALO_BIN`` overrides)."""
    path = Path(os.environ.get("HALO_BIN", REPO / "target" / "release" / "halo"))
    if not path.exists():
        pytest.fail(f"halo binary not found at {path}: run `make build` first")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder with real data and reference values."""
    return require_path(_shared_dir(), "shared folder")


@pytest.fixture(scope="session")
def prostatex(shared: Path) -> Path:
    """The ProstateX real scans."""
    return require_path(shared / "data" / "prostatex", "ProstateX data")


def run_halo(halo_bin: Path, *args: str, check: bool = True, timeout: float = 600):
    """Run halo with ``args``; return the CompletedProcess (text mode)."""
    proc = subprocess.run(
        [str(halo_bin), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"halo {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
        )
    return proc
