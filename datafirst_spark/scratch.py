"""A run's scratch folder (Splink's intermediate tables, checkpoints, Spark's spill): who
owns it, its size, and its removal, by the run itself or, when the run died without
removing it, by the next run on the same machine.

A run removes its own scratch when it ends (``session.spark_run``), but a driver killed
with SIGKILL, by the kernel's out-of-memory killer or by a reboot cannot: at `full` that
leaves 15-27 GiB behind, and an unattended scheduler retrying a failing refresh would fill
the disk. So each run records its process in its folder, and every run first removes the
folders whose process is gone."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

OWNER_FILE = "_owner.json"


def is_local(scratch_dir: str) -> bool:
    return "://" not in scratch_dir or scratch_dir.startswith("file://")


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when absent); files removed mid-walk are skipped."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def remove_scratch(spark: SparkSession | None, scratch_dir: str) -> None:
    """Delete a run's scratch folder, local or on the cluster's file system."""
    if is_local(scratch_dir):
        shutil.rmtree(scratch_dir.removeprefix("file://"), ignore_errors=True)
        return
    if spark is None:
        log.warning("scratch %s not removed: no session to reach its file system", scratch_dir)
        return
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(scratch_dir)
    path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)


def _process_stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` (Linux) from its third field on: [state, ppid, ...]."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # the command name before ")" may hold spaces


_STARTED = 19  # field 22 of the whole line, starttime: tells a reused pid from the run's own


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def claim_scratch(scratch_dir: str, run_id: str) -> None:
    """Create a local scratch folder and record in it the process that owns it."""
    folder = Path(scratch_dir.removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    stat = _process_stat(pid)
    owner = {"run_id": run_id, "host": socket.gethostname(), "pid": pid, "process_start": stat[_STARTED] if stat else None,
             "boot_id": _boot_id()}
    written = folder / f"{OWNER_FILE}.tmp"
    written.write_text(json.dumps(owner))
    written.replace(folder / OWNER_FILE)  # whole or absent: a sweep never reads half a record


def owner_is_gone(owner: dict[str, Any]) -> bool:
    """Whether the process that claimed a folder has certainly ended. Unknown means no:
    a folder claimed on another host (a shared scratch root) or a process that cannot be
    told apart from the owner is left alone."""
    if owner.get("host") != socket.gethostname():
        return False
    booted = _boot_id()
    if owner.get("boot_id") and booted and owner["boot_id"] != booted:
        return True  # the machine restarted since: no process of that boot survives
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # a process of another user holds that pid
    stat = _process_stat(pid)
    if stat and stat[0] in ("Z", "X"):
        # killed, not yet reaped: a SIGKILLed driver's parent JVM died with it, and until
        # init collects it the pid still answers (for ever where PID 1 never reaps)
        return True
    started, now = owner.get("process_start"), stat[_STARTED] if stat else None
    return bool(started and now and started != now)  # the pid now names another process


def sweep_dead_runs(scratch_root: str) -> list[str]:
    """Remove the folders under a local ``scratch_root`` whose owning process is gone; the
    names of those removed. Folders without an owner record are never touched."""
    if not is_local(scratch_root):
        return []
    removed = []
    for owner_file in sorted(Path(scratch_root.removeprefix("file://")).glob(f"*/{OWNER_FILE}")):
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            continue  # removed meanwhile by its own run, or not ours
        if not owner_is_gone(owner):
            continue
        folder = owner_file.parent
        size = folder_bytes(folder)
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("scratch %s removed: run %s (pid %s) ended without removing it; %.2f GiB freed",
                    folder, owner.get("run_id"), owner.get("pid"), size / 1024**3)
        removed.append(folder.name)
    return removed
