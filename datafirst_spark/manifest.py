"""The run manifest: one Delta table under ``runs/manifest`` that says, for every run of
every job that keeps one (the annual refresh), which stage started, finished or failed,
when, in how many seconds and with what counts.

Rows are only appended (a stage's start, then its end), so a run killed mid-stage leaves
its ``running`` row behind: the next run reads that stage as not finished and does it
again. The latest row of each (release, stage) is its state.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from . import code_version
from .lakehouse import Lakehouse

log = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"

MANIFEST_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), nullable=False),
    T.StructField("job", T.StringType(), nullable=False),
    T.StructField("release", T.StringType(), nullable=False),
    T.StructField("stage", T.StringType(), nullable=False),
    T.StructField("status", T.StringType(), nullable=False),
    T.StructField("recorded_at", T.TimestampType(), nullable=False),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("seconds", T.DoubleType()),
    T.StructField("counts", T.MapType(T.StringType(), T.LongType())),
    T.StructField("details", T.StringType()),  # JSON: the stage's report (paths, figures)
    T.StructField("message", T.StringType()),  # why it failed
    T.StructField("code_version", T.StringType()),
])


def manifest_path(lakehouse: Lakehouse) -> str:
    return f"{lakehouse.area('runs')}/manifest"


@dataclass(frozen=True)
class StageState:
    stage: str
    status: str
    run_id: str
    recorded_at: datetime


def stage_states(spark: SparkSession, lakehouse: Lakehouse, job: str, release: str) -> dict[str, StageState]:
    """Each stage's latest row for ``release`` (no manifest yet: none)."""
    path = manifest_path(lakehouse)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    latest = Window.partitionBy("stage").orderBy(F.col("recorded_at").desc())
    rows = (spark.read.format("delta").load(path).filter((F.col("job") == job) & (F.col("release") == release))
            .withColumn("n", F.row_number().over(latest)).filter("n = 1").collect())
    return {r["stage"]: StageState(r["stage"], r["status"], r["run_id"], r["recorded_at"]) for r in rows}


def record_stage(spark: SparkSession, lakehouse: Lakehouse, *, run_id: str, job: str, release: str, stage: str,
                 status: str, started_at: datetime | None = None, seconds: float | None = None,
                 counts: dict[str, int] | None = None, details: dict[str, Any] | None = None,
                 message: str | None = None) -> None:
    row = {
        "run_id": run_id, "job": job, "release": release, "stage": stage, "status": status,
        "recorded_at": datetime.now(timezone.utc), "started_at": started_at, "seconds": seconds,
        "counts": {k: int(v) for k, v in (counts or {}).items()},
        "details": json.dumps(details, sort_keys=True, default=str) if details is not None else None,
        "message": message, "code_version": code_version(),
    }
    (spark.createDataFrame([row], MANIFEST_SCHEMA).write.format("delta").mode("append")
     .option("userMetadata", f"run={run_id} stage={stage} status={status}").save(manifest_path(lakehouse)))

