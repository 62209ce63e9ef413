"""Scored pairs -> people: connected components at each threshold, optionally one-to-one.

Every method (Splink, the deterministic baseline) hands over pairs in one shape
(:data:`PAIR_COLUMNS`) and gets back membership in one shape (:data:`MEMBERSHIP_COLUMNS`),
so that evaluation, IDs and publishing never ask which method made them. Components are
found in the driver when the linked graph is small enough (it is at `full`: most records
link to nothing), else by Splink's own clustering (``splink.clustering``) on Spark; either
way a cluster's id is its smallest node id, so it is the same on every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

# Up to this many edges at a threshold the components are found in the driver, whose Python
# then holds the node ids: 1.73M edges of 2.7M nodes peaked at 451 MiB. Beyond, Splink finds
# them on Spark.
MAX_DRIVER_EDGES = 5_000_000

PAIR_COLUMNS = [
    "source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r",
    "match_weight", "match_probability", "match_key", "excluded_by",
]  # fmt: skip
MEMBERSHIP_COLUMNS = ["source_dataset", "source_record_id", "cluster_id", "threshold", "method"]
_SEPARATOR = "-__-"  # Splink's own separator between source dataset and record id


def node_id(dataset: str | F.Column, record_id: str | F.Column) -> F.Column:
    dataset = F.col(dataset) if isinstance(dataset, str) else dataset
    record_id = F.col(record_id) if isinstance(record_id, str) else record_id
    return F.concat(dataset, F.lit(_SEPARATOR), record_id)


def record_key(node: F.Column) -> list[F.Column]:
    """(source_dataset, source_record_id) of a node id: :func:`node_id` undone."""
    return [F.substring_index(node, _SEPARATOR, 1).alias("source_dataset"),
            F.substr(node, F.instr(node, _SEPARATOR) + len(_SEPARATOR)).alias("source_record_id")]


def nodes_of(records: DataFrame) -> DataFrame:
    return records.select(node_id("source_dataset", "source_record_id").alias("node_id"))


def edges_of(pairs: DataFrame, threshold: float) -> DataFrame:
    linked = (F.col("match_probability") >= threshold) & F.col("excluded_by").isNull()
    return pairs.filter(linked).select(
        node_id("source_dataset_l", "source_record_id_l").alias("node_id_l"),
        node_id("source_dataset_r", "source_record_id_r").alias("node_id_r"),
        "match_probability",
    )


def connected_components(spark: SparkSession, nodes: DataFrame, edges: DataFrame) -> DataFrame:
    """(node_id, cluster_id) for every node of ``nodes`` (one row per node); cluster_id is the
    component's smallest node id.

    Splink solves the components of the nodes that have an edge; every other node is its own
    component (cluster_id = node_id, as Splink would give it). Most records link to nothing
    (at `medium` 1,664,906 records make 1,513,527 clusters at 0.9), and Splink would carry
    every one of them through its representatives tables to find that out."""
    components = linked_components(spark, edges)
    # nodes hold each record once (ingest quarantines keys shared by different rows), so no
    # distinct: at `full` it would aggregate 16.65M unique ids per threshold for nothing
    alone = nodes.select("node_id").join(components, "node_id", "left_anti")
    return components.unionByName(alone.select("node_id", F.col("node_id").alias("cluster_id")))


def linked_components(spark: SparkSession, edges: DataFrame, max_driver_edges: int = MAX_DRIVER_EDGES) -> DataFrame:
    """(node_id, cluster_id) for every node with an edge in ``edges``; cluster_id is the
    component's smallest node id.

    Up to ``max_driver_edges`` edges, the components are found in the driver
    (:func:`smallest_in_component`); beyond, by Splink's clustering on Spark. At `full` the
    graph is small (1.73M pairs kept among 16.65M records), and Splink's label propagation
    runs several Spark jobs per iteration, each written to Parquet to break the lineage."""
    # One evaluation of the edges (after one-to-one, a plan of joins and aggregations), at
    # most one edge over the limit: a count first would evaluate them twice
    ends = edges.select("node_id_l", "node_id_r").limit(max_driver_edges + 1).toArrow()
    if ends.num_rows > max_driver_edges:
        log.info("clustering: over %s edges: components by Splink on Spark", f"{max_driver_edges:,}")
        return _splink_components(spark, edges)
    nodes, clusters = smallest_in_component(ends.column(0).to_pylist(), ends.column(1).to_pylist())
    return spark.createDataFrame(pa.table({"node_id": pa.array(nodes, pa.string()),
                                           "cluster_id": pa.array(clusters, pa.string())}))


def smallest_in_component(left: list[str], right: list[str]) -> tuple[list[str], list[str]]:
    """Every node of the edges ``left[i]``-``right[i]`` and its component's smallest node: a
    union-find whose root is always the smaller, with the paths halved as they are walked."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        top = node
        while parent[top] != top:
            top = parent[top]
        while parent[node] != top:
            parent[node], node = top, parent[node]
        return top

    for a, b in zip(left, right, strict=True):
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        root_a, root_b = root(a), root(b)
        if root_a != root_b:
            small, large = sorted((root_a, root_b))
            parent[large] = small
    nodes = list(parent)
    return nodes, [root(node) for node in nodes]


def _splink_components(spark: SparkSession, edges: DataFrame) -> DataFrame:
    from splink.backends.spark import SparkAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    db_api = SparkAPI(spark_session=spark, break_lineage_method="parquet")
    linked = edges.select(F.col("node_id_l").alias("node_id")).union(
        edges.select(F.col("node_id_r").alias("node_id"))).distinct()
    clusters = cluster_pairwise_predictions_at_threshold(
        linked, edges.withColumn("match_probability", F.lit(1.0)), db_api, "node_id",
        edge_id_column_name_left="node_id_l", edge_id_column_name_right="node_id_r",
        threshold_match_probability=1.0,
    )
    return clusters.as_spark_dataframe().select("node_id", "cluster_id")


def _own_node_id() -> F.Column:
    """A membership row's own node id: its cluster's id when the cluster is named after it."""
    return node_id("source_dataset", "source_record_id")


def cluster_counts(membership: DataFrame) -> DataFrame:
    """(method, threshold, clusters, records) of membership (:data:`MEMBERSHIP_COLUMNS`).

    A cluster's id is the node id of one of its records (its smallest), so each cluster has
    exactly one record whose own node id is the cluster's: counting those counts clusters in
    one pass with no shuffle, where a distinct count would shuffle every record's cluster id
    (50M rows at `full`, nearly all clusters of one)."""
    own = _own_node_id() == F.col("cluster_id")
    return membership.groupBy("method", "threshold").agg(F.count_if(own).alias("clusters"),
                                                         F.count("*").alias("records"))


def in_clusters_of_several(membership: DataFrame) -> DataFrame:
    """The rows of membership (:data:`MEMBERSHIP_COLUMNS`) in clusters of two or more records,
    found without a shuffle of the rest.

    A cluster's id is the node id of its smallest record. So a record whose own node id is
    not its cluster's is in a cluster of several, and so is the record each such cluster is
    named after, whose key is read off the cluster id. Finding them by counting each
    cluster's records would shuffle every row (50M at `full`, where 16.65M records make
    15.16M clusters at 0.9: nearly all of them clusters of one)."""
    keys = ["method", "threshold", "cluster_id"]
    others = membership.filter(_own_node_id() != F.col("cluster_id"))
    named_after = others.select(*keys).distinct().select(*keys, *record_key(F.col("cluster_id")))
    return others.select(*MEMBERSHIP_COLUMNS).unionByName(named_after.select(*MEMBERSHIP_COLUMNS))


def misnamed_clusters(datasets: list[str]) -> F.Column:
    """For an aggregation over membership: the rows whose cluster id cannot be the node id of
    their cluster's smallest record (it sorts after their own, or names no dataset of
    ``datasets``); :func:`in_clusters_of_several` and :func:`cluster_counts` need none."""
    own = _own_node_id()
    named = F.substring_index("cluster_id", _SEPARATOR, 1)
    return F.count_if((F.col("cluster_id") != own)
                      & ((F.col("cluster_id") > own) | ~named.isin(*datasets)))


@dataclass
class OneToOneReport:
    threshold: float
    records_with_conflicts: int = 0  # records of the one-to-one dataset with candidates in 2+ people
    edges_dropped: int = 0


def one_to_one_edges(spark: SparkSession, edges: DataFrame, dataset: str,
                     report: OneToOneReport) -> DataFrame:
    """Keep, for each record of ``dataset``, its links to one person of each other dataset:
    the person (a component of that dataset's own links) holding its best-scoring pair; ties
    go to the smallest cluster id. Links within a dataset are kept as they are."""
    prefix = F.lit(dataset + _SEPARATOR)
    dataset_of = lambda column: F.substring_index(F.col(column), _SEPARATOR, 1)  # noqa: E731
    within = edges.filter(dataset_of("node_id_l") == dataset_of("node_id_r"))
    # the other datasets' people, from their own links; a record with none is a person alone
    people = linked_components(spark, within.filter(dataset_of("node_id_l") != F.lit(dataset)))
    cross = edges.filter(dataset_of("node_id_l") != dataset_of("node_id_r"))
    from_left = F.col("node_id_l").startswith(prefix)
    oriented = cross.filter(from_left | F.col("node_id_r").startswith(prefix)).select(
        F.when(from_left, F.col("node_id_l")).otherwise(F.col("node_id_r")).alias("record"),
        F.when(from_left, F.col("node_id_r")).otherwise(F.col("node_id_l")).alias("other"),
        "match_probability",
    )
    # Joined to the linked records' people only: joined to every record's (16.65M at `full`,
    # nearly all alone), each of the counts below shuffled them all again
    oriented = oriented.join(people.withColumnRenamed("node_id", "other").withColumnRenamed("cluster_id", "person"),
                             "other", "left") \
        .withColumn("person", F.coalesce("person", "other")).withColumn("other_dataset", dataset_of("other"))
    keys = ["record", "other_dataset"]
    top = oriented.groupBy(*keys).agg(F.max("match_probability").alias("top"),
                                      F.countDistinct("person").alias("people"))
    best = (oriented.join(top, keys).filter(F.col("match_probability") == F.col("top"))
            .groupBy(*keys).agg(F.min("person").alias("best_person"), F.first("people").alias("people")))
    report.records_with_conflicts = best.filter(F.col("people") > 1).select("record").distinct().count()
    kept = oriented.join(best, keys).filter(F.col("person") == F.col("best_person"))
    kept_edges = kept.select(F.col("record").alias("node_id_l"), F.col("other").alias("node_id_r"),
                             "match_probability")
    report.edges_dropped = cross.count() - kept_edges.count()
    if report.records_with_conflicts:
        log.warning("one-to-one at %s: %d %s records had links to more than one person of another dataset; "
                    "kept the best, dropped %d links", report.threshold, report.records_with_conflicts, dataset,
                    report.edges_dropped)
    # links between two other datasets stay as they are
    others = cross.filter(~F.col("node_id_l").startswith(prefix) & ~F.col("node_id_r").startswith(prefix))
    return within.unionByName(kept_edges).unionByName(others)


@dataclass
class ClusteringResult:
    membership: DataFrame
    one_to_one: list[OneToOneReport] = field(default_factory=list)


def cluster_at_thresholds(spark: SparkSession, records: DataFrame, pairs: DataFrame, thresholds: list[float],
                          method: str, one_to_one_dataset: str | None = None) -> ClusteringResult:
    """Membership (:data:`MEMBERSHIP_COLUMNS`) of every record at every threshold."""
    nodes = nodes_of(records).cache()
    results, reports = [], []
    for threshold in thresholds:
        edges = edges_of(pairs, threshold)
        if one_to_one_dataset is not None:
            report = OneToOneReport(threshold)
            edges = one_to_one_edges(spark, edges, one_to_one_dataset, report)
            reports.append(report)
        components = connected_components(spark, nodes, edges)
        results.append(components.select(
            *record_key(F.col("node_id")),
            "cluster_id",
            F.lit(threshold).alias("threshold"),
            F.lit(method).alias("method"),
        ))
    membership = results[0]
    for more in results[1:]:
        membership = membership.unionByName(more)
    return ClusteringResult(membership, reports)
