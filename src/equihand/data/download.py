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

import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from equihand.data.archives import CHECKSUMS, DOWNLOADS, safe_extract, verify_or_record
from equihand.data.fetch import Log, fetch, stderr_log
from equihand.errors import DownloadError
from equihand.io import atomic_write_text
from equihand.outputs import claim_folder

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
    log: Log = stderr_log,
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
