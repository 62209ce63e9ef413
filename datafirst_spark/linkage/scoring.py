"""Predict scored in the blocks: each pair is made with both its records and scored where it
is made, with no join.

Splink's predict, handed the blocked id pairs, joins them with the records twice (once per
side) before it compares them: at `full` both joins shuffle and hash the 16.65M records and
the 23M pairs, and carry the first join's output through a second shuffle. Here the records,
with every column Splink's comparisons read and their term frequencies, are read once; each
record goes to each block it is in under every rule (an exploded rule: one per combination
of its arrays' distinct elements), and only to blocks the bounds found a pair in (at `full`,
58% of the seven rules' 121M keyed records are alone in their block). One shuffle and sort
by (block, rule); in a block each record meets the records after it (by Splink's record id),
so a pair leaves its block with both records and is scored there by Splink's own comparison
and prediction SQL. No self-join (which shuffles and sorts the same records once per side),
and no rule's pass over the records of its own (at `full` a pass, reading the records with
their term frequencies, took about 90 task seconds).

No pair is scored twice, and each under its first rule, as Splink's ``match_key`` says:

- a rule drops the pairs any earlier rule makes, by that rule's condition evaluated on the
  pair (an exploded rule's keys agree when the two records' arrays overlap), as Splink's own
  blocking does;
- an exploded rule meets a pair once per combination of agreeing elements, and keeps it at
  one only: for each array, the first of the elements that agree in the array of the pair's
  record with the lower Splink id.

The blocked pairs are counted per rule as they are scored (an observation on the pairs, so
no pass of their own). Same pairs, match keys and scores as Splink's predict
(``tests/unit/test_linkage_parts.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from splink import Linker, block_on

from .blocking import block_hash, rule_blocks_path
from .clustering import node_id
from .model import within_dataset_condition
from .spec import BlockingRuleSpec, LinkageSpec

log = logging.getLogger(__name__)

# Beyond this many blocks that make a pair, over all the rules (a long each), the records of
# every block are shuffled rather than those of these blocks only: every task would hold the set.
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


def keys_agree(rule: BlockingRuleSpec, computed: dict[str, str] | None = None) -> str:
    """Spark SQL, over a pair's two records ``l`` and ``r``, true when ``rule``'s keys agree
    (an exploded key when the two arrays share an element). With the spec's within-dataset
    condition, which every rule shares, it is Splink's condition for the rule. ``computed``:
    key expressions already computed into columns of the records (:func:`computed_keys`),
    compared by those columns."""
    computed = computed or {}
    parts = [f"arrays_overlap(l.`{key}`, r.`{key}`)" for key in rule.block_on if key in rule.explode]
    equal = [computed.get(key, key) for key in rule.block_on if key not in rule.explode]
    if equal:
        parts.append(block_on(*equal).get_blocking_rule("spark").blocking_rule_sql)
    return " AND ".join(f"({p})" for p in parts)


def computed_keys(rules: list[BlockingRuleSpec], columns: list[str]) -> dict[str, str]:
    """The rules' keys that are expressions, not columns of the records (such as the swapped
    names rule's ``array_join(array_sort(...))``), each with the column it is computed into.

    Computed once per record, before the record goes to its blocks: ``array_sort`` with its
    comparator is a function Spark cannot compile, and in a rule's block or condition it took
    every entry and every pair out of compiled code (the entries, copied out row by row
    before the block was known, were the most of predict's map side at `full`)."""
    expressions = [key for rule in rules for key in rule.block_on if key not in rule.explode and key not in columns]
    return {key: f"_key_{i}" for i, key in enumerate(dict.fromkeys(expressions))}


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
    within = within_dataset_condition(spec.model.within_dataset_block_on, spec.model.within_dataset_compare_unknown)
    # a pair's records carry what Splink's comparisons read and what the rules' conditions test
    # (as Splink writes them: the columns the computed keys below are made from)
    conditions = [*settings._columns_to_select_for_blocking, *(keys_agree(rule) for rule in rules),
                  *([within] if within else [])]
    read = set().union(*(_sides_columns(sql) for sql in conditions))
    records = records.select(*[c for c in records.columns if c in read], splink_id.alias(_ID))
    computed = computed_keys(rules, records.columns)
    records = records.select("*", *[F.expr(key).alias(column) for key, column in computed.items()])
    pairs = _pairs_with_records(records, rules, spec, within, _pairing_blocks(spark, rules, blocks_dir), computed)
    # Splink's blocked pairs with their records' columns (``l.x AS x_l``): what its predict
    # makes by joining the id pairs with the records twice
    with_columns = pairs.selectExpr(*settings._columns_to_select_for_blocking, "match_key")
    view = f"__datafirst_pairs_with_records_{spec.linkage}"
    with_columns.createOrReplaceTempView(view)
    columns = ",\n".join(settings._columns_to_select_for_comparison_vector_values)
    vectors = CTEPipeline()
    vectors.enqueue_sql(f"select {columns} from {view}", "__splink__df_comparison_vectors")
    # Counted on the comparison vectors, not on the pairs: Spark copies every row an
    # observation sees out of compiled code, and a pair's row holds both records whole
    counted = Observation(f"pairs_per_rule_{spec.linkage}")
    vectors = _as_dataframe(linker, vectors).observe(
        counted, *[F.count_if(F.col("match_key") == str(k)).alias(str(k)) for k in range(len(rules))])
    vectors_view = f"__datafirst_comparison_vectors_{spec.linkage}"
    vectors.createOrReplaceTempView(vectors_view)
    pipeline = CTEPipeline()
    pipeline.enqueue_sql(f"select * from {vectors_view}", "__splink__df_comparison_vectors")
    pipeline.enqueue_list_of_sqls(predict_from_comparison_vectors_sqls_using_settings(settings, threshold))
    return ScoredInBlocks(_as_dataframe(linker, pipeline), counted)


def _sides_columns(sql: str) -> set[str]:
    """The columns Spark SQL over a pair's two records reads from them (``l.x``, ``r.x``)."""
    import sqlglot
    from sqlglot import exp

    return {c.name for c in sqlglot.parse_one(sql, read="spark").find_all(exp.Column) if c.table in ("l", "r")}


def _pairing_blocks(spark: SparkSession, rules: list[BlockingRuleSpec], blocks_dir: str | None) -> DataFrame | None:
    """Every rule's blocks that make a pair, each as :func:`_rule_block` of its rule and its
    :func:`~.blocking.block_hash`; None (every record is shuffled) without ``blocks_dir`` or
    with too many to broadcast."""
    if blocks_dir is None:
        return None
    pairing = [spark.read.parquet(rule_blocks_path(blocks_dir, k)).filter(F.col("pairs") > 0)
               .select(_rule_block(k, F.col("_block")).alias("_rule_block")) for k in range(len(rules))]
    pairing = reduce(DataFrame.unionAll, pairing)
    count = pairing.count()
    log.info("prediction rules: %s blocks make a pair", f"{count:,}")
    if count > MAX_BROADCAST_BLOCKS:
        log.info("prediction rules: over %s blocks, too many to broadcast: every block is sorted",
                 f"{MAX_BROADCAST_BLOCKS:,}")
        return None
    return pairing


def _rule_block(rule: int, block: Column) -> Column:
    """One long for a rule's block (its index and the hash of its keys): what a record's
    entries are kept by."""
    return F.xxhash64(F.lit(rule), block)


def _element(column: str) -> str:
    return f"_element_{column}"


def _position(column: str) -> str:
    return f"_position_{column}"


def _exploded(rules: list[BlockingRuleSpec]) -> list[str]:
    return sorted({c for rule in rules for c in rule.explode})


def _blocks_of_records(records: DataFrame, rules: list[BlockingRuleSpec], computed: dict[str, str]) -> DataFrame:
    """Each record once per block it is in under each rule: ``_rule``, ``_rule_block``
    (:func:`_rule_block`) and, for an exploded rule's entry, the elements it blocks on
    (``_element_<column>``) and their positions in the record's arrays
    (``_position_<column>``, from 0). An exploded rule gives one entry per combination of its
    arrays' distinct elements, each at its first position (so that two records meet once per
    combination of agreeing elements); an entry with a null key is left out. ``computed``:
    :func:`computed_keys`, already columns of ``records``.

    Only ``posexplode`` and plain expressions, which Spark compiles: higher-order functions
    (``transform`` over the arrays) run interpreted, and so do ``array_distinct`` and
    ``array_intersect`` over strings (each element read through a type lookup; at `full`
    the two were 10% of predict's CPU)."""
    exploded = _exploded(rules)
    types = {f.name: f.dataType for f in records.schema.fields}
    entries = []
    for k, rule in enumerate(rules):
        # a column the rule does not explode: one null element, so that explode keeps the entry once
        arrays = [(F.col(c) if c in rule.explode else F.array(F.lit(None).cast(types[c].elementType))).alias(c)
                  for c in exploded]
        entries.append(F.struct(F.lit(k).alias("rule"), *arrays))
    df = records.select("*", F.explode(F.array(*entries)).alias("_entry"))
    at_first_position = F.lit(True)
    for c in exploded:
        df = df.select("*", F.posexplode(F.col(f"_entry.{c}")).alias(_position(c), _element(c)))
        # an element repeated in its array: its first position only (a null one is in no block)
        first_at = F.array_position(F.col(f"_entry.{c}"), F.col(_element(c)))
        at_first_position &= F.coalesce(first_at == F.col(_position(c)) + 1, F.lit(True))
    df = df.filter(at_first_position).withColumn("_rule", F.col("_entry.rule")).drop("_entry")
    rule_block = None
    for k, rule in enumerate(rules):
        values = [F.col(_element(e)) if e in rule.explode else F.col(computed.get(e, e)) for e in rule.block_on]
        # null where a key is null (xxhash64 would skip it): such an entry is in no block
        block = F.when(reduce(lambda a, b: a & b, [v.isNotNull() for v in values]), _rule_block(k, block_hash(values)))
        this = F.col("_rule") == k
        rule_block = F.when(this, block) if rule_block is None else rule_block.when(this, block)
    return df.withColumn("_rule_block", rule_block).filter(F.col("_rule_block").isNotNull())


def _pairs_with_records(records: DataFrame, rules: list[BlockingRuleSpec], spec: LinkageSpec, within: str | None,
                        pairing: DataFrame | None, computed: dict[str, str]) -> DataFrame:
    """(l, r, match_key): every rule's pairs with their two records, each pair once.
    ``computed``: :func:`computed_keys`, already columns of ``records``, which the rules'
    conditions compare."""
    agree = [keys_agree(rule, computed) for rule in rules]
    # One pass over the records for every rule: at `full`, reading the records with their
    # term frequencies once per rule took 7 x 90 task seconds. The record's struct is made
    # once, before its entries, each of which copies it whole: made per entry, its strings
    # were decoded from Parquet's dictionaries and written field by field once per entry.
    with_record = records.select("*", F.struct(*records.columns).alias("l"))
    blocks = _blocks_of_records(with_record, rules, computed)
    if pairing is not None:
        # broadcast: about 10M longs at `full`, so that the records of blocks that make no pair
        # are dropped as they are read, not shuffled
        blocks = blocks.join(F.broadcast(pairing), "_rule_block", "left_semi")
    entry_columns = [name for c in _exploded(rules) for name in (_element(c), _position(c))]
    blocks = blocks.select("_rule", "_rule_block", *entry_columns, "l")
    # A block is known by its rule and a hash of its keys: two blocks of a rule whose hashes
    # collide meet, and the rule's own condition (below) keeps only the pairs it makes. The
    # long first: Spark's sort compares rows by a prefix of the first sort key, then in full,
    # and with the rule first (seven values) nearly every comparison was in full (12% of
    # predict's CPU at `full`).
    after = Window.partitionBy("_rule_block", "_rule").orderBy(F.col(f"l.{_ID}")) \
        .rowsBetween(1, Window.unboundedFollowing)
    met = blocks.withColumn("_after", F.collect_list("l").over(after)).select(
        "_rule", *entry_columns, "l", F.explode("_after").alias("r"))
    keep: Column = F.col(f"l.{_ID}") < F.col(f"r.{_ID}")
    if spec.link_type == "link_only":
        keep &= F.col("l.source_dataset") != F.col("r.source_dataset")
    if within is not None:
        # every rule's condition holds it, so an earlier rule makes the pair when its keys agree
        keep &= F.coalesce(F.expr(within), F.lit(False))
    first: Column | None = None  # the rule makes the pair, here first: no earlier rule, at its first elements
    for k, rule in enumerate(rules):
        here = F.coalesce(F.expr(agree[k]), F.lit(False))
        for c in rule.explode:
            # the pair's first agreeing element in l's array: in r's, and none before it in l's is
            element, before = F.col(_element(c)), F.slice(F.col(f"l.{c}"), 1, F.col(_position(c)))
            here &= F.array_contains(F.col(f"r.{c}"), element) & \
                ~F.coalesce(F.arrays_overlap(before, F.col(f"r.{c}")), F.lit(False))
        for condition in agree[:k]:
            here &= ~F.coalesce(F.expr(condition), F.lit(False))
        first = F.when(F.col("_rule") == k, here) if first is None else first.when(F.col("_rule") == k, here)
    return met.filter(keep & first).select("l", "r", F.col("_rule").cast("string").alias("match_key"))
