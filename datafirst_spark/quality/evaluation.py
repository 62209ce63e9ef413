"""Linkage quality against ground truth: precision, recall and F1 per method and threshold,
overall and per group.

Three views, all from membership (:data:`..linkage.clustering.MEMBERSHIP_COLUMNS`) and the
truth table (source_dataset, source_record_id, true_person_id):

- ``link``: the records of ``link_from`` (PNC). A record is *linkable* when its true person
  has a record in another dataset; it is *found* when its cluster holds one of them; it is
  *linked* when its cluster holds any other-dataset record, and *correctly linked* when all
  of them are its true person's. precision = correctly linked / linked; recall = found /
  linkable. Broken down by the true person's ethnicity group, sex and birth cohort.
- ``pairs``: pairwise, for pairs across two datasets and within each dataset (dedupe):
  predicted pairs share a cluster, true pairs share a true person.
- ``clusters``: a predicted cluster is exact when it holds exactly one true person's records;
  precision = exact / predicted clusters, recall = exact / true people.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from ..linkage.clustering import in_clusters_of_several, misnamed_clusters

QUALITY_COLUMNS = [
    "method", "threshold", "view", "scope", "group_by", "group_value",
    "true_positives", "predicted", "actual", "precision", "recall", "f1",
]  # fmt: skip
GROUPS = ("ethnicity_group", "sex", "birth_cohort")


def _ratio(numerator: str, denominator: str) -> F.Column:
    return F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator))


def _with_scores(df: DataFrame) -> DataFrame:
    precision, recall = _ratio("true_positives", "predicted"), _ratio("found", "actual")
    scored = df.withColumn("precision", precision).withColumn("recall", recall)
    f1 = 2 * F.col("precision") * F.col("recall") / (F.col("precision") + F.col("recall"))
    return scored.withColumn("f1", F.when((F.col("precision") + F.col("recall")) > 0, f1))


def birth_cohort(dob: F.Column) -> F.Column:
    """The English school year of birth (1 September to 31 August), as 'YYYY/YY'."""
    start = F.when(F.month(dob) >= 9, F.year(dob)).otherwise(F.year(dob) - 1)
    return F.concat(start.cast("string"), F.lit("/"), F.lpad(((start + 1) % 100).cast("string"), 2, "0"))


def group_views(groups: tuple[str, ...]) -> F.Column:
    """For :func:`F.inline`: one (group_by, group_value) row per view of a record, overall
    ('all') and per group, so that every view is counted in one aggregation."""
    return F.array(F.struct(F.lit("all").alias("group_by"), F.lit("all").alias("group_value")),
                   *[F.struct(F.lit(g).alias("group_by"),
                              F.coalesce(F.col(g).cast("string"), F.lit("unknown")).alias("group_value"))
                     for g in groups])


def link_quality(linked: DataFrame, alone: DataFrame, link_from: str) -> DataFrame:
    """Record-level link quality of ``link_from`` records, overall and per group.

    ``linked``: the labelled rows (:func:`labelled_clusters`) of clusters of two or more
    records; ``alone``: the labelled ``link_from`` records that are clusters of their own,
    which are linked to nothing and only count towards the linkable."""
    keys = ["method", "threshold", "cluster_id"]
    mine = linked.filter(F.col("source_dataset") == link_from)
    other = linked.filter(F.col("source_dataset") != link_from).select(
        *keys, F.col("true_person_id").alias("other_person"))
    in_clusters = (
        mine.join(other, keys, "left")
        .groupBy("method", "threshold", "source_record_id", "true_person_id", "linkable", *GROUPS)
        .agg(
            F.count("other_person").alias("n_linked"),
            F.count_if(F.col("other_person") == F.col("true_person_id")).alias("n_true"),
        )
        .select(
            "method", "threshold", "linkable", *GROUPS,
            (F.col("n_linked") > 0).alias("linked"),
            ((F.col("n_linked") > 0) & (F.col("n_true") == F.col("n_linked"))).alias("correct"),
            (F.col("n_true") > 0).alias("found"),
        )
    )
    unlinked = alone.select("method", "threshold", "linkable", *GROUPS, *[F.lit(False).alias(c) for c in
                                                                          ("linked", "correct", "found")])
    per_record = in_clusters.unionByName(unlinked)
    figures = [F.count_if("correct").alias("true_positives"), F.count_if("linked").alias("predicted"),
               F.count_if("linkable").alias("actual"), F.count_if(F.col("found") & F.col("linkable")).alias("found")]
    # every view (overall, then each group) in one pass over per_record
    result = (per_record.select("method", "threshold", "correct", "linked", "linkable", "found", F.inline(group_views(GROUPS)))
              .groupBy("method", "threshold", "group_by", "group_value").agg(*figures))
    return _with_scores(result.withColumn("view", F.lit("link")).withColumn("scope", F.lit(f"{link_from}_records")))


def _pairs(n_a: F.Column, n_b: F.Column | None = None) -> F.Column:
    """Pairs of records in a group holding ``n_a`` records of one dataset and ``n_b`` of
    another (within one dataset when ``n_b`` is None)."""
    return (n_a * (n_a - 1) / 2).cast("long") if n_b is None else (n_a * n_b).cast("long")


def _scope_pairs(scopes: list[tuple[str, str]]) -> dict[str, F.Column]:
    """Per scope, the pairs in a group from its count of records of each dataset (``_n_<dataset>``)."""
    return {_scope(a, b): _pairs(F.col(f"_n_{a}"), None if a == b else F.col(f"_n_{b}")) for a, b in scopes}


def _pair_counts(grouped: DataFrame, keys: list[str], datasets: list[str], scopes: list[tuple[str, str]]) -> DataFrame:
    """Per ``keys``, the pairs of every scope within each group, from one aggregation:
    ``grouped`` has (group columns..., source_dataset, n) and is pivoted to one count per dataset."""
    counts = {d: F.sum(F.when(F.col("source_dataset") == d, F.col("n")).otherwise(0)) for d in datasets}
    return grouped.groupBy(*keys).agg(*[c.alias(f"_n_{d}") for d, c in counts.items()]).select(
        *keys[:2], *[pairs.alias(name) for name, pairs in _scope_pairs(scopes).items()])


def _scope(a: str, b: str) -> str:
    return a if a == b else f"{a}-{b}"


def pair_quality(linked: DataFrame, people_counts: DataFrame, datasets: list[str], methods: DataFrame) -> DataFrame:
    """Pairwise precision/recall within each dataset and across each pair of datasets.

    ``linked``: the labelled rows of clusters of two or more records (a cluster of one makes
    no pair); ``people_counts``: each true person's records per dataset
    (:func:`true_people`); ``methods``: every (method, threshold) to report, linked or not."""
    method = ["method", "threshold"]
    scopes = [(a, b) for i, a in enumerate(datasets) for b in datasets[i:]]
    names = [_scope(a, b) for a, b in scopes]
    by_cluster = linked.groupBy(*method, "cluster_id", "source_dataset").agg(F.count("*").alias("n"))
    by_both = linked.groupBy(*method, "cluster_id", "true_person_id", "source_dataset").agg(F.count("*").alias("n"))
    predicted = methods.join(_pair_counts(by_cluster, [*method, "cluster_id"], datasets, scopes)
                             .groupBy(*method).agg(*[F.sum(n).alias(n) for n in names]), method, "left")
    true_pos = _pair_counts(by_both, [*method, "cluster_id", "true_person_id"], datasets, scopes) \
        .groupBy(*method).agg(*[F.sum(n).alias(n) for n in names])
    actual_row = people_counts.agg(*[F.sum(pairs).alias(n) for n, pairs in _scope_pairs(scopes).items()]).first()
    # one row per (method, threshold, scope)
    scoped = lambda df, value: df.select(*method, F.inline(F.array(*[  # noqa: E731
        F.struct(F.lit(n).alias("scope"), F.col(n).alias(value)) for n in names])))
    actual = [F.when(F.col("scope") == n, F.lit(actual_row[n] or 0)) for n in names]
    result = scoped(predicted, "predicted").join(scoped(true_pos, "true_positives"), [*method, "scope"], "full")
    return _with_scores(result.select(
        *method, F.lit("pairs").alias("view"), "scope",
        F.lit("all").alias("group_by"), F.lit("all").alias("group_value"),
        F.coalesce("true_positives", F.lit(0)).alias("true_positives"),
        F.coalesce("predicted", F.lit(0)).alias("predicted"),
        F.coalesce(*actual).cast("long").alias("actual"),
        F.coalesce("true_positives", F.lit(0)).alias("found"),
    ))


def cluster_quality(clusters: DataFrame, singles: DataFrame, true_people: int) -> DataFrame:
    """Exact clusters: a predicted cluster holding all, and only, one true person's records.

    ``clusters``: the labelled clusters of two or more records (:func:`labelled_clusters`);
    ``singles``: per (method, threshold), its clusters of one record (``clusters``) and how
    many of them are exact (``exact``: the record's person has no other record)."""
    exact = F.col("one_person") & (F.col("size") == F.col("person_size"))
    several = clusters.groupBy("method", "threshold").agg(F.count_if(exact).alias("exact"),
                                                          F.count("*").alias("clusters"))
    counted = singles.select("method", "threshold", "exact", "clusters").unionByName(several) \
        .groupBy("method", "threshold").agg(F.sum("exact").alias("exact"), F.sum("clusters").alias("clusters"))
    return _with_scores(counted.select(
        "method", "threshold", F.col("exact").alias("true_positives"), F.col("clusters").alias("predicted"),
        F.lit(true_people).cast("long").alias("actual"), F.col("exact").alias("found"),
        F.lit("clusters").alias("view"), F.lit("all").alias("scope"),
        F.lit("all").alias("group_by"), F.lit("all").alias("group_value")))


def true_people(truth: DataFrame, datasets: list[str], link_from: str | None) -> DataFrame:
    """Per true person: records in each dataset (``_n_<dataset>``), records in all
    (``person_size``) and whether any is outside ``link_from`` (``linkable``)."""
    counts = [F.count_if(F.col("source_dataset") == d).alias(f"_n_{d}") for d in datasets]
    outside = [F.col(f"_n_{d}") for d in datasets if d != link_from]
    return truth.groupBy("true_person_id").agg(*counts).select(
        "*", reduce(lambda a, b: a + b, [F.col(f"_n_{d}") for d in datasets]).alias("person_size"),
        (reduce(lambda a, b: a + b, outside) > 0 if link_from and outside else F.lit(False)).alias("linkable"))


def record_facts(truth: DataFrame, people_counts: DataFrame, people: DataFrame, link_from: str | None) -> DataFrame:
    """Per record of truth: its true person, that person's number of records
    (``person_size``), whether the person is linkable from ``link_from`` and, for
    ``link_from`` records only (the only records whose groups are counted), the person's groups."""
    is_from = F.col("source_dataset") == F.lit(link_from)
    return truth.join(people_counts.select("true_person_id", "person_size", "linkable"), "true_person_id") \
        .join(people.select("true_person_id", *GROUPS), "true_person_id", "left") \
        .select("source_dataset", "source_record_id", "true_person_id", "person_size", "linkable",
                *[F.when(is_from, F.col(g)).alias(g) for g in GROUPS])


def labelled_clusters(membership: DataFrame, facts: DataFrame) -> DataFrame:
    """One row per predicted cluster, (method, threshold, cluster_id): its size, whether its
    records are one true person's and that person's number of records, and its records
    (``records``: the columns of :func:`record_facts`). Membership rows
    without truth are left out, so a cluster may have fewer records here than it has."""
    labelled = membership.select("method", "threshold", "cluster_id", "source_dataset", "source_record_id") \
        .join(facts, ["source_dataset", "source_record_id"])
    record = F.struct("source_dataset", "source_record_id", "true_person_id", "person_size", "linkable", *GROUPS)
    return labelled.groupBy("method", "threshold", "cluster_id").agg(
        F.count("*").alias("size"),
        (F.min("true_person_id") == F.max("true_person_id")).alias("one_person"),
        F.first("person_size").alias("person_size"),  # the one person's, when there is one
        F.collect_list(record).alias("records"),
    )


def _check_membership(membership: DataFrame, records: int, datasets: list[str]) -> list[Row]:
    """(method, threshold) of membership, after checking what :func:`evaluate` relies on:
    each holds every one of the linkage's ``records`` records, and its clusters are named
    after their smallest record. A ValueError names the method, threshold and figures."""
    shape = membership.groupBy("method", "threshold").agg(
        F.count("*").alias("records"), misnamed_clusters(datasets).alias("misnamed")).collect()
    for row in shape:
        where = f"membership of {row['method']}@{row['threshold']}"
        if row["records"] != records:
            raise ValueError(f"{where} holds {row['records']} records; the linkage has {records}: "
                             "every record must be in one cluster at each threshold")
        if row["misnamed"]:
            raise ValueError(f"{where}: {row['misnamed']} records are in a cluster whose id is not the node id "
                             "of its smallest record (source_dataset-__-source_record_id)")
    return shape


def evaluate(membership: DataFrame, records: DataFrame, truth: DataFrame, people: DataFrame, datasets: list[str],
             link_from: str | None) -> DataFrame:
    """Every view, one row per (method, threshold, view, scope, group), :data:`QUALITY_COLUMNS`.

    ``membership`` holds each of ``records`` (source_dataset, source_record_id) once per
    (method, threshold), in clusters named after their smallest record, as
    :mod:`..linkage.clustering` and Splink's own clustering make them (checked: a ValueError
    says otherwise). ``people``: true_person_id with the columns of :data:`GROUPS`.

    At `full` nearly all of membership's 50M rows are clusters of one record (16.65M records
    make 15.16M clusters at 0.9), which make no pair and link nothing. Only the rows of
    larger clusters (:func:`.in_clusters_of_several`, found with no shuffle) are joined with
    truth and grouped by cluster. A cluster of one counts only towards the clusters predicted
    and exact and, for a ``link_from`` record, towards the linkable: those figures are the
    records' own, less those of the records in larger clusters. The result is a small local
    frame (a few hundred rows)."""
    from pyspark import StorageLevel

    spark = membership.sparkSession
    method = ["method", "threshold"]
    keys = ["source_dataset", "source_record_id"]
    truth = truth.filter(F.col("source_dataset").isin(datasets)).select(
        *keys, "true_person_id").persist(StorageLevel.MEMORY_AND_DISK)
    people_counts = true_people(truth, datasets, link_from).persist(StorageLevel.MEMORY_AND_DISK)
    facts = record_facts(truth, people_counts, people, link_from).persist(StorageLevel.MEMORY_AND_DISK)
    # every record, with its truth where it has one: the record count for the check and the
    # figures of the records with truth, in one join
    records = records.select(*keys).join(facts, keys, "left")
    every = records.agg(F.count("*").alias("records"), F.count("true_person_id").alias("known"),
                        F.count_if(F.col("person_size") == 1).alias("alone")).first()
    shape = _check_membership(membership, every["records"], datasets)
    methods = spark.createDataFrame([(r["method"], r["threshold"]) for r in shape],
                                    membership.select(*method).schema)
    clusters = labelled_clusters(in_clusters_of_several(membership), facts) \
        .filter(F.col("size") > 1).persist(StorageLevel.MEMORY_AND_DISK)
    linked = clusters.select(*method, "cluster_id", F.inline("records")).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        in_several = linked.groupBy(*method).agg(F.count("*").alias("records"),
                                                 F.count_if(F.col("person_size") == 1).alias("alone"))
        singles = methods.join(in_several, method, "left").select(
            *method, (F.lit(every["known"]) - F.coalesce("records", F.lit(0))).alias("clusters"),
            (F.lit(every["alone"]) - F.coalesce("alone", F.lit(0))).alias("exact"))
        by_cluster = cluster_quality(clusters, singles, people_counts.count()).select(*QUALITY_COLUMNS)
        parts = [by_cluster, pair_quality(linked, people_counts, datasets, methods)]
        if link_from is not None:
            mine = records.filter((F.col("source_dataset") == link_from) & F.col("true_person_id").isNotNull())
            alone = methods.crossJoin(mine).join(linked.select(*method, *keys), [*method, *keys], "left_anti")
            parts.insert(0, link_quality(linked, alone, link_from))
        result = reduce(DataFrame.unionByName, [part.select(*QUALITY_COLUMNS) for part in parts])
        return spark.createDataFrame(result.collect(), result.schema)
    finally:
        linked.unpersist()
        clusters.unpersist()
        facts.unpersist()
        people_counts.unpersist()
        truth.unpersist()


def summary(quality: DataFrame) -> list[dict[str, Any]]:
    """The overall rows as plain dicts, for logs and JSON."""
    rows = quality.filter(F.col("group_by") == "all").orderBy("view", "scope", "method", "threshold").collect()
    return [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.asDict().items()} for row in rows]
