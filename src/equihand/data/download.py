"""``equihand download``: fetch FreiHAND's archives, verify them, and extract them safely.

The dataset folder (``<data_dir>/freihand`` or ``--out``) ends up holding the FreiHAND layout
(``training_xyz.json``, ``training/rgb/...`` at its top) plus bookkeeping:

- ``.downloads/<name>.part``: bytes of an unfinished transfer; a rerun (or a retry after a dropped
  connection) continues it with an HTTP ``Range`` request.
- ``.downloads/<name>``: the complete archive (renamed from ``.part`` only once its size matches).
- ``checksums.json``: ``{name: {"size", "sha256", "url"}}``. FreiHAND publishes no checksums, so
  the first complete download is recorded and every later run verifies against it; a record is
  never overwritten.
- ``.downloads/<name>.extracted``: the sha256 of the archive whose contents were moved into
  place, written last. Archive + matching record + matching marker means nothing is redone.

HTTP uses only the standard library and only the configured ``download.base_url``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from equihand import __version__, progress
from equihand.data.layout import SPLITS
from equihand.errors import DownloadError
from equihand.io import atomic_write_json, atomic_write_text
from equihand.outputs import claim_folder

CHUNK = 1 << 20
DOWNLOADS = ".downloads"
CHECKSUMS = "checksums.json"
RESERVED = (DOWNLOADS, CHECKSUMS)  # top-level names an archive may not write
RETRY_BACKOFF_S = 1.0  # first wait before resuming; doubles per retry, capped at 30 s
_IGNORED_ROOTS = ("__MACOSX",)  # macOS resource-fork folders some zip tools add
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")

Log = Callable[[str], None]


def _stderr_log(message: str) -> None:
    print(f"equihand download: {message}", file=sys.stderr, flush=True)


class _Interrupted(Exception):
    """A transfer failure worth retrying (dropped connection, timeout, 5xx)."""


# --------------------------------------------------------------------------- fetching


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) of ``Content-Range: bytes start-end/total`` or ``bytes */total``.

    Either is None where the header says ``*``.
    """
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        raise _Interrupted(f"unparseable Content-Range header {value!r}")
    start, total = match.groups()
    return (
        None if start is None else int(start),
        None if total == "*" else int(total),
    )


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": f"equihand/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return e  # the caller decides whether the .part is already complete
        if e.code in (408, 429) or e.code >= 500:
            raise _Interrupted(f"HTTP {e.code} {e.reason}") from e
        raise DownloadError(
            f"{url}: server answered HTTP {e.code} {e.reason}; expected 200 with the archive "
            "(check download.base_url and download.archives)"
        ) from e
    except (OSError, http.client.HTTPException) as e:  # URLError, refused, reset, timeout
        raise _Interrupted(str(getattr(e, "reason", e)) or type(e).__name__) from e


def _fetch_once(url: str, part: Path, timeout: float, log: Log) -> int:
    """Continue `part` from its current size; return the full size once it is complete."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    if isinstance(response, urllib.error.HTTPError):  # 416: nothing left at that offset
        try:
            _, total = _content_range(response.headers.get("Content-Range"))
        except _Interrupted:
            total = None
        if total == offset:
            return offset
        log(f"{part.name}: server refused to resume at byte {offset}; restarting from zero")
        part.unlink()
        raise _Interrupted("HTTP 416 Range Not Satisfiable")
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Interrupted(f"asked for bytes from {offset}, server sent from {start}")
            mode = "ab"
        elif response.status == 200:
            if offset:
                log(f"{part.name}: server ignored the Range request; restarting from zero")
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(
                f"{url}: unexpected HTTP status {response.status}; expected 200/206"
            )
        written = offset
        with (
            open(part, mode) as f,
            progress.bar(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise _Interrupted(f"connection lost after {written} bytes: {e}") from e
            finally:
                f.flush()
                os.fsync(f.fileno())
    if total is not None and written < total:
        raise _Interrupted(f"connection closed after {written} of {total} bytes")
    if total is not None and written > total:
        part.unlink()
        raise _Interrupted(f"received {written} bytes but the server announced {total}")
    return written


def fetch(
    url: str,
    dest: str | Path,
    *,
    timeout: float,
    retries: int,
    backoff: float | None = None,
    log: Log = _stderr_log,
) -> int:
    """Download `url` to `dest` via ``dest.part``, resuming it; return the size in bytes.

    A dropped connection is resumed with a ``Range`` request up to `retries` times; a server
    that answers 200 instead of 206 makes the transfer start over. `dest` appears only once the
    size matches the announced Content-Length / Content-Range total.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    wait = RETRY_BACKOFF_S if backoff is None else backoff
    for attempt in range(retries + 1):
        try:
            size = _fetch_once(url, part, timeout, log)
        except _Interrupted as e:
            kept = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                partial = f"{kept} bytes are kept in {part}; " if kept else ""
                raise DownloadError(
                    f"downloading {url} failed after {attempt + 1} attempt(s): {e}. "
                    f"{partial}rerun to resume (or raise download.retries / download.timeout_s)"
                ) from e
            log(f"{dest.name}: {e}; resuming ({attempt + 1}/{retries}) from byte {kept}")
            time.sleep(min(wait * 2**attempt, 30.0))
            continue
        os.replace(part, dest)
        return size
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- checksums


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


# --------------------------------------------------------------------------- extraction


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


# --------------------------------------------------------------------------- orchestration


def archive_url(base_url: str, name: str) -> str:
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DownloadError(
            f"download.base_url is {base_url!r}; expected an http:// or https:// address "
            "such as https://lmb.informatik.uni-freiburg.de/data/freihand"
        )
    return base_url.rstrip("/") + "/" + urllib.parse.quote(name)


def download_dataset(
    out_dir: str | Path,
    base_url: str,
    archives: Iterable[str],
    *,
    timeout: float = 60,
    retries: int = 5,
    backoff: float | None = None,
    log: Log = _stderr_log,
) -> Path:
    """Fetch, verify and extract every archive into `out_dir`; redo only what is missing."""
    out_dir = Path(out_dir)
    downloads = out_dir / DOWNLOADS
    record_path = out_dir / CHECKSUMS
    for name in archives:
        url = archive_url(base_url, name)
        archive = downloads / name
        marker = downloads / f"{name}.extracted"
        if archive.exists():
            log(f"{name}: already downloaded; verifying its sha256")
        else:
            size = fetch(url, archive, timeout=timeout, retries=retries, backoff=backoff, log=log)
            log(f"{name}: downloaded {size} bytes")
        digest = verify_or_record(record_path, name, archive, url)
        if marker.exists() and marker.read_text().strip() == digest:
            log(f"{name}: checksum matches and already extracted into {out_dir}; nothing to do")
            continue
        marker.unlink(missing_ok=True)
        placed = safe_extract(archive, out_dir)
        atomic_write_text(marker, digest + "\n")
        log(f"{name}: extracted {', '.join(placed)} into {out_dir}")
    return out_dir


# --------------------------------------------------------------------------- CLI step


def add_arguments(parser) -> None:
    parser.add_argument(
        "--out",
        help="dataset folder to fill (default: <data_dir>/freihand from the config)",
    )


def run(args, config: dict) -> None:
    out = Path(args.out) if args.out else Path(config["data_dir"]) / "freihand"
    cfg = config["download"]
    claim_folder(out, "download", force=args.force)
    download_dataset(
        out,
        cfg["base_url"],
        cfg["archives"],
        timeout=cfg["timeout_s"],
        retries=cfg["retries"],
    )
