"""What every benchmark script records: a job run's wall time, the peak memory of its whole
process tree (Python driver + JVM; RSS and PSS), of its largest process (in local mode, the
driver JVM) and of the whole machine, the peak size of a folder it writes to (its scratch),
disk used, the machine, and how fast the machine runs fixed work at the time."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..scratch import folder_bytes  # the benchmark scripts import it from here


@dataclass(frozen=True)
class Measurement:
    wall_seconds: float
    peak_rss_bytes: int  # the whole process tree
    returncode: int
    peak_process_rss_bytes: int = 0  # its largest single process
    peak_folder_bytes: int = 0  # the watched folder, when one was given
    # the tree's proportional set size: a page shared by forked processes (Python workers,
    # the JVM's children) counts once, where summing RSS counts it in every sharer
    peak_pss_bytes: int = 0
    peak_machine_used_bytes: int = 0  # the whole machine's used memory, whatever runs on it


def tree_memory(process: psutil.Process, with_pss: bool = True) -> tuple[int, int, int]:
    """(RSS sum, largest RSS, PSS sum) over ``process`` and its descendants, one read each.

    PSS (``with_pss``) walks every page table of every process (/proc/<pid>/smaps); without
    it the PSS sum is 0 and RSS comes from a cheap read of /proc/<pid>/statm."""
    total = largest = pss = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            memory = p.memory_full_info() if with_pss else p.memory_info()
        except psutil.Error:
            continue
        total, largest = total + memory.rss, max(largest, memory.rss)
        pss += memory.pss if with_pss else 0
    return total, largest, pss


def run_measured(command: list[str], log_path: Path, cwd: Path, sample_seconds: float = 0.5,
                 watch_folder: Path | None = None, folder_every: int = 20, pss_every: int = 20,
                 env: dict[str, str] | None = None) -> Measurement:
    """Run ``command`` with its output in ``log_path``, sampling the tree's RSS every
    ``sample_seconds``, its PSS every ``pss_every`` samples and the size of ``watch_folder``
    every ``folder_every`` samples. Neither walk is free: PSS read every 0.5 s from a 15 GiB
    driver cost the harness ~26 CPU-minutes during a full-scale refresh, and each read walks
    the driver's page tables under its memory-map lock."""
    started = time.monotonic()
    peak = peak_process = peak_folder = peak_pss = peak_used = samples = 0
    with log_path.open("w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            total, largest, pss = tree_memory(watched, with_pss=samples % pss_every == 0)
            peak, peak_process, peak_pss = max(peak, total), max(peak_process, largest), max(peak_pss, pss)
            peak_used = max(peak_used, psutil.virtual_memory().used)
            if watch_folder is not None and samples % folder_every == 0:
                peak_folder = max(peak_folder, folder_bytes(watch_folder))
            samples += 1
            time.sleep(sample_seconds)
    return Measurement(round(time.monotonic() - started, 1), peak, child.returncode, peak_process, peak_folder,
                       peak_pss, peak_used)


def gib(size: int) -> float:
    return round(size / 1024**3, 2)


def java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine() -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "java": java_version(),
        "platform": platform.platform(),
    }


def speed_probe() -> dict[str, float]:
    """How fast this machine runs three fixed, single-threaded pieces of work now (a few
    seconds in all): SHA-256 over 256 MiB, copying 1 GiB in memory, and an interpreted loop.

    The virtual machine the benchmarks run on took 387 s for a full-scale stage (NPD
    standardisation) one evening and 568 s the next night, with the same code, records and
    settings, so a result's wall times say as much about the hour as about the code. Recorded beside
    them, these figures tell a slow hour from slow code when results of different sessions
    are compared."""
    block = bytes(64 * 2**20)
    started = time.perf_counter()
    for _ in range(4):
        hashlib.sha256(block).digest()
    sha256 = 256 / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(16):
        bytearray(block)
    copy = 1024 / (time.perf_counter() - started)
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number % 7
    loop = time.perf_counter() - started
    return {"sha256_mib_per_second": round(sha256, 1), "memory_copy_mib_per_second": round(copy, 1),
            "python_loop_seconds": round(loop, 3)}
