"""Where a job's time goes, from Spark's event log: per stage of the suite (the stage that
started each Spark job, :data:`datafirst_spark.timing.STAGE_PROPERTY`), the wall time its Spark jobs ran, the task time
they used (CPU, garbage collection), what they spilled, shuffled, read and wrote.

The benchmark runs the refresh with the event log on (``spark_conf_dir_with_event_log``)
and keeps this profile in its result: a stage's seconds say how long it took, its profile
says whether that went on computing, collecting garbage, spilling or waiting on one task.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..timing import JOB_DESCRIPTION, STAGE_PROPERTY

NO_STAGE = "(no stage)"
_METRICS = ("task_seconds", "cpu_seconds", "gc_seconds", "spilled_bytes", "shuffle_read_bytes",
            "shuffle_write_bytes", "input_bytes", "output_bytes")


def spark_conf_dir_with_event_log(folder: Path, event_log_dir: Path) -> Path:
    """A Spark conf folder (for ``SPARK_CONF_DIR``) whose spark-defaults.conf is the one in
    force (``SPARK_CONF_DIR``, else ``$SPARK_HOME/conf``, if any) plus an uncompressed event
    log in ``event_log_dir``: spark-submit, which starts every job's JVM, reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    event_log_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    current = os.environ.get("SPARK_CONF_DIR") or (
        str(Path(os.environ["SPARK_HOME"]) / "conf") if os.environ.get("SPARK_HOME") else None)
    if current and (Path(current) / "spark-defaults.conf").exists():
        lines = [line for line in (Path(current) / "spark-defaults.conf").read_text().splitlines()
                 if not line.strip().startswith("spark.eventLog.")]
    lines += ["spark.eventLog.enabled true", f"spark.eventLog.dir {event_log_dir.resolve().as_uri()}",
              "spark.eventLog.compress false"]
    (folder / "spark-defaults.conf").write_text("\n".join(lines) + "\n")
    return folder


def _event_files(path: Path) -> list[Path]:
    """One application's event log files in order: the file itself, or, for a rolling log
    (Spark 4's default: a folder ``eventlog_v2_<app>`` of ``events_<n>_<app>`` files), its
    files by ``n``."""
    if path.is_file():
        return [path]
    return sorted(path.glob("events_*"), key=lambda f: int(f.name.split("_")[1]))


def _events(path: Path) -> Iterator[dict[str, Any]]:
    for part in _event_files(path):
        with part.open() as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _merged_seconds(spans: list[tuple[int, int]]) -> float:
    """Seconds covered by the union of (start, end) millisecond spans."""
    covered, end_so_far = 0, None
    for start, end in sorted(spans):
        if end_so_far is None or start > end_so_far:
            covered += end - start
            end_so_far = end
        elif end > end_so_far:
            covered += end - end_so_far
            end_so_far = end
    return covered / 1000


def profile_event_log(path: Path, top: int = 30) -> dict[str, Any]:
    """The profile of one application's event log: totals, then the ``top`` stages
    by task time, each with its figures."""
    job_stage: dict[int, str] = {}
    job_started: dict[int, int] = {}
    spark_stage_job: dict[int, int] = {}  # Spark's stages, not the suite's
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    figures: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys((*_METRICS, "tasks", "jobs"), 0))
    longest_task: dict[str, float] = defaultdict(float)
    cores = None
    for event in _events(path):
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            job = event["Job ID"]
            properties = event.get("Properties") or {}
            stage = properties.get(STAGE_PROPERTY) or properties.get(JOB_DESCRIPTION) or NO_STAGE
            job_stage[job], job_started[job] = stage, event["Submission Time"]
            for spark_stage in event.get("Stage IDs", []):
                spark_stage_job[spark_stage] = job
            figures[stage]["jobs"] += 1
        elif kind == "SparkListenerJobEnd":
            job = event["Job ID"]
            if job in job_started:
                spans[job_stage[job]].append((job_started[job], event["Completion Time"]))
        elif kind == "SparkListenerTaskEnd":
            stage = job_stage.get(spark_stage_job.get(event["Stage ID"], -1), NO_STAGE)
            info, metrics = event["Task Info"], event.get("Task Metrics") or {}
            row = figures[stage]
            row["tasks"] += 1
            row["task_seconds"] += metrics.get("Executor Run Time", 0) / 1000
            row["cpu_seconds"] += metrics.get("Executor CPU Time", 0) / 1e9
            row["gc_seconds"] += metrics.get("JVM GC Time", 0) / 1000
            row["spilled_bytes"] += metrics.get("Disk Bytes Spilled", 0)
            shuffle_read = metrics.get("Shuffle Read Metrics") or {}
            row["shuffle_read_bytes"] += shuffle_read.get("Remote Bytes Read", 0) + shuffle_read.get("Local Bytes Read", 0)
            row["shuffle_write_bytes"] += (metrics.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written", 0)
            row["input_bytes"] += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
            row["output_bytes"] += (metrics.get("Output Metrics") or {}).get("Bytes Written", 0)
            longest_task[stage] = max(longest_task[stage],
                                      (info.get("Finish Time", 0) - info.get("Launch Time", 0)) / 1000)
        elif kind == "SparkListenerExecutorAdded":
            cores = (event.get("Executor Info") or {}).get("Total Cores", cores)
    rows = []
    for stage, row in figures.items():
        wall = _merged_seconds(spans.get(stage, []))
        rows.append({"stage": stage, "jobs_wall_seconds": round(wall, 1),
                     **{k: (round(v, 1) if k.endswith("seconds") else int(v)) for k, v in row.items()},
                     "longest_task_seconds": round(longest_task[stage], 1)})
    rows.sort(key=lambda r: r["task_seconds"], reverse=True)
    totals = {k: (round(sum(r[k] for r in rows), 1) if k.endswith("seconds") else sum(r[k] for r in rows))
              for k in (*_METRICS, "tasks", "jobs")}
    gc_share = totals["gc_seconds"] / totals["task_seconds"] if totals["task_seconds"] else None
    return {"event_log": str(path), "cores": cores, "totals": totals,
            "gc_share_of_task_time": round(gc_share, 3) if gc_share is not None else None,
            "by_stage": rows[:top], "stages_left_out": max(0, len(rows) - top)}


def _finished(path: Path) -> bool:
    if path.is_file():
        return not path.name.endswith(".inprogress")
    return path.name.startswith("eventlog_v2_") and not any(path.glob("appstatus_*.inprogress"))


def latest_event_log(folder: Path) -> Path | None:
    """The event log (a file, or a rolling log's folder) of the application that finished last."""
    logs = [p for p in folder.glob("*") if _finished(p)]
    return max(logs, key=lambda p: p.stat().st_mtime) if logs else None


def profile_table(profile: dict[str, Any], rows: int = 15) -> str:
    """A result's profile as a Markdown table: the ``rows`` stages with the most task time."""
    gib = lambda n: f"{n / 2**30:.2f}"  # noqa: E731
    header = ("| stage | Spark jobs' wall s | task s | CPU s | GC s | spilled GiB | shuffle written GiB "
              "| input GiB | longest task s |")
    lines = [header, "| --- " * (header.count("|") - 1) + "|"]
    for row in profile["by_stage"][:rows]:
        cells = [row["stage"], row["jobs_wall_seconds"], row["task_seconds"], row["cpu_seconds"], row["gc_seconds"],
                 gib(row["spilled_bytes"]), gib(row["shuffle_write_bytes"]), gib(row["input_bytes"]),
                 row["longest_task_seconds"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    totals = profile["totals"]
    lines.append("| " + " | ".join(str(c) for c in [
        "all stages", "-", totals["task_seconds"], totals["cpu_seconds"], totals["gc_seconds"],
        gib(totals["spilled_bytes"]), gib(totals["shuffle_write_bytes"]), gib(totals["input_bytes"]), "-"]) + " |")
    return "\n".join(lines)
