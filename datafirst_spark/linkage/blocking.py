"""Blocking rules bounded before any pair is made.

Each rule's comparisons are bounded exactly with one group-by on its keys: a block of n
records makes n(n-1)/2 comparisons (n_a x n_b between two datasets when only linking).
Two records of a dataset named in the spec's ``within_dataset_block_on`` count only when
they share its sub-block too. That is the count before Splink drops pairs an earlier rule
already made, so it is an upper bound, and it costs one shuffle of a hash of the records'
keys per rule however skewed they are (a block's records meet in one task, which only
counts them). A rule over the configured ceiling is refused, naming the rule and its
largest block. Within the ceiling, the bounds write each rule's blocks of two records or
more: the pairs (:mod:`.scoring`, which makes and scores them in their blocks) are made from
the records of those blocks only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
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


def rule_bound(records: DataFrame, rule: BlockingRuleSpec, link_type: str,
               within: dict[str, list[str]] | None = None, compare_unknown: bool = False,
               datasets: list[str] | None = None, blocks_path: str | None = None) -> RuleBound:
    """Upper bound on the comparisons ``rule`` generates over the concatenated records.

    ``within`` is the spec's ``within_dataset_block_on``: two records of a dataset named
    there count as a pair only when its expressions agree too (and are not null), or, with
    ``compare_unknown``, when either record lacks one of them. ``datasets``: the records'
    source datasets (read from them when not given). With ``blocks_path``, the blocks of two
    records or more are written there as Parquet (``_block``: :func:`block_hash` of the
    rule's keys; ``n``: records; ``pairs``: the block's bound), for
    :func:`~.scoring.scored_in_blocks`.
    """
    within = within or {}
    datasets = datasets if datasets is not None else record_datasets(records)
    df = records
    for column in rule.explode:
        df = df.withColumn(column, F.explode_outer(column))
    keys = [F.expr(expression).alias(f"_key{i}") for i, expression in enumerate(rule.block_on)]
    names = [f"_key{i}" for i in range(len(keys))]
    dataset = F.col("source_dataset")
    # the sub-block two records of one dataset must share to pair: one for a dataset not in
    # `within`; for one that is, a hash of its expressions (null when any is null). Records
    # whose hashes collide share a sub-block they should not, which only adds pairs: the
    # bound stays an upper bound.
    sub_block = F.lit(0).cast("long")
    for name, expressions in within.items():
        values = [F.expr(e) for e in expressions]
        agree = F.when(reduce(lambda a, b: a & b, [v.isNotNull() for v in values]), F.xxhash64(*values))
        sub_block = F.when(dataset == name, agree).otherwise(sub_block)
    # A block is known by a hash of its keys: the shuffle and the two aggregations below
    # carry one long instead of the keys' strings. Blocks whose hashes collide are counted as
    # one, which only adds pairs: the bound stays an upper bound. Partitioned by that hash
    # once, the aggregations (sub-block, then block) share the one shuffle.
    # The dataset travels as its position in `datasets`: the shuffled rows and the
    # aggregations' keys are then all fixed-width, with no string to hash or compare.
    position = F.lit(None).cast("int")
    for i, name in enumerate(datasets):
        position = F.when(dataset == name, i).otherwise(position)
    keyed = df.select(*keys, position.alias("_dataset"), sub_block.alias("_sub_block")).dropna(subset=names)
    blocks = keyed.select(block_hash(names).alias("_block"), "_dataset", "_sub_block").repartition("_block")
    per_sub_block = blocks.groupBy("_block", "_dataset", "_sub_block").count()
    count, known, of = F.col("count"), F.col("_sub_block").isNotNull(), F.col("_dataset")
    # per block, in one aggregation: its records (n), each dataset's (n_i, pivoted by position)
    # and, when they are compared, each dataset's records lacking a sub-block (u_i)
    per_dataset = [F.coalesce(F.sum(F.when(of == i, count)), F.lit(0)).alias(f"_n{i}") for i in range(len(datasets))]
    if compare_unknown:
        per_dataset += [F.coalesce(F.sum(F.when((of == i) & ~known, count)), F.lit(0)).alias(f"_u{i}")
                        for i in range(len(datasets))]
    per_block = per_sub_block.groupBy("_block").agg(
        F.sum(count).alias("n"), F.coalesce(F.sum(F.when(known, count * (count - 1) / 2)), F.lit(0)).alias("_within"),
        *per_dataset)
    n_i = [F.col(f"_n{i}") for i in range(len(datasets))]
    within_datasets = F.col("_within")
    if compare_unknown:
        # a record lacking a value pairs with every other record of its dataset in the block
        for n_d, u_d in zip(n_i, [F.col(f"_u{i}") for i in range(len(datasets))], strict=True):
            within_datasets = within_datasets + u_d * (n_d - u_d) + u_d * (u_d - 1) / 2
    # pairs across datasets in a block: (sum of n)^2 minus sum of n^2, halved
    across = (F.col("n") * F.col("n") - reduce(lambda total, n_d: total + n_d * n_d, n_i, F.lit(0))) / 2
    pairs = across + (within_datasets if link_type != "link_only" else F.lit(0))
    per_block = per_block.select("_block", "n", pairs.cast("long").alias("pairs"))
    if blocks_path is not None:
        # A block of one record makes no pair and adds none to the bound: the blocks of two or
        # more give the same bound and largest block, and are all the pairs need to know.
        per_block.filter(F.col("n") >= 2).write.mode("overwrite").parquet(blocks_path)
        per_block = records.sparkSession.read.parquet(blocks_path)
    totals = per_block.agg(
        F.coalesce(F.sum("pairs"), F.lit(0)).alias("pairs"),
        F.max_by(F.struct("n", "_block"), "n").alias("largest"),
    ).first()
    largest = totals["largest"]
    if largest is None:
        # no block of two (or, without blocks_path, no keyed record at all)
        alone = keyed.select(*names).first()
        if alone is None:
            return RuleBound(rule.description, 0, 0, "-")
        largest, values = {"n": 1}, alone
    else:
        # the largest block's keys, from one of its records
        values = keyed.filter(block_hash(names) == F.lit(largest["_block"])).select(*names).first()
    key = ", ".join(f"{e}={values[n]!r}" for e, n in zip(rule.block_on, names, strict=True))
    return RuleBound(rule.description, int(totals["pairs"]), int(largest["n"]), key)


def block_hash(names: list[str] | list[Column]) -> Column:
    """A block's key columns as one long: what the bounds count by and the pairs are filtered on."""
    return F.xxhash64(*names)


def record_datasets(records: DataFrame) -> list[str]:
    """The source datasets the records come from."""
    return sorted(row[0] for row in records.select("source_dataset").distinct().collect())


def check_rules(records: DataFrame, rules: list[BlockingRuleSpec], link_type: str, ceiling: float,
                purpose: str, where: str, within: dict[str, list[str]] | None = None,
                compare_unknown: bool = False, blocks_dir: str | None = None) -> list[RuleBound]:
    """Bound every rule; refuse (before any pair is made) the first one over ``ceiling``.
    With ``blocks_dir``, each rule's blocks of two or more are written under it (see
    :func:`rule_bound`), where :func:`~.scoring.scored_in_blocks` reads them."""
    bounds = []
    datasets = record_datasets(records) if rules else []
    for index, rule in enumerate(rules):
        path = None if blocks_dir is None else rule_blocks_path(blocks_dir, index)
        bound = rule_bound(records, rule, link_type, within, compare_unknown, datasets, path)
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


def rule_blocks_path(blocks_dir: str, index: int) -> str:
    return f"{blocks_dir}/rule-{index}"


def blocked_pair_counts(blocked_pairs: DataFrame, spec: LinkageSpec) -> list[dict[str, object]]:
    """:func:`rule_counts` of blocked id pairs in Splink's shape (Splink's own
    ``linker.inference.compute_blocked_pairs_for_predict()``, whose ``match_key`` is the index
    of the first rule that makes the pair)."""
    return rule_counts({str(row["match_key"]): row["count"] for row in blocked_pairs.groupBy("match_key").count().collect()},
                       spec)


def rule_counts(pairs_per_key: dict[str, int], spec: LinkageSpec) -> list[dict[str, object]]:
    """Marginal and cumulative comparisons per prediction rule, from the pairs counted per
    match key (the index, as a string, of the first rule that makes the pair)."""
    counts, cumulative = [], 0
    for key, rule in enumerate(spec.model.blocking_rules_to_generate_predictions):
        marginal = int(pairs_per_key.get(str(key), 0))
        cumulative += marginal
        counts.append({"rule": rule.description, "marginal_comparisons": marginal,
                       "cumulative_comparisons": cumulative, "estimated": False, "sample_proportion": 1.0})
        log.info("blocking prediction rule [%s]: %s new comparisons", rule.description, f"{marginal:,}")
    return counts
