"""A linkage's staged outputs -> the rows of the curated tables for one release.

Only Splink's people are published (the deterministic baseline stays a QA figure in
``linkage_quality``). Functions take and return DataFrames; nothing here reads or writes.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..ids import LINEAGE_COLUMNS, PERSON_ID_COLUMNS, RECORD_KEY, assign_person_ids, person_id_lineage
from .tables import CuratedTable

PUBLISHED_METHOD = "splink"

PERSON_LINK_COLUMNS = ["release", "source_dataset", "source_record_id", "person_id", "threshold", "method",
                       "match_probability"]
PERSON_KEY = ["release", "threshold", "person_id"]
PERSON_ATTRIBUTES = ["sex", "ethnicity_group", "birth_year_month", "postcode_district"]
SOURCE_DATASETS = ("npd", "pnc")  # each has its own records count in persons
PERSON_COLUMNS = [*PERSON_KEY, "records", "npd_records", "pnc_records", *PERSON_ATTRIBUTES]

PERSON_LINKS = CuratedTable(
    "person_links",
    not_null=("release", "source_dataset", "source_record_id", "person_id", "threshold", "method"),
    checks={"threshold_is_a_probability": "threshold > 0 AND threshold < 1",
            "match_probability_is_a_probability": "match_probability IS NULL OR "
                                                  "(match_probability >= 0 AND match_probability <= 1)"},
)
PERSONS = CuratedTable(
    "persons",
    not_null=("release", "threshold", "person_id", "records"),
    checks={"person_has_records": "records >= 1", "records_add_up": "npd_records + pnc_records <= records"},
)
QUARANTINE = CuratedTable("quarantine", not_null=("release", "source_dataset"))
LINKAGE_QUALITY = CuratedTable("linkage_quality", not_null=("release", "method", "view"))
PERSON_ID_LINEAGE = CuratedTable(
    "person_id_lineage",
    not_null=("release", "threshold", "person_id", "event"),
    checks={"known_event": "event IN ('new', 'carried', 'merged', 'split', 'retired')"},
)
# in the order they are published; the registry comes last, on its own
CURATED_TABLES = (PERSON_LINKS, PERSONS, QUARANTINE, LINKAGE_QUALITY, PERSON_ID_LINEAGE)


def published_clusters(clusters: DataFrame) -> DataFrame:
    return clusters.filter(F.col("method") == PUBLISHED_METHOD)


def person_ids(clusters: DataFrame, previous_links: DataFrame | None, first_new_id: int) -> DataFrame:
    """:data:`PERSON_ID_COLUMNS` for the release's Splink clusters, carried from the previous release's links."""
    previous = previous_links.select(*PERSON_ID_COLUMNS) if previous_links is not None else None
    return assign_person_ids(published_clusters(clusters), previous, first_new_id)


def best_link_probability(pairs: DataFrame, thresholds: DataFrame) -> DataFrame:
    """(source_dataset, source_record_id, threshold, match_probability): the most probable
    pair that put each record in its person at each threshold (records linked by no pair
    have none)."""
    kept = pairs.filter(F.col("excluded_by").isNull())
    ends = kept.select(F.col("source_dataset_l").alias("source_dataset"),
                       F.col("source_record_id_l").alias("source_record_id"), "match_probability").unionByName(
        kept.select(F.col("source_dataset_r").alias("source_dataset"),
                    F.col("source_record_id_r").alias("source_record_id"), "match_probability"))
    return (ends.join(F.broadcast(thresholds), F.col("match_probability") >= F.col("threshold"))
            .groupBy(*RECORD_KEY, "threshold").agg(F.max("match_probability").alias("match_probability")))


def person_links(ids: DataFrame, pairs: DataFrame, release: str) -> DataFrame:
    thresholds = ids.select("threshold").distinct()
    return (ids.join(best_link_probability(pairs, thresholds), [*RECORD_KEY, "threshold"], "left")
            .withColumns({"release": F.lit(release), "method": F.lit(PUBLISHED_METHOD)})
            .select(*PERSON_LINK_COLUMNS))


def persons(links: DataFrame, records: DataFrame) -> DataFrame:
    """One row per person and threshold: how many records from each source, and the
    attributes a researcher may see (the most common value among the person's records, the
    lowest of equally common ones)."""
    attributes = records.select(*RECORD_KEY, "sex", "ethnicity_group",
                                F.date_format("dob", "yyyy-MM").alias("birth_year_month"), "postcode_district")
    linked = links.join(attributes, RECORD_KEY, "left").withColumn(
        "_records", F.count(F.lit(1)).over(Window.partitionBy(*PERSON_KEY)))
    # Most people have one record, whose values are their attributes. Only people with several
    # go through mode(), whose buffer is a hash map per group and attribute, made, serialised
    # and merged even for a group of one.
    one_record = linked.filter(F.col("_records") == 1).select(
        *PERSON_KEY, F.col("_records").alias("records"),
        *[(F.col("source_dataset") == d).cast("long").alias(f"{d}_records") for d in SOURCE_DATASETS],
        *PERSON_ATTRIBUTES)
    several = (linked.filter(F.col("_records") > 1)
               .groupBy(*PERSON_KEY)
               .agg(F.count("*").alias("records"),
                    *[F.count_if(F.col("source_dataset") == d).alias(f"{d}_records") for d in SOURCE_DATASETS],
                    *[F.mode(c, deterministic=True).alias(c) for c in PERSON_ATTRIBUTES]))
    return one_record.unionByName(several).select(*PERSON_COLUMNS)


def lineage(links: DataFrame, previous_links: DataFrame | None, release: str) -> DataFrame:
    previous = previous_links.select(*PERSON_ID_COLUMNS) if previous_links is not None else None
    return person_id_lineage(links.select(*PERSON_ID_COLUMNS), previous).select(
        F.lit(release).alias("release"), *LINEAGE_COLUMNS)


def link_rates(links: DataFrame, from_dataset: str, to_dataset: str) -> dict[float, float]:
    """Per threshold, the share of ``from_dataset`` records whose person holds a ``to_dataset`` record."""
    has_target = (links.groupBy("threshold", "person_id")
                  .agg(F.max((F.col("source_dataset") == to_dataset).cast("int")).alias("has_target")))
    rows = (links.filter(F.col("source_dataset") == from_dataset).join(has_target, ["threshold", "person_id"])
            .groupBy("threshold").agg(F.avg("has_target").alias("rate")).collect())
    return {float(r["threshold"]): float(r["rate"]) for r in rows}
