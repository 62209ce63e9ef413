"""The ``releases`` registry: one row per publication of a release, written after every
curated table. A release exists for readers only once its row does; its row says which
Delta version of each table holds it, so later releases never change what it reads as.

A release published again on purpose (``--republish``) gets a new row with the next
``publication`` number; readers use the release's latest publication.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from ..lakehouse import Lakehouse
from .tables import RELEASE_METADATA, CuratedTable, ensure_table, latest_version

log = logging.getLogger(__name__)

REGISTRY = CuratedTable(
    "releases",
    not_null=("release", "publication", "linkage", "published_at"),
    checks={"publication_counts_from_one": "publication >= 1"},
)
REGISTRY_SCHEMA = T.StructType([
    T.StructField("release", T.StringType()),
    T.StructField("publication", T.IntegerType()),
    T.StructField("linkage", T.StringType()),
    T.StructField("previous_release", T.StringType()),
    T.StructField("table_versions", T.MapType(T.StringType(), T.LongType())),
    T.StructField("table_checksums", T.MapType(T.StringType(), T.StringType())),
    T.StructField("input_checksums", T.MapType(T.StringType(), T.StringType())),
    T.StructField("model_sha256", T.StringType()),
    T.StructField("input_rows", T.MapType(T.StringType(), T.LongType())),
    T.StructField("quarantined_rows", T.MapType(T.StringType(), T.LongType())),
    T.StructField("figures", T.MapType(T.StringType(), T.DoubleType())),
    T.StructField("largest_person_id", T.LongType()),
    T.StructField("research_extract", T.StringType()),
    T.StructField("audits", T.StringType()),  # JSON: every audit's result and figures
    T.StructField("code_version", T.StringType()),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("published_at", T.TimestampType()),
])


def registry_path(lakehouse: Lakehouse) -> str:
    return lakehouse.curated(REGISTRY.name)


def registry_rows(spark: SparkSession, lakehouse: Lakehouse) -> list[dict[str, Any]]:
    """Every publication, oldest first (none before the first release)."""
    path = registry_path(lakehouse)
    if not DeltaTable.isDeltaTable(spark, path):
        return []
    rows = spark.read.format("delta").load(path).orderBy("published_at", "release", "publication").collect()
    return [r.asDict(recursive=True) for r in rows]


def current_publications(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each release's latest publication, in the order releases were first published."""
    current: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["release"] not in current or row["publication"] > current[row["release"]]["publication"]:
            current[row["release"]] = row
    return current


def record_publication(spark: SparkSession, lakehouse: Lakehouse, entry: dict[str, Any]) -> int:
    """Append the publication's row (the release becomes visible); the registry's new version."""
    path = registry_path(lakehouse)
    ensure_table(spark, REGISTRY, path, REGISTRY_SCHEMA)
    row = {**entry, "audits": json.dumps(entry["audits"], sort_keys=True, default=str)}
    (spark.createDataFrame([row], REGISTRY_SCHEMA).write.format("delta").mode("append")
     .option("userMetadata", RELEASE_METADATA + entry["release"]).save(path))
    version = latest_version(spark, path)
    log.info("registry: release %s publication %d recorded as version %d", entry["release"], entry["publication"],
             version)
    return version
