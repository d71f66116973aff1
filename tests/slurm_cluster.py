"""A real one-node SLURM cluster for the tests: munged, slurmctld and slurmd from Debian's
`slurm-wlm` and `munge` packages, with every file (key, sockets, state, spool, logs) in one
temporary folder and one GPU gres for scheduling (the node needs no GPU: the gres points at
/dev/null, so `--gpus=1` is granted and CUDA_VISIBLE_DEVICES=0 is set, while torch sees no CUDA).

Clients (sbatch, squeue, scontrol, the Snakemake SLURM executor) find the cluster through the
SLURM_CONF variable of `Cluster.env`. No accounting database: `sacct` fails, so the profile's
`slurm-status-command: squeue` is what makes Snakemake follow the jobs (MinJobAge keeps finished
jobs visible to squeue for an hour).

Usable by hand too: `python tests/slurm_cluster.py /tmp/cluster` starts one and prints the
SLURM_CONF to export; Ctrl-C stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

BINARIES = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
)
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends slurm-wlm munge "
    "(Debian/Ubuntu; .ci/run does this on CI)"
)


class ClusterError(RuntimeError):
    """The test cluster could not be started (missing packages, a daemon that died...)."""


def missing_binaries() -> list[str]:
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    return [b for b in BINARIES if shutil.which(b, path=path) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterError("cannot read MemTotal from /proc/meminfo")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class Cluster:
    """One node (this machine) in partition `main`, `cpus` CPUs, `gpus` GPU gres."""

    def __init__(self, root: Path, gpus: int = 2, kill_wait_s: int = 10):
        missing = missing_binaries()
        if missing:
            raise ClusterError(
                f"SLURM/munge binaries not found: {', '.join(missing)}. Install them with "
                f"{INSTALL_HINT}."
            )
        if os.geteuid() != 0:
            raise ClusterError("starting slurmd needs root (it runs jobs as their submitters)")
        self.root = Path(root).resolve()
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        # leave room for this machine's own processes; slurmd refuses a node with more memory
        # configured than it has
        self.memory_mb = int(_memory_mb() * 0.8)
        self.gpus = gpus
        self.kill_wait_s = kill_wait_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "run" / "munge.socket"

    # -- configuration ---------------------------------------------------------------------------

    def _write_config(self) -> None:
        for sub in ("etc", "state", "spool", "log", "run", "munge/run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged checks permissions: a private key folder, a socket folder others may enter
        (self.root / "munge").chmod(0o700)
        (self.root / "munge" / "run").chmod(0o755)
        self.root.chmod(0o755)
        r = self.root
        lines = [
            "ClusterName=equihand-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            # binds each job to its CPUs, so `--cores all` inside a job means the CPUs it was given
            "TaskPlugin=task/affinity",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            # a plain-text record of every finished job (state, exit code), read by the tests
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={r / 'log' / 'jobcomp.log'}",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "GresTypes=gpu",
            "ReturnToService=2",
            # finished jobs stay visible to squeue (Snakemake's status command) for an hour
            "MinJobAge=3600",
            f"KillWait={self.kill_wait_s}",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} Gres=gpu:{self.gpus} State=UNKNOWN",
            f"PartitionName=main Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        self._write_srun_shim()
        gres = [f"NodeName={self.node} Name=gpu File={f}" for f in self._gpu_device_files()]
        (self.conf.parent / "gres.conf").write_text("AutoDetect=off\n" + "\n".join(gres) + "\n")

    def _gpu_device_files(self) -> list[str]:
        """One character device per GPU (slurmd counts a gpu gres only with one).

        Copies of /dev/null named nvidia<i> (so SLURM sets CUDA_VISIBLE_DEVICES=<i>); where
        mknod is not allowed, /dev/null, /dev/zero and /dev/full themselves.
        """
        folder = self.root / "dev"
        folder.mkdir(exist_ok=True)
        null = os.stat("/dev/null").st_rdev
        files = []
        try:
            for i in range(self.gpus):
                path = folder / f"nvidia{i}"
                if not path.exists():
                    os.mknod(path, 0o666 | stat.S_IFCHR, null)
                files.append(str(path))
        except PermissionError:
            files = ["/dev/null", "/dev/zero", "/dev/full"][: self.gpus]
            if len(files) < self.gpus:
                raise ClusterError(
                    f"cannot make {self.gpus} fake GPU devices without mknod"
                ) from None
        return files

    def _write_srun_shim(self) -> None:
        """bin/srun: the real srun, told where this cluster's slurm.conf is.

        Clients find a cluster whose slurm.conf is not at /etc/slurm/slurm.conf through
        SLURM_CONF, but the Snakemake jobstep removes every SLURM_* variable before it calls srun
        inside a job (snakemake-executor-plugin-slurm issue #164). A real cluster keeps its
        slurm.conf at the default path (or runs configless); this cluster lives in a temp folder,
        so srun gets SLURM_CONF back from this wrapper, first on PATH.
        """
        srun = shutil.which("srun")
        if srun is None:
            raise ClusterError(f"srun not found. Install it with {INSTALL_HINT}.")
        shim = self.root / "bin" / "srun"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {srun} "$@"\n')
        shim.chmod(0o755)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a client of this cluster (sbatch, squeue, snakemake)."""
        path = f"{self.root / 'bin'}:{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    # -- life cycle ------------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.root / "log" / f"{name}.out", "w") as log:  # the child keeps its copy
            self.procs[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ClusterError(
                    f"{name} exited with {proc.returncode}:\n"
                    f"{_tail(self.root / 'log' / f'{name}.out')}\n"
                    f"{_tail(self.root / 'log' / f'{name}.log')}"
                )

    def start(self, timeout_s: float = 60) -> Cluster:
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> Cluster:
        self._write_config()
        key = self.root / "munge" / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={m / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
        )
        deadline = time.monotonic() + timeout_s
        while not self.munge_socket.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClusterError("munged did not create its socket")
            time.sleep(0.1)
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.node])
        while True:
            self._check_alive()
            state = subprocess.run(
                ["sinfo", "--noheader", "--nodes", self.node, "--format=%T"],
                capture_output=True,
                text=True,
                env=self.env,
            ).stdout.strip()
            if state == "idle":
                return self
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node {self.node} is {state or 'unknown'!r}, not idle, after {timeout_s} s:\n"
                    f"{_tail(self.root / 'log' / 'slurmctld.log')}\n"
                    f"{_tail(self.root / 'log' / 'slurmd.log')}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- queries ---------------------------------------------------------------------------------

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=check)

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (pending, running and finished), oldest first."""
        out = self.run("scontrol", "show", "job", "--details", "--oneliner", check=False).stdout
        jobs = []
        for line in out.splitlines():
            if not line.strip() or line.startswith("No jobs"):
                continue
            fields = {}
            for token in line.split():
                key, _, value = token.partition("=")
                fields[key] = value
            jobs.append(fields)
        return sorted(jobs, key=lambda j: int(j["JobId"]))

    def completed_jobs(self) -> list[dict[str, str]]:
        """The job completion log (jobcomp/filetxt): one dict per finished job."""
        path = self.root / "log" / "jobcomp.log"
        if not path.exists():
            return []
        jobs = []
        for line in path.read_text().splitlines():
            fields = {}
            for token in line.split():
                key, _, value = token.partition("=")
                fields[key] = value
            jobs.append(fields)
        return jobs


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/equihand-slurm")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on kill, too
    with Cluster(root) as cluster:
        print(f"export SLURM_CONF={cluster.conf}  # Ctrl-C or SIGTERM stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
