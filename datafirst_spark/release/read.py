"""Reading releases back: the list of published releases, any curated table as a release
published it (Delta time travel to the version the registry recorded), and what changed
between two releases."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import ConfigError
from ..ids import PERSON_ID_COLUMNS, person_id_lineage
from ..lakehouse import Lakehouse
from .registry import current_publications, registry_rows
from .tables import read_as_of


def list_releases(spark: SparkSession, lakehouse: Lakehouse) -> list[dict[str, Any]]:
    """Each published release's latest publication, in the order releases were first published."""
    return list(current_publications(registry_rows(spark, lakehouse)).values())


def publication(spark: SparkSession, lakehouse: Lakehouse, release: str,
                rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    current = current_publications(rows if rows is not None else registry_rows(spark, lakehouse))
    if release not in current:
        known = ", ".join(current) or "none yet"
        raise ConfigError(f"release {release}: not published (published releases: {known})")
    return current[release]


def read_release_table(spark: SparkSession, lakehouse: Lakehouse, table: str, release: str,
                       rows: list[dict[str, Any]] | None = None) -> DataFrame:
    """``table``'s rows for ``release`` exactly as that release published them."""
    entry = publication(spark, lakehouse, release, rows)
    versions = entry["table_versions"]
    if table not in versions:
        raise ConfigError(f"table {table!r}: not in release {release} (tables: {', '.join(sorted(versions))})")
    return read_as_of(spark, lakehouse.curated(table), versions[table], release)


def diff_releases(spark: SparkSession, lakehouse: Lakehouse, old: str, new: str) -> DataFrame:
    """Per threshold and event, how many people: ``new`` (added), ``carried``, ``merged``,
    ``split`` and ``retired`` going from release ``old`` to release ``new``, with records
    moved. Works for any two releases, not only consecutive ones."""
    rows = registry_rows(spark, lakehouse)
    before = read_release_table(spark, lakehouse, "person_links", old, rows).select(*PERSON_ID_COLUMNS)
    after = read_release_table(spark, lakehouse, "person_links", new, rows).select(*PERSON_ID_COLUMNS)
    events = person_id_lineage(after, before)
    return (events.groupBy("threshold", "event")
            .agg(F.countDistinct("person_id").alias("people"), F.sum("records_shared").alias("records"))
            .orderBy("threshold", "event"))
