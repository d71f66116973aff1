"""Downloaded archives: their sha256 recorded on first download and verified ever after
(checksums.json; FreiHAND publishes none), and extracted safely (no links, no paths outside the
target, no reserved names; a common top folder is dropped) into place."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from equihand import progress
from equihand.data.fetch import CHUNK
from equihand.data.layout import SPLITS
from equihand.errors import DownloadError
from equihand.io import atomic_write_json

DOWNLOADS = ".downloads"
CHECKSUMS = "checksums.json"
RESERVED = (DOWNLOADS, CHECKSUMS)  # top-level names an archive may not write
_IGNORED_ROOTS = ("__MACOSX",)  # macOS resource-fork folders some zip tools add


def sha256_file(path: str | Path) -> str:
    path = Path(path)
    digest = hashlib.sha256()
    with (
        open(path, "rb") as f,
        progress.bar(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"sha256 {path.name}",
        ) as bar,
    ):
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def load_records(record_path: str | Path) -> dict:
    record_path = Path(record_path)
    if not record_path.exists():
        return {}
    try:
        records = json.loads(record_path.read_text())
    except (OSError, ValueError) as e:
        raise DownloadError(
            f"{record_path} is not readable JSON ({e}); restore it, or delete it to record the "
            "archives afresh"
        ) from e
    ok = isinstance(records, dict) and all(
        isinstance(r, dict) and isinstance(r.get("sha256"), str) and isinstance(r.get("size"), int)
        for r in records.values()
    )
    if not ok:
        raise DownloadError(
            f"{record_path} should map archive names to "
            "{'size': int, 'sha256': hex, 'url': str}; restore it, or delete it to record "
            "the archives afresh"
        )
    return records


def verify_or_record(record_path: str | Path, name: str, path: str | Path, url: str) -> str:
    """Check `path` against the record of `name` (recording it if absent); return its sha256."""
    record_path, path = Path(record_path), Path(path)
    records = load_records(record_path)
    size, digest = path.stat().st_size, sha256_file(path)
    expected = records.get(name)
    if expected is None:
        records[name] = {"size": size, "sha256": digest, "url": url}
        atomic_write_json(record_path, records, indent=2)
        return digest
    if expected["size"] != size or expected["sha256"] != digest:
        raise DownloadError(
            f"checksum mismatch for {path}: expected sha256 {expected['sha256']} "
            f"({expected['size']} bytes, recorded in {record_path} on first download), "
            f"got sha256 {digest} ({size} bytes). The archive is corrupted or changed upstream: "
            f"delete {path} to download it again (if it changed upstream on purpose, also remove "
            f"the '{name}' entry from {record_path})"
        )
    return digest


def _member_parts(info: zipfile.ZipInfo, zip_path: Path) -> tuple[str, ...]:
    """The path parts of a zip entry, refusing anything that could land outside the target."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"{zip_path}: refusing symlink entry {name!r}")
    normalised = name.replace("\\", "/")
    parts = tuple(p for p in normalised.split("/") if p not in ("", "."))
    unsafe = (
        normalised.startswith("/")
        or re.match(r"^[A-Za-z]:", normalised)
        or "\0" in normalised
        or ".." in parts
        or not parts
    )
    if unsafe:
        raise DownloadError(
            f"{zip_path}: refusing entry {name!r}: its path is absolute, has a drive letter or "
            "'..', or is empty, so it could be written outside the dataset folder"
        )
    return parts


def _common_root(entries: Iterable[tuple[tuple[str, ...], bool]]) -> str | None:
    """The single top-level folder holding every entry, unless it is a FreiHAND split folder."""
    roots = set()
    for parts, is_dir in entries:
        if len(parts) == 1 and not is_dir:
            return None  # a file at the top level
        roots.add(parts[0])
    if len(roots) != 1:
        return None
    root = roots.pop()
    return None if root in SPLITS else root


def safe_extract(zip_path: str | Path, target: str | Path) -> list[str]:
    """Extract `zip_path` into `target`; return the top-level names it placed there.

    Every entry is checked before anything is written. Extraction goes to a temporary folder
    beside `target` and is moved into place (merging with what is there) only when complete.
    A single top-level folder (e.g. ``FreiHAND_pub_v2/``) is stripped.
    """
    zip_path, target = Path(zip_path), Path(target)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(
            f"{zip_path} is not a readable zip archive ({e}); delete it to download it again"
        ) from e
    with zf:
        members = []
        for info in zf.infolist():
            parts = _member_parts(info, zip_path)
            if parts[0] not in _IGNORED_ROOTS:
                members.append((info, parts))
        root = _common_root((parts, info.is_dir()) for info, parts in members)
        if root is not None:
            members = [(info, parts[1:]) for info, parts in members if len(parts) > 1]
        for info, parts in members:
            if parts[0] in RESERVED:
                raise DownloadError(
                    f"{zip_path}: refusing entry {info.filename!r}: it would overwrite the "
                    f"downloader's own {parts[0]}"
                )
        target.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract.", dir=target.parent))
        try:
            base = tmp.resolve()
            for info, parts in progress.bar(members, desc=f"extract {zip_path.name}", unit="file"):
                dest = tmp.joinpath(*parts)
                if not dest.resolve().is_relative_to(base):
                    raise DownloadError(f"{zip_path}: refusing entry {info.filename!r} (escapes)")
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            names = sorted(p.name for p in tmp.iterdir())
            _merge_into(tmp, target)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
            raise DownloadError(
                f"{zip_path} is corrupt ({e}); delete it to download it again"
            ) from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return names


def _merge_into(src: Path, dest: Path) -> None:
    """Move the contents of folder `src` into folder `dest`, replacing files of the same name."""
    for item in src.iterdir():
        there = dest / item.name
        if item.is_dir() and there.is_dir() and not there.is_symlink():
            _merge_into(item, there)
            continue
        if there.is_dir() and not there.is_symlink():
            shutil.rmtree(there)
        os.replace(item, there)
