"""Helpers the benchmark sections share: the machine's state, timing, tables and CSV files."""

from __future__ import annotations

import csv
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench"


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return 0.0


def environment(threads: int) -> dict:
    """Columns every CSV row carries, so a number is never read without its conditions."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} x{os.cpu_count()}",
        "device": device,
        "threads": threads,
        "load_1min": round(load_average(), 2),
    }


def sync(device) -> None:
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(step, steps: int, device=None, warmup: int = 1) -> float:
    """Seconds per call of `step`, after `warmup` calls."""
    for _ in range(warmup):
        step()
    sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - tic) / steps


def markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of `rows` (numbers right-aligned)."""
    columns = columns or list(rows[0])

    def text(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    numeric = [all(isinstance(r.get(c), (int, float)) for r in rows) for c in columns]
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "".join("---:|" if n else "---|" for n in numeric)
    body = ["| " + " | ".join(text(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def set_threads(threads: int) -> int:
    """Use `threads` torch threads (0 = every core); returns the number used."""
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads
