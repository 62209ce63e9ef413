"""Curated Delta tables that hold every release: one commit per release per table, found
again by the release it names, and kept readable for years.

Each curated table carries a ``release`` column. Writing a release replaces that
release's rows only (``replaceWhere``) in one commit whose ``userMetadata`` is
``release=<R>``, so reading the table as of that commit's version (time travel) gives
the release exactly as published, whatever came after. Delta drops log history after
30 days by default, which would end time travel; the retention properties below keep
ten years. Key columns are NOT NULL and CHECK constraints guard values, so a bad write
fails instead of publishing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..lakehouse import check_release, hadoop_file_system
from ..session import sql_conf

log = logging.getLogger(__name__)

RELEASE_METADATA = "release="  # a release's commit carries userMetadata "release=<R>"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
_CONSTRAINT_PROPERTY = "delta.constraints."  # how Delta stores a CHECK constraint: name lower-cased
_COMMIT_OR_CHECKPOINT = re.compile(r"^\d{20}\.(json|checkpoint.*\.parquet)$")

TEN_YEARS = "interval 3653 days"
RETENTION_PROPERTIES = {
    "delta.logRetentionDuration": TEN_YEARS,            # time travel needs the log
    "delta.deletedFileRetentionDuration": TEN_YEARS,    # and VACUUM must keep old data files
    "delta.checkpointRetentionDuration": TEN_YEARS,
}


@dataclass(frozen=True)
class CuratedTable:
    """A curated table's rules: ``not_null`` key columns and named SQL CHECK constraints."""

    name: str
    not_null: tuple[str, ...] = ("release",)
    checks: dict[str, str] = field(default_factory=dict)


def _sql_path(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def ensure_table(spark: SparkSession, table: CuratedTable, path: str, schema) -> None:
    """Create the table with its properties and constraints, in its first commit, if it does
    not exist yet; add any constraint an existing table lacks (one its definition gained
    after the table was created).

    A run killed while creating the table leaves a log folder whose first commit was never
    made: the table was never visible, and Delta refuses to create one there, so that folder
    is removed first."""
    if DeltaTable.isDeltaTable(spark, path):
        properties = DeltaTable.forPath(spark, path).detail().first()["properties"] if table.checks else {}
        for name, condition in table.checks.items():
            if _CONSTRAINT_PROPERTY + name.lower() not in properties:
                spark.sql(f"ALTER TABLE {_sql_path(path)} ADD CONSTRAINT {name} CHECK ({condition})")
                log.info("curated table %s: constraint %s added", table.name, name)
        return
    _remove_uncommitted_log(spark, table, path)
    missing = [c for c in table.not_null if c not in schema.fieldNames()]
    if missing:
        raise ValueError(f"curated table {table.name}: rows have no {', '.join(missing)} column")
    builder = DeltaTable.createIfNotExists(spark).location(path)
    for column in schema.fields:  # Delta cannot make a column NOT NULL later, so at creation
        builder = builder.addColumn(column.name, column.dataType, nullable=column.name not in table.not_null)
    # CHECK constraints are table properties to Delta: given here, they are in the creating commit
    for key, value in {**RETENTION_PROPERTIES, **{_CONSTRAINT_PROPERTY + name.lower(): condition
                                                   for name, condition in table.checks.items()}}.items():
        builder = builder.property(key, value)
    builder.execute()
    log.info("curated table %s created at %s", table.name, path)


def _remove_uncommitted_log(spark: SparkSession, table: CuratedTable, path: str) -> None:
    # no commit file and no checkpoint: the log holds only a commit's temporary files
    hadoop_path, fs = hadoop_file_system(spark, f"{path}/_delta_log")
    if not fs.exists(hadoop_path):
        return
    names = [s.getPath().getName() for s in fs.listStatus(hadoop_path)]
    if any(_COMMIT_OR_CHECKPOINT.match(name) for name in names):
        raise ValueError(f"curated table {table.name}: {path}/_delta_log holds commits but is not a readable "
                         "Delta table; it needs a person to look at it")
    log.warning("curated table %s: %s/_delta_log holds no commit (%s), left by a run stopped while creating "
                "the table; removing it", table.name, path, ", ".join(sorted(names)) or "empty")
    fs.delete(hadoop_path, True)


def write_release(spark: SparkSession, table: CuratedTable, path: str, rows: DataFrame, release: str) -> int:
    """Replace ``release``'s rows in the table in one commit naming it; the new version.

    The schema must match the table's (no silent new columns: Delta's schema enforcement)."""
    check_release(release)  # it goes into the replaceWhere predicate
    ensure_table(spark, table, path, rows.schema)
    before = latest_version(spark, path)
    (rows.write.format("delta").mode("overwrite")
     .option("replaceWhere", f"release = '{release}'")
     .option("userMetadata", RELEASE_METADATA + release)
     .save(path))
    version = latest_version(spark, path)
    if version == before:
        # nothing to add or remove (an empty release of an empty table): Delta made no
        # commit, but the release still gets one that names it
        with sql_conf(spark, {USER_METADATA_CONF: RELEASE_METADATA + release}):
            spark.sql(f"ALTER TABLE {_sql_path(path)} SET TBLPROPERTIES ('datafirst.release' = '{release}')")
        version = latest_version(spark, path)
    log.info("curated table %s: release %s written as version %d", table.name, release, version)
    return version


def latest_version(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def release_versions(spark: SparkSession, path: str) -> dict[str, int]:
    """For each release written to the table, the version of its latest commit."""
    history = DeltaTable.forPath(spark, path).history().select("version", "userMetadata").collect()
    versions: dict[str, int] = {}
    for row in sorted(history, key=lambda r: r["version"]):
        if row["userMetadata"] and row["userMetadata"].startswith(RELEASE_METADATA):
            versions[row["userMetadata"].removeprefix(RELEASE_METADATA)] = int(row["version"])
    return versions


def read_as_of(spark: SparkSession, path: str, version: int, release: str | None = None) -> DataFrame:
    """The table as it was at ``version``; with ``release``, that release's rows only."""
    df = spark.read.format("delta").option("versionAsOf", version).load(path)
    return df.filter(df["release"] == release) if release is not None else df



def row_hash(df: DataFrame, exclude: tuple[str, ...] = ()) -> Column:
    """A 64-bit hash of a row's values, independent of column order (maps, which Spark
    will not hash, go in as JSON)."""
    types = {f.name: f.dataType for f in df.schema.fields}
    columns = [F.to_json(F.col(c)) if isinstance(types[c], T.MapType) else F.col(c)
               for c in sorted(types) if c not in exclude]
    return F.xxhash64(*columns)


def table_checksums(frames: dict[str, DataFrame]) -> dict[str, str]:
    """Each frame's '<rows>:<sum of row hashes>' (equal for equal rows in any order and
    partitioning), all in one Spark job."""
    hashes = [df.select(F.lit(name).alias("table"), row_hash(df).cast("decimal(38,0)").alias("row_hash"))
              for name, df in frames.items()]
    sums = reduce(DataFrame.unionByName, hashes).groupBy("table").agg(
        F.count("*").alias("rows"), F.sum("row_hash").alias("hash_sum")).collect()
    found = {r["table"]: f"{r['rows']}:{r['hash_sum']}" for r in sums}
    return {name: found.get(name, "0:0") for name in frames}


def table_checksum(df: DataFrame) -> str:
    return table_checksums({"table": df})["table"]


def checksum_rows(checksum: str) -> int:
    """The row count a checksum carries."""
    return int(checksum.split(":", 1)[0])
