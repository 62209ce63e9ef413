"""Where everything lives under one lakehouse root (a local folder or a URI).

    landing/<release>/<dataset>/   raw extracts as delivered
    staging/<release>/<dataset>/   a release's work in progress: standardised records,
                                   quarantine, counts (overwritten when a stage re-runs)
    truth/<release>/<table>/       synthetic ground truth only (Delta)
    curated/<table>/               published Delta tables (every release in one table)
    research/<release>/<table>/    de-identified extracts, granted separately
    models/<linkage>/<release>/    trained Splink models (JSON) and their records
    runs/manifest/                 every annual refresh run's stages: status, seconds, counts
    reports/<release>/             the release's QA report (HTML) and clerical review sample:
                                   internal, never part of the research extract
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, StructType

from .config import ConfigError
from .session import sql_conf

AREAS = ("landing", "staging", "curated", "research", "truth", "models", "runs", "reports")
_RELEASE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")


def check_release(release: str) -> str:
    if not _RELEASE.match(release):
        raise ConfigError(
            f"release {release!r}: use letters, digits, '.', '_' or '-' (e.g. 2025), at most 64 characters"
        )
    return release


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


@dataclass(frozen=True)
class Lakehouse:
    root: str

    @classmethod
    def at(cls, root: str) -> Lakehouse:
        if is_local(root):
            root = str(Path(root.removeprefix("file://")).expanduser().resolve())
        return cls(root.rstrip("/"))

    def create_areas(self) -> None:
        """Make the top-level areas of a local lakehouse (object stores need no folders)."""
        if is_local(self.root):
            for area in AREAS:
                Path(self.area(area)).mkdir(parents=True, exist_ok=True)

    def area(self, name: str) -> str:
        if name not in AREAS:
            raise ValueError(f"unknown lakehouse area {name!r}")
        return f"{self.root}/{name}"

    def landing(self, release: str, dataset: str | None = None) -> str:
        path = f"{self.area('landing')}/{check_release(release)}"
        return f"{path}/{dataset}" if dataset else path

    def staging(self, release: str, dataset: str, table: str | None = None) -> str:
        path = f"{self.area('staging')}/{check_release(release)}/{dataset}"
        return f"{path}/{table}" if table else path

    def truth(self, release: str, table: str | None = None) -> str:
        path = f"{self.area('truth')}/{check_release(release)}"
        return f"{path}/{table}" if table else path

    def curated(self, table: str) -> str:
        return f"{self.area('curated')}/{table}"

    def research(self, release: str, table: str | None = None) -> str:
        path = f"{self.area('research')}/{check_release(release)}"
        return f"{path}/{table}" if table else path


def write_json(spark: SparkSession, path: str, payload: dict[str, Any]) -> None:
    """Write a small JSON document to a local path or any Hadoop file system."""
    write_text(spark, path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_text(spark: SparkSession | None, path: str, text: str) -> None:
    """Write a text file (a report, a JSON document) to a local path or any Hadoop file system."""
    if is_local(path):
        target = Path(path.removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return
    hadoop_path, fs = hadoop_file_system(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


# Delta keeps min/max/null counts of a table's first 32 columns per file, computed row by
# row as it writes, for data skipping. The suite reads what it stages whole, from files in
# no useful order, so it keeps only the row counts (count() still reads them): writing 2.43M
# standardised NPD records took 21.0-28.4 s with the statistics and 15.1-19.5 s without
# (three writes each, 2026-12-06).
STAGED_TABLE_PROPERTIES = {"delta.dataSkippingNumIndexedCols": "0"}


def write_delta(df: DataFrame, path: str, *, column_statistics: bool = False,
                plain_columns: Iterable[str] = ()) -> None:
    """Replace the Delta table at ``path`` with ``df`` (schema included): staged outputs
    that a re-run overwrites. A table created here keeps per-file column statistics only
    with ``column_statistics`` (for tables others filter, such as the research extract);
    Delta applies the property when it creates the table, not to one that exists.
    ``plain_columns``: columns of ``df`` (or arrays of them) written without a Parquet
    dictionary (:func:`without_dictionary`)."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if not column_statistics:
        writer = writer.options(**STAGED_TABLE_PROPERTIES)
    # Parquet's writer reads its settings from the write's Hadoop conf, which Spark builds from
    # the session's settings (tests/unit/test_release.py reads the written files' encodings)
    with sql_conf(df.sparkSession, without_dictionary(df.schema, plain_columns)):
        writer.save(path)


def without_dictionary(schema: StructType, columns: Iterable[str]) -> dict[str, str]:
    """Parquet's writer settings, one per column (its Hadoop key with the column's path), that
    write ``columns`` of ``schema`` plain, each value in its page, not as an index into the
    column's dictionary. Spark's reader makes a dictionary's value a string by copying it out
    of the dictionary (a new byte array) at every read; a plain value is read where it lies.
    An array column's path is that of its elements, as Spark writes lists
    (``all_surnames.list.element``)."""
    columns = list(columns)  # read twice below: a generator would give nothing the second time
    fields = {f.name: f.dataType for f in schema.fields}
    unknown = sorted(set(columns) - set(fields))
    if unknown:
        raise ValueError(f"plain-encoded columns not in the table: {', '.join(unknown)}")
    paths = [f"{c}.list.element" if isinstance(fields[c], ArrayType) else c for c in columns]
    return {f"parquet.enable.dictionary#{path}": "false" for path in paths}


def read_json(spark: SparkSession | None, path: str) -> Any:  # noqa: ANN401 - any JSON document
    """Read a JSON document (up to 64 MiB) from a local path or any Hadoop file system."""
    return json.loads(read_head(spark, path, 1 << 26).decode("utf-8"))


def hadoop_file_system(spark: SparkSession, path: str):  # noqa: ANN202 - py4j objects
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path, hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001


def _is_data_file(name: str) -> bool:
    # the files Spark's readers skip: _SUCCESS, _delta_log, .crc and other hidden files
    return not name.startswith(("_", "."))


def list_data_files(spark: SparkSession | None, path: str) -> list[tuple[str, int]] | None:
    """(file, size in bytes) for a file, or the data files directly in a folder, as
    Spark's file readers would see them; None if the path does not exist. Local paths
    need no Spark session."""
    if is_local(path):
        local = Path(path.removeprefix("file://"))
        if not local.exists():
            return None
        if local.is_file():
            return [(str(local), local.stat().st_size)]
        return sorted((str(p), p.stat().st_size) for p in local.iterdir() if p.is_file() and _is_data_file(p.name))
    if spark is None:
        raise ValueError(f"{path}: a remote path needs a Spark session to be listed")
    hadoop_path, fs = hadoop_file_system(spark, path)
    if not fs.exists(hadoop_path):
        return None
    status = fs.getFileStatus(hadoop_path)
    if status.isFile():
        return [(path, status.getLen())]
    return sorted(
        (str(s.getPath().toString()), s.getLen())
        for s in fs.listStatus(hadoop_path)
        if s.isFile() and _is_data_file(s.getPath().getName())
    )


def list_folders(spark: SparkSession | None, path: str) -> list[str]:
    """The folders directly in ``path`` (none if it does not exist)."""
    if is_local(path):
        local = Path(path.removeprefix("file://"))
        return sorted(str(p) for p in local.iterdir() if p.is_dir()) if local.is_dir() else []
    hadoop_path, fs = hadoop_file_system(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return sorted(str(s.getPath().toString()) for s in fs.listStatus(hadoop_path) if s.isDirectory())


def read_head(spark: SparkSession | None, path: str, size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes of a file (local without Spark, else through Hadoop)."""
    if is_local(path):
        with open(path.removeprefix("file://"), "rb") as handle:
            return handle.read(size)
    hadoop_path, fs = hadoop_file_system(spark, path)
    stream = fs.open(hadoop_path)
    try:
        return bytes(stream.readNBytes(size))
    finally:
        stream.close()
