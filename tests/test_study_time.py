"""Whole-study wall times from Snakemake's logs (bench/study_time.py): one completed log, or a
run resumed across sessions in several parts, chained by config MD5 back to the data step."""

from __future__ import annotations

import datetime
import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
T0 = datetime.datetime(2026, 12, 7, 6, 0, 0)


@pytest.fixture(scope="module")
def study_time():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("study_time")
    finally:
        sys.path.remove(str(BENCH))


def _stamp(seconds: float) -> str:
    return f"[{(T0 + datetime.timedelta(seconds=seconds)).strftime('%a %b %e %H:%M:%S %Y')}]"


def _log(folder: Path, start_s: int, md5: str, jobs: list, complete: bool, config="powered"):
    """A Snakemake 9 log starting `start_s` after T0: `jobs` are (rule, start, end or None for
    one stopped while running) in seconds after the log's start; `complete` ends it as a
    completed run does."""
    start = T0 + datetime.timedelta(seconds=start_s)
    files = "'/s/config/default.yaml'" + (
        "" if config == "default" else f", 'config/{config}.yaml'"
    )
    lines = [f"  Date: {start:%Y-%m-%d %H:%M:%S}", f"  Config file(s): [{files}]"]
    lines += [f"  Config MD5: {md5}", "Building DAG of jobs..."]
    for jobid, (rule, begin, end) in enumerate(jobs):
        lines += [_stamp(start_s + begin), f"rule {rule}:", f"    jobid: {jobid}", "    threads: 2"]
        if end is not None:
            lines += [_stamp(start_s + end), f"Finished jobid: {jobid} (Rule: {rule})"]
    if complete:
        total = max(end for _, _, end in jobs) + 3
        n = len(jobs)
        lines += [
            f"{n} of {n} steps (100%) done",
            f"Elapsed time: 0:{total // 60:02d}:{total % 60:02d}",
        ]
    else:
        lines += ["Terminating processes on user request, this might take some time."]
    path = folder / f"{start:%Y-%m-%dT%H%M%S}.000000.snakemake.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_run_resumed_in_two_parts_counts_each_part_to_its_last_finished_job(tmp_path, study_time):
    # part 1: data, one pretraining, then stopped 100 s into a finetuning (rerun in part 2)
    _log(
        tmp_path, 0, "aa", [("prepare", 0, 10), ("pretrain", 10, 70), ("finetune", 71, None)], False
    )
    # an unrelated pilot (another MD5) in between does not break the chain
    _log(tmp_path, 1000, "bb", [("prepare", 0, 5), ("finetune", 5, 20)], True, config="pilot")
    _log(tmp_path, 2000, "aa", [("finetune", 2, 42), ("evaluate", 42, 47), ("all", 47, 47)], True)
    runs = study_time.latest_runs(tmp_path)
    run = runs["powered"]
    assert [p["source"].rsplit("/", 1)[-1][:17] for p in run["parts"]] == [
        "2026-12-07T060000",
        "2026-12-07T063320",
    ]
    assert run["wall_s"] == 70 + 50  # part 1 to its last finished job + part 2's elapsed
    assert run["steps"] == 2 + 3
    assert run["started"] == "2026-12-07 06:00:00"
    assert "pilot" not in runs  # not one of the studies the bench reports
    assert set(study_time.latest_runs(tmp_path, studies=None)) == {"powered", "pilot"}
    finished = [(j["rule"], j["s"]) for p in run["parts"] for j in p["jobs"]]
    assert finished == [("prepare", 10), ("pretrain", 60), ("finetune", 40), ("evaluate", 5),
                        ("all", 0)]  # fmt: skip


def test_a_completed_run_in_between_ends_the_chain(tmp_path, study_time):
    _log(tmp_path, 0, "aa", [("prepare", 0, 10), ("pretrain", 10, 70)], False)
    _log(tmp_path, 1000, "aa", [("pretrain", 0, 60), ("all", 60, 60)], True)
    # a rerun of a step after the study had completed: not a whole run of its own
    _log(tmp_path, 2000, "aa", [("report", 0, 5)], True)
    run = study_time.latest_runs(tmp_path)["powered"]
    assert run["wall_s"] == 70 + 63 and len(run["parts"]) == 2


def test_without_a_part_that_ran_the_data_step_the_run_with_most_steps_is_reported(
    tmp_path, study_time
):
    _log(tmp_path, 0, "aa", [("pretrain", 0, 60), ("finetune", 60, 100), ("all", 100, 100)], True)
    _log(tmp_path, 1000, "aa", [("report", 0, 5)], True)
    run = study_time.latest_runs(tmp_path)["powered"]
    assert run["steps"] == 3 and len(run["parts"]) == 1 and run["wall_s"] == 103


def test_a_completed_run_from_the_data_step_is_whole_on_its_own(tmp_path, study_time):
    _log(tmp_path, 0, "cc", [("prepare", 0, 10), ("all", 10, 10)], True, config="default")
    run = study_time.latest_runs(tmp_path)["default"]
    assert run["wall_s"] == 13 and run["steps"] == 2 and len(run["parts"]) == 1
    assert study_time.parse_log(Path(run["parts"][0]["source"]))["wall_s"] == 13
