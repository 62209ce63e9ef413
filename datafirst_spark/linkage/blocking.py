"""Blocking rules bounded before any pair is made.

Each rule's comparisons are bounded exactly with one group-by on its keys: a block of n
records makes n(n-1)/2 comparisons (n_a x n_b between two datasets when only linking).
That is the count before Splink drops pairs an earlier rule already made, so it is an upper
bound, and it costs one aggregation however skewed the keys are. A rule over the
configured ceiling is refused, naming the rule and its largest block. Within the ceiling,
Splink's own blocking analysis (on a record sample sized to the data) logs each rule's
marginal comparisons, which is what predict will score.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..config import ConfigError
from .spec import BlockingRuleSpec, LinkageSpec

log = logging.getLogger(__name__)


class BlockingCeilingError(ConfigError):
    """A blocking rule would generate more comparisons than the linkage allows."""


@dataclass(frozen=True)
class RuleBound:
    rule: str
    comparisons: int  # upper bound: pairs before Splink removes those earlier rules made
    largest_block: int
    largest_block_key: str


def concatenated(records: dict[str, DataFrame], columns: list[str]) -> DataFrame:
    return reduce(DataFrame.unionByName, (df.select(*columns) for df in records.values()))


def rule_bound(records: DataFrame, rule: BlockingRuleSpec, link_type: str) -> RuleBound:
    """Upper bound on the comparisons ``rule`` generates over the concatenated records."""
    df = records
    for column in rule.explode:
        df = df.withColumn(column, F.explode_outer(column))
    keys = [F.expr(expression).alias(f"_key{i}") for i, expression in enumerate(rule.block_on)]
    names = [f"_key{i}" for i in range(len(keys))]
    blocks = df.select(*keys, "source_dataset").dropna(subset=names)
    if link_type == "link_only":
        per_dataset = blocks.groupBy(*names, "source_dataset").count()
        # pairs across datasets in a block: (sum of n)^2 minus sum of n^2, halved
        per_block = per_dataset.groupBy(*names).agg(
            ((F.sum("count") * F.sum("count") - F.sum(F.col("count") * F.col("count"))) / 2).cast("long").alias("pairs"),
            F.sum("count").alias("n"),
        )
    else:
        per_block = blocks.groupBy(*names).count().select(
            *names, (F.col("count") * (F.col("count") - 1) / 2).cast("long").alias("pairs"), F.col("count").alias("n")
        )
    totals = per_block.agg(
        F.coalesce(F.sum("pairs"), F.lit(0)).alias("pairs"),
        F.max_by(F.struct("n", *names), "n").alias("largest"),
    ).first()
    largest = totals["largest"]
    key = ", ".join(f"{e}={largest[n]!r}" for e, n in zip(rule.block_on, names, strict=True)) if largest else "-"
    return RuleBound(rule.description, int(totals["pairs"]), int(largest["n"]) if largest else 0, key)


def check_rules(records: DataFrame, rules: list[BlockingRuleSpec], link_type: str, ceiling: float,
                purpose: str, where: str) -> list[RuleBound]:
    """Bound every rule; refuse (before any pair is made) the first one over ``ceiling``."""
    bounds = []
    for rule in rules:
        bound = rule_bound(records, rule, link_type)
        log.info("blocking %s rule [%s]: at most %s comparisons; largest block %s records (%s)", purpose, bound.rule,
                 f"{bound.comparisons:,}", f"{bound.largest_block:,}", bound.largest_block_key)
        if bound.comparisons > ceiling:
            raise BlockingCeilingError(
                f"{where}: {purpose} blocking rule [{bound.rule}] would generate up to {bound.comparisons:,} "
                f"comparisons, over max_comparisons {ceiling:,.0f} (largest block: {bound.largest_block:,} records "
                f"with {bound.largest_block_key}); tighten the rule or raise max_comparisons"
            )
        bounds.append(bound)
    return bounds


def splink_rule_counts(linker_inputs, spec: LinkageSpec, total_bound: int) -> list[dict[str, object]]:  # noqa: ANN001
    """Splink's blocking analysis: marginal comparisons per prediction rule, estimated on a
    record sample that keeps the work to a few million pairs."""
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    from .model import SOURCE_DATASET, UNIQUE_ID, splink_blocking_rule

    proportion = 1.0 if total_bound <= 5e6 else max(0.01, math.sqrt(5e6 / total_bound))
    records = count_comparisons_from_blocking_rules(
        linker_inputs,
        blocking_rules=[splink_blocking_rule(r) for r in spec.model.blocking_rules_to_generate_predictions],
        link_type=spec.link_type,
        unique_id_column_name=UNIQUE_ID,
        source_dataset_column_name=SOURCE_DATASET,
        record_sample_proportion=proportion,
    )
    counts = []
    for rule, record in zip(spec.model.blocking_rules_to_generate_predictions, records, strict=True):
        marginal = int(record["marginal_comparison_count"])
        counts.append({"rule": rule.description, "marginal_comparisons": marginal,
                       "cumulative_comparisons": int(record["cumulative_comparison_count"]),
                       "estimated": bool(record["is_estimate"]), "sample_proportion": round(proportion, 4)})
        log.info("blocking prediction rule [%s]: %s new comparisons (Splink, %s of records sampled)",
                 rule.description, f"{marginal:,}", f"{proportion:.0%}")
    return counts
