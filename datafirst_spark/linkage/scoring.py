"""Predict scored in the blocks: each pair is made with both its records and scored where it
is made, with no join.

Splink's predict, handed the blocked id pairs, joins them with the records twice (once per
side) before it compares them: at `full` both joins shuffle and hash the 16.65M records and
the 23M pairs, and carry the first join's output through a second shuffle. Here each
prediction rule's blocks (as :mod:`.blocking` makes them: its records sorted by block once,
each meeting the records after it) carry every column Splink compares, with the term
frequencies, so a pair leaves its block with both records and is scored there by Splink's
own comparison and prediction SQL.

A rule's pairs are made without a join (a self-join shuffles and sorts the same records
twice, once per side): its records are shuffled and sorted by block once, and each meets
the records after it (by Splink's record id) in its block. Most records are alone in their
block for a rule; the bounds write each rule's blocks of two or more, and only the records
of those are shuffled (at `full`, 58% of the seven rules' 121M keyed records are left out).
Splink's own blocking would carry every earlier rule's columns through each rule's join.

No pair is scored twice, and each under its first rule, as Splink's ``match_key`` says:

- a rule drops the pairs any earlier rule makes, by that rule's condition evaluated on the
  pair (an exploded rule's keys agree when the two records' arrays overlap), as Splink's own
  blocking does;
- an exploded rule meets a pair once per combination of agreeing elements, and keeps it at
  the least one only.

The blocked pairs are counted per rule as they are scored (an observation on the pairs, so
no pass of their own). Same pairs, match keys and scores as Splink's predict
(``tests/unit/test_linkage_parts.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F
from splink import Linker, block_on

from .blocking import block_hash, rule_blocks_path
from .clustering import node_id
from .model import within_dataset_condition
from .spec import BlockingRuleSpec, LinkageSpec

log = logging.getLogger(__name__)

# Beyond this many blocks that make a pair (8 bytes each), a rule's pairs are made from all
# its records rather than from those in these blocks only: every task would hold the set.
MAX_BROADCAST_BLOCKS = 20_000_000
_ID = "_pair_id"  # a record's Splink id, by which a pair's two records are ordered


@dataclass
class ScoredInBlocks:
    scored: DataFrame  # Splink's predict output at the threshold
    counted: Observation  # pairs per match key, known once ``scored`` has been written

    def pairs_per_rule(self) -> dict[str, int]:
        return {key: int(count) for key, count in self.counted.get.items()}


def records_with_term_frequencies(linker: Linker) -> DataFrame:
    """Splink's ``__splink__df_concat_with_tf`` as a DataFrame (not materialised): the
    concatenated records with a ``tf_`` column per term-frequency adjustment."""
    from splink.internals.pipeline import CTEPipeline
    from splink.internals.vertically_concatenate import enqueue_df_concat_with_tf

    return _as_dataframe(linker, enqueue_df_concat_with_tf(linker, CTEPipeline()))


def _as_dataframe(linker: Linker, pipeline) -> DataFrame:  # noqa: ANN001 - Splink's CTEPipeline
    """A Splink SQL pipeline as one lazy Spark query, in Spark's SQL as Splink's Spark backend
    translates it (``customspark``), but not written out as Splink would."""
    db_api = linker._db_api
    return db_api.spark.sql(db_api._setup_for_execute_sql(pipeline.generate_cte_pipeline_sql(), ""))


def rule_holds(rule: BlockingRuleSpec, spec: LinkageSpec) -> str:
    """Spark SQL, over a pair's two records ``l`` and ``r``, true when ``rule`` makes the pair:
    its keys agree (an exploded key when the two arrays share an element) and the spec's
    within-dataset condition holds."""
    parts = [f"arrays_overlap(l.`{key}`, r.`{key}`)" for key in rule.block_on if key in rule.explode]
    equal = [key for key in rule.block_on if key not in rule.explode]
    if equal:
        parts.append(block_on(*equal).get_blocking_rule("spark").blocking_rule_sql)
    within = within_dataset_condition(spec.model.within_dataset_block_on, spec.model.within_dataset_compare_unknown)
    if within is not None:
        parts.append(within)
    return " AND ".join(f"({p})" for p in parts)


def scored_in_blocks(linker: Linker, spec: LinkageSpec, threshold: float | None,
                     blocks_dir: str | None = None) -> ScoredInBlocks:
    """Splink's predict for ``linker`` (a linker of the spec's datasets with the saved model's
    parameters) over the pairs its prediction rules make, at or above ``threshold``.

    ``blocks_dir``: where :func:`~.blocking.check_rules` wrote the rules' blocks of two or
    more; each rule's records outside them are dropped before they are shuffled."""
    from splink.internals.pipeline import CTEPipeline
    from splink.internals.predict import predict_from_comparison_vectors_sqls_using_settings

    rules = spec.model.blocking_rules_to_generate_predictions
    if not rules:
        raise ValueError(f"{spec.linkage}: scored_in_blocks: no prediction blocking rules")
    spark = linker._db_api.spark
    settings = linker._settings_obj
    records = records_with_term_frequencies(linker)
    splink_id = F.col("source_record_id") if spec.link_type == "dedupe_only" else \
        node_id("source_dataset", "source_record_id")
    holds = [rule_holds(rule, spec) for rule in rules]
    # a pair's records carry what Splink's comparisons read and what the rules' conditions test
    read = set().union(*(_sides_columns(sql) for sql in [*settings._columns_to_select_for_blocking, *holds]))
    records = records.select(*[c for c in records.columns if c in read], splink_id.alias(_ID))
    made = []
    for k, rule in enumerate(rules):
        pairing = _pairing_blocks(spark, rule, blocks_dir, k)
        made.append(_rule_pairs_with_records(records, rule, spec, holds[:k], pairing).withColumn("match_key", F.lit(str(k))))
    pairs = reduce(DataFrame.unionAll, made)
    counted = Observation(f"pairs_per_rule_{spec.linkage}")
    pairs = pairs.observe(counted, *[F.count_if(F.col("match_key") == str(k)).alias(str(k)) for k in range(len(rules))])
    # Splink's blocked pairs with their records' columns (``l.x AS x_l``): what its predict
    # makes by joining the id pairs with the records twice
    with_columns = pairs.selectExpr(*settings._columns_to_select_for_blocking, "match_key")
    view = f"__datafirst_pairs_with_records_{spec.linkage}"
    with_columns.createOrReplaceTempView(view)
    columns = ",\n".join(settings._columns_to_select_for_comparison_vector_values)
    pipeline = CTEPipeline()
    pipeline.enqueue_sql(f"select {columns} from {view}", "__splink__df_comparison_vectors")
    pipeline.enqueue_list_of_sqls(predict_from_comparison_vectors_sqls_using_settings(settings, threshold))
    return ScoredInBlocks(_as_dataframe(linker, pipeline), counted)


def _sides_columns(sql: str) -> set[str]:
    """The columns Spark SQL over a pair's two records reads from them (``l.x``, ``r.x``)."""
    import sqlglot
    from sqlglot import exp

    return {c.name for c in sqlglot.parse_one(sql, read="spark").find_all(exp.Column) if c.table in ("l", "r")}


def _pairing_blocks(spark, rule: BlockingRuleSpec, blocks_dir: str | None, index: int) -> DataFrame | None:
    if blocks_dir is None:
        return None
    pairing = spark.read.parquet(rule_blocks_path(blocks_dir, index)).filter(F.col("pairs") > 0).select("_block")
    count = pairing.count()
    log.info("blocking prediction rule [%s]: %s blocks make a pair", rule.description, f"{count:,}")
    if count > MAX_BROADCAST_BLOCKS:
        log.info("blocking prediction rule [%s]: over %s blocks, too many to broadcast: every block is sorted",
                 rule.description, f"{MAX_BROADCAST_BLOCKS:,}")
        return None
    return pairing


def _rule_pairs_with_records(records: DataFrame, rule: BlockingRuleSpec, spec: LinkageSpec, earlier: list[str],
                             pairing: DataFrame | None) -> DataFrame:
    names = [f"_key{i}" for i in range(len(rule.block_on))]
    df = records
    for name, expression in zip(names, rule.block_on, strict=True):
        # an exploded key: each distinct element once, so that a pair meets once per
        # combination of agreeing elements
        key = F.explode(F.array_distinct(F.col(expression))) if expression in rule.explode else F.expr(expression)
        df = df.withColumn(name, key)
    blocks = df.select(*names, F.struct(*records.columns).alias("l")).dropna(subset=names)
    if pairing is not None:
        blocks = blocks.join(F.broadcast(pairing), block_hash(names) == pairing["_block"], "left_semi")
    after = Window.partitionBy(*names).orderBy(F.col(f"l.{_ID}")).rowsBetween(1, Window.unboundedFollowing)
    met = blocks.withColumn("_after", F.collect_list("l").over(after)).select(*names, "l", F.explode("_after").alias("r"))
    # the keys agree: the two records met in the block
    keep: Column = F.col(f"l.{_ID}") < F.col(f"r.{_ID}")
    if spec.link_type == "link_only":
        keep &= F.col("l.source_dataset") != F.col("r.source_dataset")
    within = within_dataset_condition(spec.model.within_dataset_block_on, spec.model.within_dataset_compare_unknown)
    if within is not None:
        keep &= F.coalesce(F.expr(within), F.lit(False))
    for name, expression in zip(names, rule.block_on, strict=True):
        if expression in rule.explode:
            least = F.array_min(F.array_intersect(F.col(f"l.{expression}"), F.col(f"r.{expression}")))
            keep &= F.col(name) == least
    for condition in earlier:
        keep &= ~F.coalesce(F.expr(condition), F.lit(False))
    return met.filter(keep).select("l", "r")

