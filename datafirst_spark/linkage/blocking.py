"""Blocking rules bounded before any pair is made.

Each rule's comparisons are bounded exactly with one group-by on its keys: a block of n
records makes n(n-1)/2 comparisons (n_a x n_b between two datasets when only linking).
Two records of a dataset named in the spec's ``within_dataset_block_on`` count only when
they share its sub-block too. That is the count before Splink drops pairs an earlier rule
already made, so it is an upper bound, and it costs one shuffle of a hash of the records'
keys per rule however skewed they are (a block's records meet in one task, which only
counts them). A rule over the configured ceiling is refused, naming the rule and its
largest block. Within the ceiling,
the blocked pairs predict will score are made here (:func:`blocked_pairs`) and handed to
Splink's predict, and counted per rule (each pair under the first rule that makes it):
exact marginal comparisons, for the price of a group-by over pairs of ids that predict
reads anyway.

Splink makes the same pairs itself from the rules, but each of its joins carries every
earlier rule's columns (arrays too) to drop the pairs an earlier rule made, and an exploded
rule drops duplicates of its own before the union is deduplicated again. Here each rule
carries only the columns of its own condition (the one Splink is given) and the record's
id, and makes its pairs without a join: its records are shuffled and sorted by block once,
each meets the records after it in its block, and the condition decides which pairs stay.
Most records are alone in their block for a rule; the bounds write each rule's blocks of two
or more, and only records of those that make a pair are shuffled and sorted.
One group-by over the union keeps each pair once under its first rule. Same pairs, same
match keys (``tests/unit/test_linkage_parts.py`` checks them against Splink's own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..config import ConfigError
from .clustering import node_id
from .model import RECORD_SOURCE, prediction_blocking_rule
from .spec import BlockingRuleSpec, LinkageSpec

log = logging.getLogger(__name__)


# Beyond this many blocks that make a pair (8 bytes each), a rule's pairs are made from all
# its records rather than from those in these blocks only: every task would hold the set.
MAX_BROADCAST_BLOCKS = 20_000_000


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
    rule's keys; ``n``: records; ``pairs``: the block's bound), for :func:`blocked_pairs`.
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
    keyed = df.select(*keys, dataset, sub_block.alias("_sub_block")).dropna(subset=names)
    blocks = keyed.select(block_hash(names).alias("_block"), "source_dataset", "_sub_block").repartition("_block")
    per_sub_block = blocks.groupBy("_block", "source_dataset", "_sub_block").count()
    count, known = F.col("count"), F.col("_sub_block").isNotNull()
    # per block, in one aggregation: its records (n), each dataset's (n_i, pivoted by name)
    # and, when they are compared, each dataset's records lacking a sub-block (u_i)
    per_dataset = [F.coalesce(F.sum(F.when(dataset == d, count)), F.lit(0)).alias(f"_n{i}")
                   for i, d in enumerate(datasets)]
    if compare_unknown:
        per_dataset += [F.coalesce(F.sum(F.when((dataset == d) & ~known, count)), F.lit(0)).alias(f"_u{i}")
                        for i, d in enumerate(datasets)]
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
        # more give the same bound and largest block, and are all blocked_pairs needs to know.
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


def block_hash(names: list[str]) -> Column:
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
    :func:`rule_bound`), where :func:`blocked_pairs` reads them."""
    bounds = []
    datasets = record_datasets(records) if rules else []
    for index, rule in enumerate(rules):
        path = None if blocks_dir is None else _rule_blocks_path(blocks_dir, index)
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


def _rule_blocks_path(blocks_dir: str, index: int) -> str:
    return f"{blocks_dir}/rule-{index}"


def blocked_pairs(records: DataFrame, spec: LinkageSpec, blocks_dir: str | None = None) -> DataFrame:
    """The pairs Splink's blocking makes for the spec's prediction rules over its
    concatenated records, in the shape of its ``__splink__blocked_id_pairs``: (match_key,
    join_key_l, join_key_r), where a join key is Splink's record id (as
    :func:`~datafirst_spark.linkage.clustering.node_id` makes it; the ``source_record_id``
    alone for ``dedupe_only``), the left one the lesser, and match_key the index (as a
    string) of the first rule that makes the pair. Each rule joins on the very condition
    Splink is given (:func:`~datafirst_spark.linkage.model.prediction_blocking_rule`: its keys
    and the within-dataset condition), so Spark reads only the columns that names.

    ``blocks_dir``: where :func:`check_rules` wrote the rules' blocks of two or more. Each
    rule's records are then kept only in a block the bound says makes a pair before they
    are shuffled: at `full`, 58% of the 121M keyed records of the seven rules are alone in
    their block.

    Hand it to Splink with ``linker.table_management.register_blocked_pairs_for_predict``.
    """
    rules = spec.model.blocking_rules_to_generate_predictions
    if not rules:
        raise ValueError(f"{spec.linkage}: blocked_pairs: no prediction blocking rules")
    made = []
    for k, rule in enumerate(rules):
        pairing = None
        if blocks_dir is not None:
            blocks = records.sparkSession.read.parquet(_rule_blocks_path(blocks_dir, k))
            pairing = blocks.filter(F.col("pairs") > 0).select("_block")
            count = pairing.count()
            log.info("blocking prediction rule [%s]: %s blocks make a pair", rule.description, f"{count:,}")
            if count > MAX_BROADCAST_BLOCKS:
                log.info("blocking prediction rule [%s]: over %s blocks, too many to broadcast: every block is "
                         "sorted", rule.description, f"{MAX_BROADCAST_BLOCKS:,}")
                pairing = None
        made.append(_rule_pairs(records, rule, spec, pairing).withColumn("match_key", F.lit(k)))
    # an exploded rule meets a pair once per agreeing element, and later rules remake earlier
    # rules' pairs: one group-by keeps each pair once, under its first rule
    return (reduce(DataFrame.unionAll, made).groupBy("join_key_l", "join_key_r")
            .agg(F.min("match_key").cast("string").alias("match_key"))
            .select("match_key", "join_key_l", "join_key_r"))


def _rule_pairs(records: DataFrame, rule: BlockingRuleSpec, spec: LinkageSpec,
                pairing: DataFrame | None = None) -> DataFrame:
    # Splink leaves the dataset out of its record ids when deduplicating one dataset
    splink_id = F.col("source_record_id") if spec.link_type == "dedupe_only" else \
        node_id("source_dataset", "source_record_id")
    df = records.withColumns({RECORD_SOURCE: F.col("source_dataset"), "_id": splink_id})
    for column in rule.explode:
        df = df.withColumn(column, F.explode(column))
    sql = prediction_blocking_rule(rule, spec).get_blocking_rule("spark").blocking_rule_sql
    condition = F.expr(sql) & (F.col("l._id") < F.col("r._id"))
    if spec.link_type == "link_only":
        condition &= F.col("l.source_dataset") != F.col("r.source_dataset")
    # Not a self-join: that shuffles and sorts the same records twice, once per side. Each
    # record meets the records after it (by id) in its block, once: one shuffle, one sort.
    # A pair of records with equal keys is a pair of the join; the condition, evaluated on
    # the pair as the join would, decides which are kept.
    names = [f"_key{i}" for i in range(len(rule.block_on))]
    record = F.struct(*sorted(_sides_columns(sql) | {"_id", "source_dataset"})).alias("l")
    blocks = df.select(*[F.expr(e).alias(n) for e, n in zip(rule.block_on, names, strict=True)], "_id", record) \
        .dropna(subset=names)
    if pairing is not None:
        # Broadcast: a few million longs at `full`, so that the records left out are dropped
        # as they are read, not shuffled. A block whose hash collides with a pairing block's
        # is kept and makes no pair the condition does not allow.
        blocks = blocks.join(F.broadcast(pairing), block_hash(names) == pairing["_block"], "left_semi")
    after = Window.partitionBy(*names).orderBy("_id").rowsBetween(1, Window.unboundedFollowing)
    return (blocks.withColumn("_after", F.collect_list("l").over(after))
            .select("l", F.explode("_after").alias("r"))
            .filter(condition)
            .select(F.col("l._id").alias("join_key_l"), F.col("r._id").alias("join_key_r")))


def _sides_columns(sql: str) -> set[str]:
    """The columns a Splink blocking condition reads from its two records (``l.x``, ``r.x``)."""
    import sqlglot
    from sqlglot import exp

    return {c.name for c in sqlglot.parse_one(sql, read="spark").find_all(exp.Column) if c.table in ("l", "r")}


def blocked_pair_counts(blocked_pairs: DataFrame, spec: LinkageSpec) -> list[dict[str, object]]:
    """Marginal and cumulative comparisons per prediction rule, counted on blocked id pairs in
    Splink's shape (:func:`blocked_pairs`, or Splink's own
    ``linker.inference.compute_blocked_pairs_for_predict()``, whose ``match_key``
    is the index of the first rule that makes the pair)."""
    counted = {str(row["match_key"]): row["count"] for row in blocked_pairs.groupBy("match_key").count().collect()}
    counts, cumulative = [], 0
    for key, rule in enumerate(spec.model.blocking_rules_to_generate_predictions):
        marginal = int(counted.get(str(key), 0))
        cumulative += marginal
        counts.append({"rule": rule.description, "marginal_comparisons": marginal,
                       "cumulative_comparisons": cumulative, "estimated": False, "sample_proportion": 1.0})
        log.info("blocking prediction rule [%s]: %s new comparisons", rule.description, f"{marginal:,}")
    return counts
