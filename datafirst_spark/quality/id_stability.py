"""How well person IDs survive from one release to the next, measured against truth.

A true person is *unchanged* between two releases when their source records are the
same records with the same standardised content in both (same keys, same row hash) and
they have no new record. Each unchanged person should keep one person ID: the measure
is the share of unchanged people all of whose records carry, in the new release, the
same person ID they had in the old one (per threshold). Also reported: the share of new
release people whose record set equals an old person's record set that kept that
person's ID (100% by construction of the ID rule).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..ids import RECORD_KEY
from ..release.tables import row_hash


def record_hashes(records: DataFrame) -> DataFrame:
    """(source_dataset, source_record_id, row_hash) of standardised records."""
    return records.select(*RECORD_KEY, row_hash(records, exclude=("release",)).alias("row_hash"))


def unchanged_people(old_records: DataFrame, new_records: DataFrame, old_truth: DataFrame,
                     new_truth: DataFrame) -> DataFrame:
    """true_person_id of people whose records are identical in both releases."""
    old = record_hashes(old_records).join(old_truth.select(*RECORD_KEY, "true_person_id"), RECORD_KEY)
    new = record_hashes(new_records).join(new_truth.select(*RECORD_KEY, "true_person_id"), RECORD_KEY)
    both = old.alias("o").join(new.alias("n"), RECORD_KEY, "full_outer").select(
        F.coalesce("o.true_person_id", "n.true_person_id").alias("true_person_id"),
        (F.col("o.row_hash").isNotNull() & F.col("n.row_hash").isNotNull()
         & (F.col("o.row_hash") == F.col("n.row_hash"))).alias("same"))
    return both.groupBy("true_person_id").agg(F.min(F.col("same").cast("int")).alias("all_same")) \
        .filter("all_same = 1").select("true_person_id")


def id_stability(old_links: DataFrame, new_links: DataFrame, unchanged: DataFrame, truth: DataFrame) -> list[
        dict[str, Any]]:
    """Per threshold: unchanged people, how many kept their person ID on every record, and
    the record-set view."""
    truth = truth.select(*RECORD_KEY, "true_person_id")
    moved = (old_links.alias("o").join(new_links.alias("n"), [*RECORD_KEY, "threshold"])
             .select(*RECORD_KEY, "threshold", (F.col("o.person_id") == F.col("n.person_id")).alias("kept")))
    per_person = (moved.join(truth, RECORD_KEY).join(unchanged, "true_person_id")
                  .groupBy("threshold", "true_person_id").agg(F.min(F.col("kept").cast("int")).alias("kept")))
    by_truth = {r["threshold"]: (r["people"], r["kept"]) for r in per_person.groupBy("threshold").agg(
        F.count("*").alias("people"), F.sum("kept").alias("kept")).collect()}

    def record_sets(links: DataFrame) -> DataFrame:
        return links.groupBy("threshold", "person_id").agg(
            F.sort_array(F.collect_list(F.concat_ws("\x1f", *RECORD_KEY))).alias("records"))

    same_sets = record_sets(old_links).alias("o").join(record_sets(new_links).alias("n"), ["threshold", "records"])
    by_sets = {r["threshold"]: (r["people"], r["kept"]) for r in same_sets.groupBy("threshold").agg(
        F.count("*").alias("people"), F.count_if(F.col("o.person_id") == F.col("n.person_id")).alias("kept"))
        .collect()}
    rows = []
    for threshold in sorted(set(by_truth) | set(by_sets)):
        people, kept = by_truth.get(threshold, (0, 0))
        set_people, set_kept = by_sets.get(threshold, (0, 0))
        rows.append({"threshold": threshold, "unchanged_people": people, "unchanged_people_kept_id": kept,
                     "unchanged_share_kept": round(kept / people, 6) if people else None,
                     "same_record_set_people": set_people, "same_record_set_kept_id": set_kept})
    return rows
