"""How one pretraining epoch's time and peak memory grow with the prepared dataset.

    python bench/scaling.py [--sizes 1000 10000 100000] [--cache results/prepared/synth]

Builds prepared caches of each size by repeating the images of a real cache (same layout and
resolution; every row in the pool), then runs one epoch of `equihand pretrain` (the real
`pretrain()` function: equivariant objective, the default config's batch size) in a fresh
subprocess per size, which reports its wall time and its peak resident memory (`VmHWM` of
/proc/self/status: the high-water mark of the process's own address space since its exec, which
counts the pages of a memory-mapped file that the process has touched). Not `ru_maxrss`: Linux
carries the spawning parent's peak into a child started with vfork/fork + exec, so a child of a
large parent (`run.py` after the 224 px sections) would report the parent's peak. Writes
results/bench/scaling.csv.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, environment, markdown, set_threads, write_csv
from fixtures import tiled_cache

HERE = Path(__file__).resolve().parent


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since it was started (its exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB elsewhere


class _MappedRows:
    """The data path before the benchmark work: rows gathered from the memory map in the step,
    nothing read ahead (stands in for equihand.data.cache.Prefetcher with `--data-path mmap`)."""

    def __init__(self, array):
        self._array, self.shape, self.dtype = array, array.shape, array.dtype

    def __getitem__(self, rows):
        return self._array[rows]

    def prefetch(self, rows) -> None:
        pass

    def close(self) -> None:
        pass


def child(
    cache: Path, out: Path, threads: int, batch: int, backbone: str, data_path: str = "pread"
) -> dict:
    """One pretraining epoch on `cache`, in this process; its seconds and peak RSS."""
    from equihand.config import load_config
    from equihand.data.cache import PreparedData
    from equihand.train import pretrain as module
    from equihand.train.pretrain import pretrain

    if data_path == "mmap":
        PreparedData.reader = lambda self, name: getattr(self, name)
        module.Prefetcher = _MappedRows

    overrides = [
        "progress=never",
        "device=cpu",
        f"train.threads={threads}",
        f"model.backbone={backbone}",
        "pretrain.objective=equivariant",
        "pretrain.epochs=1",
        "pretrain.background_swap_p=0",  # the cache built here holds no foreground masks
        *([f"pretrain.batch_size={batch}"] if batch else []),
    ]
    config = load_config(None, overrides)
    before = peak_rss_mb()
    tic = time.perf_counter()
    pretrain(cache, out, config)
    seconds = time.perf_counter() - tic
    return {
        "epoch_s": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_training_mb": round(before, 1),
        "batch_size": config["pretrain"]["batch_size"],
        "data_path": data_path,
    }


def run(
    sizes: list[int],
    cache: Path,
    threads: int,
    batch: int = 0,
    backbone: str = "resnet18",
    parallel: bool = False,
    data_path: str = "pread",
) -> list[dict]:
    """One row per size. `parallel` starts every child at once (for --quick: the times are
    then meaningless, the memory still per process)."""
    threads = set_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pending = []
        for n in sizes:
            folder = tiled_cache(cache, n, Path(tmp) / f"cache{n}")
            command = [sys.executable, str(HERE / "scaling.py"), "--child", str(folder)]
            command += ["--out", str(Path(tmp) / f"run{n}"), "--threads", str(threads)]
            command += ["--batch", str(batch), "--backbone", backbone, "--data-path", data_path]
            env = environment(threads)
            job = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            pending.append((n, folder, env, job))
            if not parallel:
                rows.append(_collect(*pending.pop(), backbone))
        rows += [_collect(*job, backbone) for job in pending]
    first = rows[0]
    for row in rows:
        row["time_per_image_vs_smallest"] = round(
            (row["epoch_s"] / row["images"]) / (first["epoch_s"] / first["images"]), 3
        )
        row["rss_vs_smallest_mb"] = round(row["peak_rss_mb"] - first["peak_rss_mb"], 1)
    return rows


def _collect(n: int, folder: Path, env: dict, job: subprocess.Popen, backbone: str) -> dict:
    stdout, stderr = job.communicate()
    if job.returncode:
        raise RuntimeError(f"scaling child failed for {n} images:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    for path in folder.iterdir():  # free the disk before the next, larger one
        path.unlink()
    print(f"  {n} images: {result['epoch_s']} s, {result['peak_rss_mb']} MB", flush=True)
    row = {"images": n, "backbone": backbone, **result}
    row["images_per_s"] = round(2 * n / result["epoch_s"], 1)
    return row | env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--cache", type=Path, default=Path("results/prepared/synth"))
    parser.add_argument("--threads", type=int, default=0, help="0 = every core")
    parser.add_argument("--batch", type=int, default=0, help="0 = the config's")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument(
        "--data-path",
        choices=["pread", "mmap"],
        default="pread",
        help="pread: as equihand pretrain reads (RowReader + Prefetcher); mmap: the data path "
        "before the benchmark work (memory-mapped gather in the step), for before/after",
    )
    parser.add_argument("--csv", type=Path, default=RESULTS / "scaling.csv")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(
            args.child, args.out, args.threads, args.batch, args.backbone, args.data_path
        )
        print(json.dumps(result))
        return
    rows = run(
        args.sizes, args.cache, args.threads, args.batch, args.backbone, data_path=args.data_path
    )
    print(markdown(rows))
    print(f"wrote {write_csv(args.csv, rows)}")


if __name__ == "__main__":
    main()
