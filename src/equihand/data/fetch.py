"""Fetching one file over HTTP(S) with the standard library: written to ``<dest>.part`` and
renamed once complete; a dropped connection (or a timeout, a 5xx) is resumed with a ``Range``
request, a server that answers 200 instead of 206 makes the transfer start over."""

from __future__ import annotations

import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from equihand import __version__, progress
from equihand.errors import DownloadError

CHUNK = 1 << 20
RETRY_BACKOFF_S = 1.0  # first wait before resuming; doubles per retry, capped at 30 s
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(f"equihand download: {message}", file=sys.stderr, flush=True)


class _Interrupted(Exception):
    """A transfer failure worth retrying (dropped connection, timeout, 5xx)."""


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
    log: Log = stderr_log,
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
