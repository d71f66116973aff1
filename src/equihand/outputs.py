"""The output rule: a step writes only its own outputs and never destroys anything else.

Every output of a step is recorded in a marker file, ``.equihand-output``, in the folder that
holds it: a line ``<step>`` says the whole folder is that step's output, a line
``<step> <name>`` says the file ``<name>`` beside the marker is. A step may replace its own
previous output (that is how Snakemake reruns and resumed training work); anything else at an
output path (a folder with other content, a file where a folder belongs, a folder where a file
belongs, a file not recorded in the marker) is refused with a `UserError` naming the path,
unless ``--force`` is given, and even then it is moved aside to ``<name>.old-<timestamp>``,
never deleted.

Three shapes of output:

- `claim_folder`: a run folder the step writes into in place (training resumes from it),
- `replace_folder`: a folder built in a temporary sibling and swapped in whole (atomically),
- `claim_files`: single files, possibly in a folder other steps also write into.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from equihand.errors import UserError

MARKER = ".equihand-output"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _os_error(path: Path, e: OSError) -> UserError:
    reason = e.strerror or type(e).__name__
    where = e.filename if e.filename else path
    return UserError(f"cannot write the output {path}: {reason} ({where})")


def _marker_lines(folder: Path) -> set[str]:
    try:
        return set((folder / MARKER).read_text().splitlines())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return set()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{folder / MARKER}: unreadable output marker ({e})") from None


def _record(folder: Path, line: str) -> None:
    """Append `line` to the folder's marker (appends of one short line do not interleave)."""
    if line in _marker_lines(folder):
        return
    try:
        with open(folder / MARKER, "a") as f:
            f.write(line + "\n")
    except OSError as e:
        raise _os_error(folder, e) from None


def owns_folder(folder: Path, step: str) -> bool:
    """Whether `folder` is a previous output of `step` (its marker names the step)."""
    return step in _marker_lines(Path(folder))


def owns_file(path: Path, step: str) -> bool:
    """Whether the file `path` was written by `step` (recorded in its folder's marker)."""
    path = Path(path)
    lines = _marker_lines(path.parent)
    return step in lines or f"{step} {path.name}" in lines


def _is_empty_dir(path: Path) -> bool:
    try:
        return next(os.scandir(path), None) is None
    except OSError as e:
        raise _os_error(path, e) from None


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def move_aside(path: Path) -> Path:
    """Rename `path` to a free `<name>.old-<timestamp>[-k]` beside it and say so on stderr."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.old-{stamp}")
    k = 1
    while _exists(aside):
        aside = path.with_name(f"{path.name}.old-{stamp}-{k}")
        k += 1
    try:
        os.rename(path, aside)
    except OSError as e:
        raise _os_error(path, e) from None
    print(f"--force: moved the existing {path} aside to {aside}", file=sys.stderr)
    return aside


def _refuse(path: Path, problem: str) -> UserError:
    return UserError(
        f"{path}: {problem}; refusing to overwrite it (remove it, choose another output path, "
        "or pass --force to move it aside)"
    )


def _folder_problem(path: Path, step: str) -> str | None:
    """Why `path` cannot be (re)used as `step`'s output folder, or None if it can."""
    if not _exists(path):
        return None
    if not path.is_dir():
        return f"exists and is a file, where `equihand {step}` writes a folder"
    if owns_folder(path, step) or _is_empty_dir(path):
        return None
    return f"is a folder with other content (not an output of `equihand {step}`)"


def _parent(path: Path) -> Path:
    """Create the parent folders of an output path; a file in the way is a UserError."""
    parent = path.parent
    _file_in_the_way(path)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(path, e) from None
    return parent


def claim_folder(path: str | Path, step: str, *, force: bool = False) -> Path:
    """Make `path` a folder `step` writes into in place: new, empty or its own earlier output."""
    path = Path(path)
    problem = _folder_problem(path, step)
    if problem is not None:
        if not force:
            raise _refuse(path, problem)
        move_aside(path)
    _parent(path)
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        raise _os_error(path, e) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write the output {path}: permission denied")
    _record(path, step)
    return path


def _file_in_the_way(path: Path) -> None:
    for p in path.parents:
        if _exists(p) and not p.is_dir():
            raise UserError(f"cannot write the output {path}: {p} is a file, not a folder")
        if p.is_dir():
            return


def check_files(paths: Iterable[str | Path], step: str, *, force: bool = False) -> None:
    """Refuse early (before any work, changing nothing) what `claim_files` would refuse."""
    for path in map(Path, paths):
        _file_in_the_way(path)
        if not _exists(path) or force:
            continue
        if path.is_dir():
            raise _refuse(path, f"is a folder, where `equihand {step}` writes a file")
        if not owns_file(path, step):
            raise _refuse(path, f"is a file not written by `equihand {step}`")


def claim_files(paths: Iterable[str | Path], step: str, *, force: bool = False) -> list[Path]:
    """Allow `step` to write each file of `paths`: absent, or its own earlier output (else
    refused, or with `force` moved aside); creates their folders and records them."""
    paths = [Path(p) for p in paths]
    check_files(paths, step, force=force)  # refuse before touching anything
    for path in paths:
        _parent(path)
        if _exists(path) and (path.is_dir() or not owns_file(path, step)):
            move_aside(path)
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise UserError(f"cannot write the output {path}: permission denied in {path.parent}")
        _record(path.parent, f"{step} {path.name}")
    return paths


def check_folder(path: str | Path, step: str, *, force: bool = False) -> None:
    """Refuse early (before any work, changing nothing) what `claim_folder` or `replace_folder`
    would refuse."""
    path = Path(path)
    _file_in_the_way(path)
    problem = _folder_problem(path, step)
    if problem is not None and not force:
        raise _refuse(path, problem)


@contextlib.contextmanager
def replace_folder(path: str | Path, step: str, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; it replaces `path` only if the block succeeds.

    `path` may be absent, empty or `step`'s own earlier output (which is then deleted);
    anything else is refused, or with `force` moved aside."""
    path = Path(path)
    check_folder(path, step, force=force)
    _parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise _os_error(path, e) from None
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        (tmp / MARKER).write_text(step + "\n")
        if _exists(path):
            if _folder_problem(path, step) is not None:  # appeared while the block ran
                if not force:
                    raise _refuse(path, _folder_problem(path, step))
                move_aside(path)
            else:
                old = Path(
                    tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
                )
                os.replace(path, old)  # onto the empty folder just made: a name nobody else has
                os.replace(tmp, path)
                shutil.rmtree(old)
                return
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
