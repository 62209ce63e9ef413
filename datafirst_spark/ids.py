"""Stable person IDs across releases, with the lineage of merges and splits.

A release's clusters (``source_dataset, source_record_id, cluster_id, threshold``) take
the previous release's person IDs (``source_dataset, source_record_id, person_id,
threshold``) where they hold the same source records. A new cluster and a previous
person are paired when each is the other's best match by records shared (ties broken by
the smaller person ID, then the smaller cluster ID, so the result is the same on every
run); a cluster whose records are exactly a previous person's always keeps that ID.
Clusters left unpaired get new IDs, numbered on from the largest ID ever issued, in the
order of their smallest record. Everything is per threshold.

Lineage rows (``person_id_lineage``) say what happened to every ID of the new release
and every ID of the previous one: ``new``, ``carried``, ``merged`` (a previous person's
records are now part of another person), ``split`` (a new person took records from a
previous person who kept their ID elsewhere) and ``retired`` (a previous ID no longer
used, e.g. all its records withdrawn).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

RECORD_KEY = ["source_dataset", "source_record_id"]
PERSON_ID_COLUMNS = ["source_dataset", "source_record_id", "person_id", "threshold"]
LINEAGE_COLUMNS = ["threshold", "person_id", "event", "related_person_id", "records_shared"]


def assign_person_ids(clusters: DataFrame, previous: DataFrame | None, first_new_id: int = 1) -> DataFrame:
    """Person IDs (:data:`PERSON_ID_COLUMNS`, person_id a long) for ``clusters``.

    ``previous``: the last release's person IDs, or None for the first release.
    ``first_new_id``: the smallest ID a new person may get (the registry's next free ID);
    never below one more than the largest previous ID."""
    clusters = clusters.select(*RECORD_KEY, "cluster_id", "threshold")
    # each record carries its cluster's smallest record, so that new people are numbered by
    # ranking records (a cluster's records share one rank) with no cluster table to join back
    records = clusters.withColumn("first_record", F.min(F.concat_ws("\x1f", *RECORD_KEY)).over(
        Window.partitionBy("threshold", "cluster_id")))
    carried = None
    if previous is not None:
        paired = pair_clusters_with_people(clusters, previous).select("threshold", "cluster_id", "person_id")
        carried = records.join(paired, ["threshold", "cluster_id"])
        records = records.join(paired, ["threshold", "cluster_id"], "left_anti")
        largest = previous.agg(F.max("person_id")).first()[0]
        first_new_id = max(first_new_id, (largest or 0) + 1)
    numbered = records.withColumn(
        "person_id",
        F.lit(first_new_id - 1).cast("long")
        + F.dense_rank().over(Window.partitionBy("threshold").orderBy("first_record", "cluster_id")),
    )
    ids = numbered if carried is None else numbered.unionByName(carried)
    return ids.select(*PERSON_ID_COLUMNS)


def pair_clusters_with_people(clusters: DataFrame, previous: DataFrame) -> DataFrame:
    """(threshold, cluster_id, person_id, records_shared) for each mutual-best pair."""
    shared = (
        clusters.join(previous.select(*RECORD_KEY, "threshold", "person_id"), [*RECORD_KEY, "threshold"])
        .groupBy("threshold", "cluster_id", "person_id")
        .agg(F.count("*").alias("records_shared"))
    )
    best_person = Window.partitionBy("threshold", "cluster_id").orderBy(F.desc("records_shared"), "person_id")
    best_cluster = Window.partitionBy("threshold", "person_id").orderBy(F.desc("records_shared"), "cluster_id")
    return (
        shared.withColumn("person_rank", F.row_number().over(best_person))
        .withColumn("cluster_rank", F.row_number().over(best_cluster))
        .filter((F.col("person_rank") == 1) & (F.col("cluster_rank") == 1))
        .select("threshold", "cluster_id", "person_id", "records_shared")
    )


def person_id_lineage(current: DataFrame, previous: DataFrame | None) -> DataFrame:
    """:data:`LINEAGE_COLUMNS` for a release's person IDs against the previous release's."""
    people = current.select("threshold", "person_id").distinct()
    if previous is None:
        return people.select("threshold", "person_id", F.lit("new").alias("event"),
                             F.lit(None).cast("long").alias("related_person_id"),
                             F.lit(None).cast("long").alias("records_shared"))
    flows = (
        current.alias("c")
        .join(previous.alias("p"), [*RECORD_KEY, "threshold"])
        .groupBy("threshold", F.col("c.person_id").alias("person_id"), F.col("p.person_id").alias("related_person_id"))
        .agg(F.count("*").alias("records_shared"))
    )
    current_ids = people.withColumn("in_current", F.lit(True))
    previous_ids = previous.select("threshold", F.col("person_id").alias("related_person_id")).distinct()
    carried = flows.filter(F.col("person_id") == F.col("related_person_id")).withColumn("event", F.lit("carried"))
    moved = flows.filter(F.col("person_id") != F.col("related_person_id"))
    # records of a previous person now under another ID: merged when that previous ID is
    # gone, split when it lives on elsewhere
    moved = (
        moved.join(current_ids.withColumnRenamed("person_id", "related_person_id"),
                   ["threshold", "related_person_id"], "left")
        .withColumn("event", F.when(F.col("in_current"), F.lit("split")).otherwise(F.lit("merged")))
        .drop("in_current")
    )
    with_history = flows.select("threshold", "person_id").distinct()
    new = people.join(with_history, ["threshold", "person_id"], "left_anti").select(
        "threshold", "person_id", F.lit("new").alias("event"), F.lit(None).cast("long").alias("related_person_id"),
        F.lit(None).cast("long").alias("records_shared"))
    retired = (
        previous_ids.join(current_ids.withColumnRenamed("person_id", "related_person_id"),
                          ["threshold", "related_person_id"], "left_anti")
        .join(moved.select("threshold", "related_person_id").distinct(), ["threshold", "related_person_id"],
              "left_anti")
        .select("threshold", F.col("related_person_id").alias("person_id"), F.lit("retired").alias("event"),
                F.lit(None).cast("long").alias("related_person_id"), F.lit(None).cast("long").alias("records_shared"))
    )
    return (carried.select(*LINEAGE_COLUMNS).unionByName(moved.select(*LINEAGE_COLUMNS))
            .unionByName(new).unionByName(retired))
