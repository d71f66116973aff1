"""`equihand download` against a real HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import socket
import stat
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from equihand import cli, progress
from equihand.config import load_config
from equihand.data import fetch as fetching
from equihand.data.archives import safe_extract, verify_or_record
from equihand.data.download import download_dataset
from equihand.data.fetch import fetch
from equihand.data.layout import SPLITS
from equihand.errors import DownloadError

TRAIN_ZIP = "FreiHAND_pub_v2.zip"
EVAL_ZIP = "FreiHAND_pub_v2_eval.zip"
ARCHIVES = [TRAIN_ZIP, EVAL_ZIP]


# --------------------------------------------------------------------------- fixtures


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _split_files(split: str, n: int, seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0, 0.05, (n, 21, 3)) + np.array([0, 0, 0.6])
    files = {f"{split}/rgb/{i:08d}.jpg": _jpeg(seed * 100 + i) for i in range(n)}
    files[f"{split}_xyz.json"] = json.dumps(xyz.tolist()).encode()
    files[f"{split}_K.json"] = json.dumps([[[500, 0, 112], [0, 500, 112], [0, 0, 1]]] * n).encode()
    scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=1)
    files[f"{split}_scale.json"] = json.dumps(scale.tolist()).encode()
    return files


def _zip(files: dict[str, bytes], root: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        if root:
            zf.writestr(zipfile.ZipInfo(root + "/", (2020, 1, 1, 0, 0, 0)), b"")
        for name, data in files.items():
            zf.writestr(
                zipfile.ZipInfo(root + "/" * bool(root) + name, (2020, 1, 1, 0, 0, 0)), data
            )
    return buf.getvalue()


def _layout() -> dict[str, bytes]:
    """A tiny FreiHAND-layout dataset: rendered by `synthesize` where it exists, else by hand."""
    try:
        from equihand.data.synth import synthesize
    except ImportError:
        return _split_files("training", 4, seed=1) | _split_files("evaluation", 2, seed=2)
    overrides = ["synth.n_train=4", "synth.n_eval=2", "synth.image_size=32", "synth.workers=1"]
    overrides += ["synth.n_hands_train=2", "synth.n_hands_eval=1"]
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(Path(tmp) / "synth", load_config(None, overrides))
        keep = [f"{split}_{key}.json" for split in SPLITS for key in ("xyz", "K", "scale")]
        keep += [str(p.relative_to(root)) for p in sorted(root.glob("*/rgb/*.jpg"))]
        return {name: (root / name).read_bytes() for name in keep}


LAYOUT = _layout()
TRAIN_FILES = {k: v for k, v in LAYOUT.items() if k.startswith("training")}
EVAL_FILES = {k: v for k, v in LAYOUT.items() if k.startswith("evaluation")}
assert len(TRAIN_FILES) == 3 + 4 and len(EVAL_FILES) == 3 + 2
# the training archive wraps everything in one top-level folder, as FreiHAND_pub_v2/ would
PAYLOADS = {TRAIN_ZIP: _zip(TRAIN_FILES, root="FreiHAND_pub_v2"), EVAL_ZIP: _zip(EVAL_FILES)}


class Server:
    """Serves `files` at /<name>; honours `Range: bytes=N-` unless told otherwise."""

    def __init__(self):
        self.files = dict(PAYLOADS)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.ignore_range = False
        self.drop_first = set()  # names whose first transfer is cut off half-way
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                state.requests.append((self.path, range_header))
                name = self.path.lstrip("/")
                if name not in state.files:
                    self.send_error(404)
                    return
                data = state.files[name]
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                start = int(match.group(1)) if match and not state.ignore_range else 0
                if start >= len(data) > 0:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in state.drop_first:
                    state.drop_first.discard(name)
                    body = body[: len(body) // 2]  # then the connection closes
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def gets(self, name: str) -> list[str | None]:
        return [r for path, r in self.requests if path == f"/{name}"]


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(5)


def _download(server: Server, out: Path, archives=ARCHIVES, retries: int = 0, logs=None):
    log = logs.append if logs is not None else (lambda message: None)
    return download_dataset(
        out, server.url, archives, timeout=5, retries=retries, backoff=0, log=log
    )


def _assert_layout(out: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name


# --------------------------------------------------------------------------- download


def test_clean_download_extracts_freihand_layout(server, tmp_path):
    out = tmp_path / "freihand"
    _download(server, out)

    _assert_layout(out, TRAIN_FILES | EVAL_FILES)
    assert not (out / "FreiHAND_pub_v2").exists()  # single top-level folder stripped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["freihand"]  # no temp folders left
    records = json.loads((out / "checksums.json").read_text())
    for name, data in PAYLOADS.items():
        sha = hashlib.sha256(data).hexdigest()
        assert records[name] == {"size": len(data), "sha256": sha, "url": f"{server.url}/{name}"}
        assert (out / ".downloads" / name).read_bytes() == data
        assert (out / ".downloads" / f"{name}.extracted").read_text().strip() == sha
        assert not (out / ".downloads" / f"{name}.part").exists()
    assert server.gets(TRAIN_ZIP) == [None] and server.gets(EVAL_ZIP) == [None]


def test_dropped_connection_resumes_with_range_within_one_run(server, tmp_path):
    server.drop_first = {TRAIN_ZIP}
    out = tmp_path / "freihand"
    _download(server, out, retries=2)

    half = len(PAYLOADS[TRAIN_ZIP]) // 2
    assert server.gets(TRAIN_ZIP) == [None, f"bytes={half}-"]
    assert (out / ".downloads" / TRAIN_ZIP).read_bytes() == PAYLOADS[TRAIN_ZIP]
    _assert_layout(out, TRAIN_FILES | EVAL_FILES)


def test_interrupted_run_keeps_part_and_next_run_resumes(server, tmp_path):
    server.drop_first = {TRAIN_ZIP}
    out = tmp_path / "freihand"
    with pytest.raises(DownloadError, match="rerun to resume") as err:
        _download(server, out, archives=[TRAIN_ZIP], retries=0)
    assert f"{server.url}/{TRAIN_ZIP}" in str(err.value)
    half = len(PAYLOADS[TRAIN_ZIP]) // 2
    part = out / ".downloads" / f"{TRAIN_ZIP}.part"
    assert part.read_bytes() == PAYLOADS[TRAIN_ZIP][:half]
    assert not (out / ".downloads" / TRAIN_ZIP).exists()
    assert not (out / "checksums.json").exists()  # nothing recorded from an incomplete file

    _download(server, out, archives=[TRAIN_ZIP])
    assert server.gets(TRAIN_ZIP) == [None, f"bytes={half}-"]
    assert (out / ".downloads" / TRAIN_ZIP).read_bytes() == PAYLOADS[TRAIN_ZIP]
    assert not part.exists()
    _assert_layout(out, TRAIN_FILES)


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / TRAIN_ZIP
    # a stale partial file whose bytes do not even match: a 200 answer must replace it
    Path(f"{dest}.part").write_bytes(b"\xff" * 1000)
    size = fetch(f"{server.url}/{TRAIN_ZIP}", dest, timeout=5, retries=0, log=lambda m: None)

    assert server.gets(TRAIN_ZIP) == ["bytes=1000-"]
    assert size == len(PAYLOADS[TRAIN_ZIP])
    assert dest.read_bytes() == PAYLOADS[TRAIN_ZIP]


def test_complete_part_file_is_finished_without_transfer(server, tmp_path):
    # killed after the last byte but before the rename: the server answers 416
    dest = tmp_path / EVAL_ZIP
    Path(f"{dest}.part").write_bytes(PAYLOADS[EVAL_ZIP])
    fetch(f"{server.url}/{EVAL_ZIP}", dest, timeout=5, retries=0, log=lambda m: None)
    assert server.gets(EVAL_ZIP) == [f"bytes={len(PAYLOADS[EVAL_ZIP])}-"]
    assert dest.read_bytes() == PAYLOADS[EVAL_ZIP]


def test_missing_archive_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404.*nope\.zip|nope\.zip.*HTTP 404"):
        _download(server, tmp_path / "out", archives=["nope.zip"], retries=3)
    assert len(server.gets("nope.zip")) == 1  # a 404 is not retried


# --------------------------------------------------------------------------- checksums


def test_rerun_is_idempotent_and_makes_no_requests(server, tmp_path):
    out = tmp_path / "freihand"
    _download(server, out)
    n_requests = len(server.requests)
    # a file edited after extraction shows that nothing is extracted again
    (out / "training_xyz.json").write_text("edited")

    logs: list[str] = []
    _download(server, out, logs=logs)
    assert len(server.requests) == n_requests
    assert (out / "training_xyz.json").read_text() == "edited"
    assert sum("nothing to do" in line for line in logs) == len(ARCHIVES)


def test_missing_marker_reextracts_without_downloading(server, tmp_path):
    out = tmp_path / "freihand"
    _download(server, out)
    n_requests = len(server.requests)
    (out / ".downloads" / f"{TRAIN_ZIP}.extracted").unlink()
    (out / "training_xyz.json").unlink()

    _download(server, out)
    assert len(server.requests) == n_requests
    _assert_layout(out, TRAIN_FILES | EVAL_FILES)


def test_corrupted_archive_is_reported_on_a_later_run(server, tmp_path):
    out = tmp_path / "freihand"
    _download(server, out)
    records_before = (out / "checksums.json").read_text()
    archive = out / ".downloads" / TRAIN_ZIP
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        _download(server, out)
    message = str(err.value)
    assert str(archive) in message
    assert hashlib.sha256(PAYLOADS[TRAIN_ZIP]).hexdigest() in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert "delete" in message
    assert (out / "checksums.json").read_text() == records_before  # record never overwritten


def test_changed_upstream_archive_does_not_overwrite_record(server, tmp_path):
    out = tmp_path / "freihand"
    _download(server, out, archives=[EVAL_ZIP])
    records_before = (out / "checksums.json").read_text()
    (out / ".downloads" / EVAL_ZIP).unlink()  # as the error message advises
    server.files[EVAL_ZIP] = _zip(EVAL_FILES | {"evaluation_new.json": b"[]"})

    with pytest.raises(DownloadError, match="checksum mismatch"):
        _download(server, out, archives=[EVAL_ZIP])
    assert (out / "checksums.json").read_text() == records_before


def test_verify_or_record_records_first_and_verifies_later(tmp_path):
    record = tmp_path / "checksums.json"
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    assert verify_or_record(record, "a.zip", archive, "http://x/a.zip") == sha
    assert json.loads(record.read_text()) == {
        "a.zip": {"size": 3, "sha256": sha, "url": "http://x/a.zip"}
    }
    assert verify_or_record(record, "a.zip", archive, "http://x/a.zip") == sha
    archive.write_bytes(b"abd")
    with pytest.raises(DownloadError, match="checksum"):
        verify_or_record(record, "a.zip", archive, "http://x/a.zip")


# --------------------------------------------------------------------------- extraction


def _evil_zip(path: Path, entry: str, symlink: bool = False) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("training_xyz.json", b"[]")  # a harmless entry before the bad one
        info = zipfile.ZipInfo(entry)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"owned" if not symlink else b"/etc/passwd")


@pytest.mark.parametrize(
    "entry, symlink",
    [
        ("../evil.txt", False),
        ("training/../../evil.txt", False),
        ("ABSOLUTE/evil.txt", False),  # replaced by an absolute path inside tmp_path
        ("C:/evil.txt", False),
        ("..\\evil.txt", False),
        ("training/link", True),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path, entry, symlink):
    entry = entry.replace("ABSOLUTE", str(tmp_path / "outside"))
    zip_path = tmp_path / "evil.zip"
    _evil_zip(zip_path, entry, symlink)
    target = tmp_path / "data" / "freihand"

    with pytest.raises(DownloadError, match=re.escape(repr(entry))):
        safe_extract(zip_path, target)
    # every entry is checked before anything is written: no file anywhere but the zip
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == [zip_path]
    assert not target.exists()


def test_unsafe_archive_served_leaves_no_marker(server, tmp_path):
    zip_path = tmp_path / "evil.zip"
    _evil_zip(zip_path, "../evil.txt")
    server.files["evil.zip"] = zip_path.read_bytes()
    out = tmp_path / "data" / "freihand"
    with pytest.raises(DownloadError, match=r"evil\.txt"):
        _download(server, out, archives=["evil.zip"])
    assert not (out / ".downloads" / "evil.zip.extracted").exists()
    assert not (tmp_path / "data" / "evil.txt").exists()
    assert not (out / "training_xyz.json").exists()


def test_archive_may_not_overwrite_the_checksum_record(tmp_path):
    zip_path = tmp_path / "a.zip"
    zip_path.write_bytes(_zip({"checksums.json": b"{}"}))
    with pytest.raises(DownloadError, match=r"checksums\.json"):
        safe_extract(zip_path, tmp_path / "out")


def test_split_folder_alone_is_not_stripped(tmp_path):
    zip_path = tmp_path / "a.zip"
    files = {k: v for k, v in EVAL_FILES.items() if k.startswith("evaluation/")}
    zip_path.write_bytes(_zip(files))
    safe_extract(zip_path, tmp_path / "out")
    _assert_layout(tmp_path / "out", files)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def run_cli(monkeypatch):
    monkeypatch.setitem(progress._MODE, "mode", progress._MODE["mode"])
    monkeypatch.setattr(fetching, "RETRY_BACKOFF_S", 0.0)
    return lambda *argv: cli.main(["download", "--set", "progress=never", *argv])


def test_cli_downloads_into_out(server, tmp_path, run_cli):
    out = tmp_path / "freihand"
    assert run_cli("--set", f"download.base_url={server.url}", "--out", str(out)) == 0
    _assert_layout(out, TRAIN_FILES | EVAL_FILES)


def test_cli_defaults_to_data_dir_freihand(server, tmp_path, run_cli):
    args = ["--set", f"download.base_url={server.url}/", "--set", f"data_dir={tmp_path}"]
    assert run_cli(*args, "--set", f"download.archives=[{EVAL_ZIP}]") == 0
    _assert_layout(tmp_path / "freihand", EVAL_FILES)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "base_url, expected",
    [
        ("{url}/missing", r"HTTP 404"),
        ("ftp://127.0.0.1/freihand", r"http:// or https://"),
        ("http://127.0.0.1:{closed}", r"failed after 2 attempt"),
    ],
)
def test_cli_bad_base_url_exits_2_with_message(
    server, tmp_path, run_cli, capsys, base_url, expected
):
    base_url = base_url.format(url=server.url, closed=_closed_port())
    args = ["--set", f"download.base_url={base_url}", "--set", "download.retries=1"]
    assert run_cli(*args, "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("equihand download: error:"), err
    assert re.search(expected, last), err


def test_cli_invalid_config_exits_2(tmp_path, run_cli, capsys):
    assert run_cli("--set", "download.retries=-1", "--out", str(tmp_path)) == 2
    assert "download.retries" in capsys.readouterr().err


def test_archives_sharing_a_folder_are_merged(tmp_path):
    # FreiHAND_pub_v2.zip and FreiHAND_pub_v2_eval.zip both hold files under evaluation/
    first = {"evaluation/rgb/00000000.jpg": b"rgb", "evaluation_K.json": b"[]"}
    second = {"evaluation/mask/00000000.jpg": b"mask", "evaluation_xyz.json": b"[]"}
    (tmp_path / "a.zip").write_bytes(_zip(first, root="FreiHAND_pub_v2"))
    (tmp_path / "b.zip").write_bytes(_zip(second))
    out = tmp_path / "out"
    assert safe_extract(tmp_path / "a.zip", out) == ["evaluation", "evaluation_K.json"]
    safe_extract(tmp_path / "b.zip", out)
    _assert_layout(out, first | second)
