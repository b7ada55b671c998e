"""``halo send`` against real DICOM peers on 127.0.0.1, started by the tests.

The round trip uses dcmtk's ``storescp``, started on a free loopback port and
stopped by its process id. Faults use ``storescp`` restricted by a
configuration file (rejected presentation contexts), pynetdicom servers run
in this process (a peer that aborts, a peer that stops answering) and a bare
socket that accepts and never replies.

What "identical" means (``assert_same_instance``): every data element
outside group 0002 is equal in tag, VR and value, sequences item by item
and pixel data byte for byte; of the file meta group, MediaStorageSOPClassUID,
MediaStorageSOPInstanceUID and TransferSyntaxUID are equal. The other meta
elements (group length, version, implementation class UID and version name,
source AE title) are written by the receiver and legitimately differ.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    generate_uid,
)

from conftest import require_path, run_halo

logger = logging.getLogger(__name__)

T2_SERIES = "ProstateX-0000/4.000000-t2tsetra-00702"
PYDICOM_RTSTRUCT = Path(pydicom.__file__).parent / "data" / "test_files" / "rtstruct.dcm"
LOOPBACK = "127.0.0.1"
# Short timeouts keep the fault cases fast (seconds).
FAST = ["--timeout", "1", "--backoff", "0.1"]


# --- helpers -------------------------------------------------------------


def require_tool(name: str) -> str:
    """Return the path of ``name`` on PATH; fail in CI, skip loudly elsewhere."""
    # dcmtk's tools, never pynetdicom's same-named scripts in the venv.
    override = os.environ.get(f"HALO_{name.upper()}")
    system_path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep)
        if not Path(p).resolve().is_relative_to(Path(sys.prefix).resolve()))
    found = override or shutil.which(name, path=system_path)
    return str(require_path(Path(found or f"/usr/bin/{name}"), f"{name} (Debian package dcmtk)"))


def require_pynetdicom():
    """Import pynetdicom (tools/requirements-send.txt); fail in CI, skip elsewhere."""
    try:
        import pynetdicom
    except ImportError:
        message = "pynetdicom not installed (pip install -r tools/requirements-send.txt)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: it must be installed in CI")
        print(f"\n*** SKIPPING: {message} ***")
        pytest.skip(message)
    return pynetdicom


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether some socket listens on ``port`` (Linux /proc/net/tcp*)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


class Storescp:
    """dcmtk's storescp on ``port``, writing into ``out``; stopped by pid."""

    def __init__(self, out: Path, port: int, extra: list[str] | None = None):
        self.out = out
        self.port = port
        out.mkdir(parents=True, exist_ok=True)
        self.log = out.parent / f"storescp-{port}.log"
        command = [require_tool("storescp"), "--aetitle", "STORE", "-od", str(out)]
        command += (extra or []) + [str(port)]
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT)

        deadline = time.monotonic() + 30  # generous: busy CI machines start slowly
        while not listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"storescp did not listen on {port}:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log_file.close()

    def received(self) -> dict[str, Path]:
        """Received files by SOPInstanceUID."""
        out = {}
        for f in sorted(self.out.iterdir()):
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            out[str(ds.SOPInstanceUID)] = f
        return out


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[callable]:
    """Starts storescp instances on free ports; stops them all afterwards."""
    started: list[Storescp] = []

    def start(extra: list[str] | None = None, name: str = "received") -> Storescp:
        s = Storescp(tmp_path / name, free_port(), extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def write_rtstruct(folder: Path) -> Path:
    """pydicom's rtstruct.dcm (a bare data set) as a Part 10 file."""
    ds = pydicom.dcmread(require_path(PYDICOM_RTSTRUCT, "pydicom rtstruct.dcm"), force=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta = meta
    assert ds.SOPClassUID == RTStructureSetStorage
    path = folder / "rtstruct.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_pt(folder: Path, slices: int = 2) -> list[Path]:
    """A tiny PT series (4 x 4 pixels, 16 bit), Explicit VR Little Endian."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(slices):
        ds = Dataset()
        ds.SOPClassUID = PositronEmissionTomographyImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "PT"
        ds.PatientName = "Phantom^Send"
        ds.PatientID = "SEND-0001"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.InstanceNumber = k + 1
        ds.ImageIndex = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.Units = "NONE"
        ds.DecayCorrection = "NONE"
        ds.RescaleSlope, ds.RescaleIntercept = "0.0001", "0"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = bytes(range(k, k + 32))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"pt-{k + 1}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def inputs(tmp_path: Path, prostatex: Path) -> dict[str, list[Path]]:
    """The real T2 series (19 MR files), one RTSTRUCT and two PT files."""
    t2 = require_path(prostatex / T2_SERIES, "ProstateX T2 series")
    made = tmp_path / "inputs"
    made.mkdir()
    return {
        "mr_folder": [t2],
        "mr": sorted(t2.glob("*.dcm")),
        "rtstruct": [write_rtstruct(made)],
        "pt": write_pt(made),
    }


def send(halo_bin: Path, port: int, *args) -> tuple[int, dict, str]:
    """Run ``halo send --json``; return exit code, report and stderr."""
    proc = run_halo(
        halo_bin, "send", "--json", "--to", f"STORE@{LOOPBACK}:{port}", *args,
        check=False, timeout=120,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"no JSON report ({e}); stderr:\n{proc.stderr}") from e
    return proc.returncode, report, proc.stderr


def uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def diff_datasets(a: Dataset, b: Dataset, where: str = "") -> str | None:
    """The first difference in tag, VR or value, or None; group 0002 skipped."""
    tags_a = [t for t in a.keys() if t.group != 0x0002]
    tags_b = [t for t in b.keys() if t.group != 0x0002]
    if tags_a != tags_b:
        only_a = sorted(set(tags_a) - set(tags_b))
        only_b = sorted(set(tags_b) - set(tags_a))
        return f"{where}tags differ: only sent {only_a}, only received {only_b}"
    for tag in tags_a:
        ea, eb = a[tag], b[tag]
        if ea.VR != eb.VR:
            return f"{where}{tag} VR {ea.VR} != {eb.VR}"
        if ea.VR == "SQ":
            if len(ea.value) != len(eb.value):
                return f"{where}{tag} has {len(ea.value)} != {len(eb.value)} items"
            for i, (ia, ib) in enumerate(zip(ea.value, eb.value)):
                d = diff_datasets(ia, ib, f"{where}{tag}[{i}].")
                if d:
                    return d
        elif ea.value != eb.value:
            return f"{where}{tag} value {ea.value!r:.80} != {eb.value!r:.80}"
    return None


def assert_same_instance(sent: Path, received: Path) -> None:
    a, b = pydicom.dcmread(sent), pydicom.dcmread(received)
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID"):
        assert a.file_meta[keyword].value == b.file_meta[keyword].value, (sent, keyword)
    difference = diff_datasets(a, b)
    assert difference is None, f"{sent} arrived changed: {difference}"


def by_file(report: dict) -> dict[str, dict]:
    return {Path(i["file"]).name: i for i in report["instances"]}


# --- round trip ----------------------------------------------------------


def test_every_instance_arrives_identical(halo_bin, storescp, inputs):
    scp = storescp()
    sent = inputs["mr"] + inputs["rtstruct"] + inputs["pt"]

    code, report, stderr = send(
        halo_bin, scp.port, *inputs["mr_folder"], *inputs["rtstruct"], *inputs["pt"]
    )

    assert code == 0, stderr
    assert report["stored"] == len(sent) == 22 and report["failed"] == 0
    assert report["echo"]["ok"] and report["echo"]["status"] == 0
    assert report["associations"] == 1
    assert all(i["status"] == 0 and i["outcome"] == "stored" for i in report["instances"])
    received = scp.received()
    assert sorted(received) == sorted(uid_of(p) for p in sent)
    for path in sent:
        assert_same_instance(path, received[uid_of(path)])


def test_implicit_only_peer_gets_converted_data_sets(halo_bin, storescp, inputs):
    # storescp +xi accepts Implicit VR Little Endian only: the explicit PT
    # files are converted; the implicit RTSTRUCT goes as it is.
    scp = storescp(["+xi"])
    sent = inputs["rtstruct"] + inputs["pt"]

    code, report, stderr = send(halo_bin, scp.port, *sent)

    assert code == 0, stderr
    for item in report["instances"]:
        assert item["sent_transfer_syntax"] == ImplicitVRLittleEndian, item
    received = scp.received()
    for path in sent:
        got = received[uid_of(path)]
        assert pydicom.dcmread(got).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        a, b = pydicom.dcmread(path), pydicom.dcmread(got)
        # Implicit VR leaves PixelData's VR to the reader (OB or OW); the
        # bytes must be the same.
        if "PixelData" in a:
            assert a.PixelData == b.PixelData
            del a.PixelData, b.PixelData
        difference = diff_datasets(a, b)
        assert difference is None, f"{path}: {difference}"


# --- faults --------------------------------------------------------------


def test_nobody_listening_reports_every_instance_not_sent(halo_bin, inputs):
    port = free_port()
    sent = inputs["mr"][:2] + inputs["rtstruct"] + inputs["pt"]

    code, report, stderr = send(halo_bin, port, *FAST, "--retries", "1", *sent)

    assert code == 1
    assert report["stored"] == 0 and report["failed"] == len(sent)
    assert report["associations"] == 0
    for item in report["instances"]:
        assert not item["stored"] and item["status"] is None
        assert "connection refused" in item["message"], item
        assert "2 association attempts" in item["message"], item
    assert f"{len(sent)} instance(s) NOT stored" in stderr


STORESCP_MR_ONLY = r"""
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit

[[PresentationContexts]]
[MROnly]
PresentationContext1 = VerificationSOPClass\Uncompressed
PresentationContext2 = MRImageStorage\Uncompressed

[[Profiles]]
[MROnly]
PresentationContexts = MROnly
"""


def test_rejected_presentation_contexts_are_reported(halo_bin, storescp, inputs, tmp_path):
    config = tmp_path / "mr-only.cfg"
    config.write_text(STORESCP_MR_ONLY)
    scp = storescp(["-xf", str(config), "MROnly"])
    mr = inputs["mr"][:3]

    code, report, stderr = send(halo_bin, scp.port, *mr, *inputs["rtstruct"], *inputs["pt"])

    assert code == 1
    assert report["stored"] == 3 and report["failed"] == 3
    items = by_file(report)
    for path in mr:
        assert items[path.name]["status"] == 0
    assert "RT Structure Set Storage" in items["rtstruct.dcm"]["message"]
    for name in ("rtstruct.dcm", "pt-1.dcm", "pt-2.dcm"):
        assert "rejected the presentation context" in items[name]["message"], items[name]
        assert items[name]["attempts"] == 0 and not items[name]["stored"]
    assert "Positron Emission Tomography" in items["pt-1.dcm"]["message"]
    assert sorted(scp.received()) == sorted(uid_of(p) for p in mr)
    assert "rtstruct.dcm" in stderr


class FakeScp:
    """A pynetdicom storage SCP in this process, on 127.0.0.1.

    It stores the first ``good`` C-STOREs it receives (over all
    associations); each later one it answers by ``fault``: ``abort`` sends
    A-ABORT, ``hang`` never answers (until the test ends).
    """

    def __init__(self, good: int, fault: str):
        pynetdicom = require_pynetdicom()
        from pynetdicom import evt
        from pynetdicom.sop_class import Verification

        self.good, self.fault = good, fault
        self.stored: list[str] = []
        self.release = threading.Event()
        ae = pynetdicom.AE(ae_title="STORE")
        for context in pynetdicom.StoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, [ExplicitVRLittleEndian,
                                                               ImplicitVRLittleEndian])
        ae.add_supported_context(Verification)
        self.port = free_port()
        self.server = ae.start_server(
            (LOOPBACK, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event) -> int:
        if len(self.stored) < self.good:
            self.stored.append(str(event.request.AffectedSOPInstanceUID))
            return 0x0000
        if self.fault == "abort":
            event.assoc.abort()
            return 0xC000
        self.release.wait(timeout=30)
        return 0xC000

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def fake_scp() -> Iterator[callable]:
    started: list[FakeScp] = []

    def start(good: int, fault: str) -> FakeScp:
        s = FakeScp(good, fault)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_peer_aborting_mid_association_is_reported(halo_bin, fake_scp, inputs):
    scp = fake_scp(good=2, fault="abort")
    sent = inputs["mr"][:4]

    code, report, stderr = send(halo_bin, scp.port, *FAST, "--retries", "1", *sent)

    # The first association stores two, then aborts on the third; the one
    # retry aborts on the third again, and halo gives up.
    assert code == 1
    items = [by_file(report)[p.name] for p in sent]
    assert [i["stored"] for i in items] == [True, True, False, False]
    assert scp.stored == [uid_of(p) for p in sent[:2]]
    assert report["associations"] == 2
    for item in items[2:]:
        assert "aborted the association" in item["message"], item
        assert item["status"] is None
    assert items[2]["attempts"] == 2 and "sent 2 time(s) without a response" in items[2]["message"]
    assert items[3]["attempts"] == 0 and items[3]["message"].startswith("not sent")


def test_peer_that_stops_answering_times_out(halo_bin, fake_scp, inputs):
    scp = fake_scp(good=2, fault="hang")
    sent = inputs["mr"][:4]

    started = time.monotonic()
    code, report, stderr = send(halo_bin, scp.port, *FAST, "--retries", "0", *sent)
    elapsed = time.monotonic() - started

    assert code == 1
    items = [by_file(report)[p.name] for p in sent]
    assert [i["stored"] for i in items] == [True, True, False, False]
    assert "no response from the peer within 1 s" in items[2]["message"], items[2]
    assert items[2]["attempts"] == 1
    assert items[3]["message"].startswith("not sent"), items[3]
    assert elapsed < 20, f"took {elapsed:.1f} s"


def test_socket_that_never_answers_times_out(halo_bin, inputs):
    # Accepts TCP connections and reads, but never sends a byte back.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        code, report, stderr = send(
            halo_bin, port, *FAST, "--retries", "1", *inputs["rtstruct"], *inputs["pt"]
        )
    finally:
        stop.set()
        thread.join(timeout=5)
        for s in held:
            s.close()
        listener.close()

    assert code == 1
    assert report["stored"] == 0 and report["associations"] == 0
    assert len(held) == 2, "one connection per attempt (1 + 1 retry)"
    for item in report["instances"]:
        assert "no response from the peer within 1 s" in item["message"], item
        assert item["message"].startswith("not sent"), item
