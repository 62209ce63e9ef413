"""Scratch left by a run that died is removed by the next run on the machine; scratch of
a run still going, of another host or of no known run is not. No Spark: folders and
processes only (the SIGKILL integration test covers a real killed refresh)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datafirst_spark.scratch import OWNER_FILE, _process_stat, claim_scratch, sweep_dead_runs


def claimed_by_a_process_that_ended(folder: Path) -> int:
    code = f"from datafirst_spark.scratch import claim_scratch; claim_scratch({str(folder)!r}, 'dead-run')"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads((folder / OWNER_FILE).read_text())["pid"]


def edit_owner(folder: Path, **changes) -> None:
    owner = json.loads((folder / OWNER_FILE).read_text())
    (folder / OWNER_FILE).write_text(json.dumps(owner | changes))


def test_only_the_scratch_of_ended_processes_is_removed(tmp_path, caplog):
    root = tmp_path / "scratch"
    dead = root / "refresh-dead"
    dead_pid = claimed_by_a_process_that_ended(dead)
    (dead / "checkpoints" / "part-0.parquet").parent.mkdir(parents=True)
    (dead / "checkpoints" / "part-0.parquet").write_bytes(b"x" * 4096)
    claim_scratch(str(root / "refresh-live"), "live-run")  # this test's own process: running
    (root / "no-owner").mkdir()  # not made by a run of ours, or by one older than owner records
    claim_scratch(str(root / "other-host"), "elsewhere")
    edit_owner(root / "other-host", host="another-machine", pid=dead_pid)

    with caplog.at_level("WARNING", logger="datafirst_spark.scratch"):
        removed = sweep_dead_runs(str(root))

    assert removed == ["refresh-dead"]
    assert sorted(p.name for p in root.iterdir()) == ["no-owner", "other-host", "refresh-live"]
    assert f"run dead-run (pid {dead_pid}) ended without removing it" in caplog.text
    assert sweep_dead_runs(str(root)) == []


@pytest.mark.parametrize(("change", "gone"), [
    ({"process_start": "1"}, True),  # the pid is alive but names a process started at another time
    ({"boot_id": "00000000-0000-0000-0000-000000000000"}, True),  # claimed before the machine restarted
    ({}, False),  # the claiming process itself
    ({"process_start": None, "boot_id": None}, False),  # nothing tells it apart from the owner: kept
])
def test_a_live_pid_counts_as_the_owner_only_if_it_is_the_same_process(tmp_path, change, gone):
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("process start times come from Linux's /proc")
    folder = tmp_path / "scratch" / "run"
    claim_scratch(str(folder), "run")
    edit_owner(folder, **change)
    assert sweep_dead_runs(str(tmp_path / "scratch")) == (["run"] if gone else [])
    assert folder.exists() is not gone


def test_a_killed_process_not_yet_reaped_counts_as_ended(tmp_path):
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("process states come from Linux's /proc")
    folder = tmp_path / "scratch" / "run"
    code = f"from datafirst_spark.scratch import claim_scratch; claim_scratch({str(folder)!r}, 'run')"
    child = subprocess.Popen([sys.executable, "-c", code])  # not waited for: a zombie once it exits
    try:
        state = ""
        for _ in range(600):
            state = _process_stat(child.pid)[0]
            if state == "Z":
                break
            time.sleep(0.05)
        assert state == "Z"
        os.kill(child.pid, 0)  # the pid still answers
        assert sweep_dead_runs(str(tmp_path / "scratch")) == ["run"]
    finally:
        child.wait()


def test_a_half_written_owner_record_is_left_alone(tmp_path):
    folder = tmp_path / "scratch" / "run"
    folder.mkdir(parents=True)
    (folder / OWNER_FILE).write_text('{"run_id": "run", "pid":')
    assert sweep_dead_runs(str(tmp_path / "scratch")) == []
    assert folder.exists()
