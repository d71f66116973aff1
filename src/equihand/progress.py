"""Progress bars that stay quiet under CI and when stderr is not a terminal."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

_MODE = {"mode": "auto"}


def set_mode(mode: str) -> None:
    """`auto` (bars only on a terminal outside CI), `always`, or `never`."""
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"progress mode {mode!r}; expected auto, always or never")
    _MODE["mode"] = mode


def enabled() -> bool:
    mode = _MODE["mode"]
    if mode != "auto":
        return mode == "always"
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(iterable=None, *, quiet: bool = False, **kwargs):
    """A tqdm bar, shown when `enabled` and not `quiet` (e.g. on ranks other than 0)."""
    return tqdm(iterable, disable=quiet or not enabled(), dynamic_ncols=True, **kwargs)
