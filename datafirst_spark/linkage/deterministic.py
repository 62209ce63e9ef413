"""The rules-based baseline: the DfE-style deterministic link, in passes.

Each pass links the records of ``link_from`` (PNC) that no earlier pass linked to every
record of the other datasets agreeing exactly on all of the pass's columns (nulls never
agree). Pass 1 is the strictest (names, date of birth and sex), later passes relax it. The
output has the shape of Splink's scored pairs (match_probability 1.0, match_key the pass),
so the same clustering and evaluation run on both methods.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .clustering import PAIR_COLUMNS
from .spec import DeterministicPass

log = logging.getLogger(__name__)


# Up to this many ``link_from`` records are broadcast to every pass's join, so the other
# datasets are only scanned, never shuffled: at full scale 1.65M PNC records against 15M NPD
# records, five passes. A hash table of a few hundred MB; beyond this, Spark chooses.
BROADCAST_MAX_ROWS = 5_000_000


def deterministic_pairs(records: dict[str, DataFrame], link_from: str, passes: list[DeterministicPass],
                        link_from_rows: int | None = None) -> DataFrame:
    """(PNC record, other record) pairs from the first pass that links each PNC record.

    ``link_from_rows``: how many ``link_from`` records there are, when known; at most
    :data:`BROADCAST_MAX_ROWS` and they are broadcast to each pass."""
    broadcast = link_from_rows is not None and link_from_rows <= BROADCAST_MAX_ROWS
    left = records[link_from]
    others = [df for name, df in records.items() if name != link_from]
    right = others[0]
    for more in others[1:]:
        right = right.unionByName(more)
    linked: DataFrame | None = None
    found: list[DataFrame] = []
    for number, rule in enumerate(passes, start=1):
        candidates = left if linked is None else left.join(linked, "source_record_id", "left_anti")
        keys = [F.col(f"l.{c}") == F.col(f"r.{c}") for c in rule.columns]
        condition = keys[0]
        for key in keys[1:]:
            condition = condition & key
        pairs = (F.broadcast(candidates) if broadcast else candidates).alias("l").join(right.alias("r"), condition).select(
            F.col("l.source_dataset").alias("source_dataset_l"),
            F.col("l.source_record_id").alias("source_record_id_l"),
            F.col("r.source_dataset").alias("source_dataset_r"),
            F.col("r.source_record_id").alias("source_record_id_r"),
            F.lit(None).cast("double").alias("match_weight"),
            F.lit(1.0).alias("match_probability"),
            F.lit(f"{number}:{rule.name}").alias("match_key"),
            F.lit(None).cast("string").alias("excluded_by"),
        ).cache()
        found.append(pairs)
        newly = pairs.select(F.col("source_record_id_l").alias("source_record_id")).distinct()
        linked = newly if linked is None else linked.unionByName(newly)
        log.info("deterministic pass %d (%s): %d %s records linked", number, rule.name, newly.count(), link_from)
    result = found[0]
    for more in found[1:]:
        result = result.unionByName(more)
    return result.select(*PAIR_COLUMNS)
