"""Every input of ``tests/dicom-corpus`` gets its clear error, never a panic.

The corpus is written by ``tools/make_bad_inputs.py``; ``cases.json`` maps
each folder to a fragment its error message must contain. Inputs must stay
unmodified and no partial output may appear.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import REPO, run_halo

CORPUS = REPO / "tests" / "dicom-corpus"
CASES = json.loads((CORPUS / "cases.json").read_text())


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_the_corpus_has_at_least_fifteen_bad_inputs():
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_with_its_message(halo_bin, case, tmp_path):
    folder = CORPUS / case
    before = digest(folder)
    out = tmp_path / "out.nii.gz"

    proc = run_halo(halo_bin, "convert", folder, out, check=False)

    assert proc.returncode == 1, f"{case}: exit {proc.returncode}\n{proc.stderr}"
    assert CASES[case] in proc.stderr, f"{case}: {proc.stderr}"
    assert "panicked" not in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert digest(folder) == before, f"{case}: input modified"


def test_an_empty_folder_is_refused(halo_bin, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()

    proc = run_halo(halo_bin, "inspect", empty, check=False)

    assert proc.returncode == 1 and "the folder is empty" in proc.stderr


def test_a_missing_path_is_refused(halo_bin, tmp_path):
    proc = run_halo(halo_bin, "inspect", tmp_path / "nope", check=False)

    assert proc.returncode == 1 and "nope" in proc.stderr


def test_a_missing_nifti_file_reads_as_a_sentence_not_debug_text(halo_bin, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"reference,test\n{tmp_path / 'nope.nii.gz'},{tmp_path / 'nope2.nii.gz'}\n")

    proc = run_halo(halo_bin, "compare", "--batch", pairs, "--out", tmp_path / "r.csv",
                    check=False)

    assert proc.returncode == 1
    assert "nope.nii.gz" in proc.stderr and "No such file or directory" in proc.stderr
    assert "Os {" not in proc.stderr and "Io(" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r.csv").exists()


def test_the_good_series_converts(halo_bin, tmp_path):
    out = tmp_path / "good.nii.gz"

    run_halo(halo_bin, "convert", CORPUS / "good", out)

    assert out.exists()


def test_inspect_reports_problems_per_series(halo_bin):
    proc = run_halo(halo_bin, "inspect", "--json", CORPUS / "missing-slice")

    [entry] = json.loads(proc.stdout)["series"]
    assert entry["dims"] is None and "missing slice" in entry["problem"]
