"""``equihand pull``: `dvc pull`, all or nothing, with every object's md5 checked first.

    equihand pull [--remote NAME] [TARGET ...]

1. `dvc fetch` the targets' outputs into the local cache (the workspace is not touched). The
   remote's `verify` is off for this fetch, so a corrupted object lands in the cache where step 2
   can name it; DVC itself would drop it quietly and fail later with "Is your cache up to date?".
2. Recompute the md5 of every cached object the outputs need (a folder output: its `.dir` file
   list and each file it lists) and compare it with dvc.lock and the list. An object that does
   not match is deleted from the local cache, so nothing trusts it later. Objects that were in
   the cache before the fetch are checked before it, so a corrupted local copy is fetched again
   (and reported as local) rather than blamed on the remote.
3. Only if every object is there and matches, `dvc checkout` the outputs (DVC still refuses to
   overwrite a file you changed).

Any failure (remote unreachable, an object missing or corrupted on the remote) is one line that
names the remote, the output paths and what to do, and the workspace is as it was. A target is
what `dvc pull` takes (a stage, a dvc.yaml, an output); a path inside a folder output pulls the
whole folder. Without targets, every output of the repository.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from equihand.errors import UserError

SHOWN = 5  # problems named in the message; the rest are counted


@dataclass
class Problem:
    path: str  # the output file, relative to the repository root
    expected: str  # md5 recorded in dvc.lock or the folder's .dir list
    actual: str | None  # md5 of the bytes found; None when there were none
    remote_path: str  # where the object lives on the remote


def add_arguments(parser) -> None:
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help="stages or outputs (default: all)"
    )
    parser.add_argument("-r", "--remote", help="DVC remote (default: the repo's default remote)")


def run(args, config: dict) -> None:
    print(pull(args.targets, args.remote))


def pull(targets: list[str], remote: str | None = None, root: str | None = None) -> str:
    """Fetch, verify, check out; returns a one-line summary or raises UserError."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(root) as repo:
            name = remote or repo.config["core"].get("remote")
            known = sorted(repo.config["remote"])
    except DvcException as e:
        raise UserError(f"cannot open the DVC repository: {_line(e)}") from None
    if not name:
        raise UserError(
            "no DVC remote given and none is the default: use --remote NAME "
            f"(configured: {', '.join(known) or 'none'}) or `dvc remote default NAME`"
        )
    if name not in known:
        raise UserError(
            f"DVC remote '{name}' is not configured (configured: {', '.join(known) or 'none'})"
        )
    # this command checks every hash itself, after the fetch (see the module's docstring)
    with Repo(root, remote=name, remote_config={"verify": False}) as repo:
        outs = _outputs(repo, targets, name)
        if not outs:
            raise UserError(f"no DVC-cached output with a hash in dvc.lock among {targets}")
        store = repo.cloud.get_remote(name)
        odb, url = store.odb, store.fs.unstrip_protocol(store.path)
        done: set[str] = set()  # md5s of the objects found sound
        for p in _verify(outs, repo.root_dir, odb, done, fetched=False):
            print(
                f"equihand pull: the local cache's copy of {p.path} had md5 {p.actual}, "
                f"expected {p.expected}: removed, fetching it again",
                file=sys.stderr,
            )
        with _captured_logs() as records:
            try:
                repo.fetch(targets=[o.fs_path for o in outs], remote=name)
                fetch_error = None
            except DvcException as e:
                fetch_error = e
        for record in records:
            if record.getMessage().startswith("failed to connect to"):
                cause = _line(record.exc_info[1]) if record.exc_info else "no reason given"
                raise UserError(
                    f"cannot reach DVC remote '{name}' ({url}): {cause}; check its url, "
                    "endpointurl and credentials (`dvc remote list`); nothing was checked out"
                )
        problems = _verify(outs, repo.root_dir, odb, done, fetched=True)
        if problems:
            raise UserError(_problems_message(problems, name, url))
        if fetch_error is not None:  # every object is here and sound, yet DVC failed
            said = "; ".join(_line(r.getMessage()) for r in records)
            raise UserError(
                f"dvc fetch from remote '{name}' ({url}) failed: {_line(fetch_error)}"
                + (f" ({said})" if said else "")
                + "; nothing was checked out"
            )
        for record in records:  # DVC's warnings on a fetch that went well
            print(f"dvc: {_line(record.getMessage())}", file=sys.stderr)
        try:
            result = repo.checkout(targets=[o.fs_path for o in outs])
        except DvcException as e:
            raise UserError(f"dvc checkout failed: {_line(e)}") from None
    stats = result["stats"]
    return (
        f"{len(done)} objects of {len(outs)} output(s) match dvc.lock (remote '{name}', {url}); "
        f"checked out: {stats['added']} files added, {stats['modified']} modified, "
        f"{stats['deleted']} deleted"
    )


def _outputs(repo, targets: list[str], remote: str) -> list:
    """The cached outputs the targets name (whole outputs), each once."""
    from dvc.exceptions import DvcException

    if not targets:
        candidates = list(repo.index.outs)
    else:
        candidates = []
        for target in targets:
            try:
                infos = repo.stage.collect_granular(target)
            except DvcException as e:
                raise UserError(f"target '{target}': {_line(e)}") from None
            for stage, inside in infos:
                candidates += [o for o in stage.outs if inside is None or _overlap(o, inside)]
    outs = {}
    for out in candidates:
        if out.use_cache and out.fs_path not in outs:
            if not out.hash_info or not out.hash_info.value:
                raise UserError(
                    f"{out}: no hash recorded in dvc.lock (its stage never ran or was not "
                    "committed); nothing to pull for it"
                )
            if out.hash_info.name != "md5":
                raise UserError(f"{out}: hash '{out.hash_info.name}'; expected DVC 3's md5")
            if out.remote and out.remote != remote:
                raise UserError(
                    f"{out} is kept on DVC remote '{out.remote}' (its `remote:` in dvc.yaml), "
                    f"not '{remote}': pull it with `equihand pull -r {out.remote} {out}`"
                )
            outs[out.fs_path] = out
    return list(outs.values())


def _overlap(out, path: str) -> bool:
    return out.fs.isin_or_eq(path, out.fs_path) or out.fs.isin(out.fs_path, path)


def _verify(outs: list, root: str, remote_odb, done: set[str], fetched: bool) -> list[Problem]:
    """Check every cached object the outputs need whose md5 is not in `done` (adding the sound
    ones). Before the fetch (`fetched` false) an object not in the cache is no problem yet."""
    problems = []
    for out in outs:
        rel = os.path.relpath(out.fs_path, root)
        oid = out.hash_info.value
        objects = [(oid, rel)]
        if out.hash_info.isdir:
            if not fetched and not os.path.isfile(out.cache.oid_to_path(oid)):
                continue  # its files are known once the fetch has brought the list
            listing, problem = _file_list(out.cache, oid, f"{rel} (its file list)", remote_odb)
            if problem and (fetched or problem.actual):
                problems.append(problem)  # without a sound list its files are unknown
            if listing is None:
                continue
            if os.path.isfile(out.cache.oid_to_path(oid)):  # not only on the remote
                done.add(oid)
            objects = [(e["md5"], f"{rel}/{e['relpath']}") for e in json.loads(listing)]
        for oid, path in objects:
            if oid in done:
                continue
            problem = _check(out.cache, oid, path, remote_odb)
            if problem is None:
                done.add(oid)
            elif fetched or problem.actual:
                problems.append(problem)
    return problems


def _file_list(cache_odb, oid: str, rel: str, remote_odb) -> tuple[bytes | None, Problem | None]:
    """A folder output's .dir list, checked: from the cache, else from the remote (DVC drops
    the list from the cache when one of the folder's files failed to come)."""
    path = cache_odb.oid_to_path(oid)
    if os.path.isfile(path):
        problem = _check(cache_odb, oid, rel, remote_odb)
        return (None, problem) if problem else (Path(path).read_bytes(), None)
    remote_path = remote_odb.oid_to_path(oid)
    expected = oid.removesuffix(".dir")
    problem = Problem(rel, expected, None, remote_odb.fs.unstrip_protocol(remote_path))
    try:
        listing = remote_odb.fs.cat_file(remote_path)
    except FileNotFoundError:
        return None, problem
    problem.actual = hashlib.md5(listing).hexdigest()
    return (listing, None) if problem.actual == expected else (None, problem)


def _check(cache_odb, oid: str, rel: str, remote_odb) -> Problem | None:
    """None when the cached object's md5 is `oid`; a corrupted object is deleted."""
    path = cache_odb.oid_to_path(oid)
    remote_path = remote_odb.fs.unstrip_protocol(remote_odb.oid_to_path(oid))
    expected = oid.removesuffix(".dir")
    if not os.path.isfile(path):
        return Problem(rel, expected, None, remote_path)
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() == expected:
        return None
    os.remove(path)  # read-only file in a writable folder
    return Problem(rel, expected, digest.hexdigest(), remote_path)


def _problems_message(problems: list[Problem], name: str, url: str) -> str:
    corrupt = [p for p in problems if p.actual]
    missing = [p for p in problems if not p.actual]
    parts = []
    if corrupt:
        parts.append(
            f"{len(corrupt)} object(s) whose md5 hash does not match: "
            + _listed(corrupt, lambda p: f"{p.path} (expected md5 {p.expected}, got {p.actual})")
            + " (removed from the local cache)"
        )
    if missing:
        parts.append(
            f"{len(missing)} object(s) missing: "
            + _listed(missing, lambda p: f"{p.path} (md5 {p.expected})")
        )
    todo = []
    if corrupt:
        # `dvc push` skips an object the remote already has, whatever its bytes
        todo.append(
            "re-push from a good copy: delete "
            + _listed(corrupt, lambda p: p.remote_path)
            + f" on the remote, then `dvc push -r {name}` in a clone whose cache holds the right"
            + " files"
        )
    if missing:
        todo.append(f"push them with `dvc push -r {name}` from a clone whose cache has them")
    return (
        f"DVC remote '{name}' ({url}) has {' and '.join(parts)}; nothing was checked out or "
        f"deleted in the workspace; {'; '.join(todo)}"
    )


def _listed(problems: list[Problem], show) -> str:
    shown = ", ".join(show(p) for p in problems[:SHOWN])
    more = len(problems) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _line(text) -> str:
    return " ".join(str(text).split())


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _captured_logs():
    """DVC's warnings and errors, kept (not printed) to be reported in one line."""
    handler = _Records()
    loggers = [logging.getLogger(n) for n in ("dvc", "dvc_data", "dvc_objects")]
    printing = [logger.handlers for logger in loggers]
    for logger in loggers:
        logger.handlers = [handler]
    try:
        yield handler.records
    finally:
        for logger, handlers in zip(loggers, printing, strict=True):
            logger.handlers = handlers
