"""One linkage for one release, end to end: records, blocking bounds, model, predict,
clusters, the deterministic baseline, and quality against truth when truth exists.

Outputs, under ``staging/<release>/linkage/<linkage>/`` (overwritten when it re-runs):

    pairs          Splink's scored pairs at or above pairs_floor (Delta)
    clusters       (source_dataset, source_record_id, cluster_id, threshold, method) for
                   Splink at each threshold and the deterministic baseline (Delta)
    baseline_pairs the deterministic baseline's pairs (Delta)
    quality        precision/recall/F1 per method, threshold, view and group (Delta)
    _linkage.json  the run's record: model, bounds, counts, timings, quality summary
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import ConfigError, EnvironmentConfig
from ..lakehouse import Lakehouse, list_data_files, write_delta, write_json
from ..timing import StageTimer
from .blocking import check_rules, concatenated, rule_counts
from .clustering import PAIR_COLUMNS, ClusteringResult, cluster_at_thresholds, cluster_counts
from .deterministic import deterministic_pairs
from .model import (
    MATCH_COLUMNS,
    SavedModel,
    exclusion_flag,
    latest_model,
    linker_for,
    load_model,
    save_model,
    splink_settings,
    train,
)
from .scoring import scored_in_blocks
from .spec import LinkageSpec

log = logging.getLogger(__name__)

REPORT_FILE = "_linkage.json"
BASELINE_METHOD = "deterministic"
SPLINK_METHOD = "splink"


@dataclass(frozen=True)
class LinkageRequest:
    release: str
    retrain: bool = False  # train even if a model exists
    model_path: str | None = None  # score with this saved model
    reingest: bool = False  # ingest even if the release's records are staged
    train_only: bool = False


@dataclass
class LinkageReport:
    linkage: str
    release: str
    spec: str
    model_sha256: str = ""
    model_path: str = ""
    model_trained_release: str = ""
    trained_this_run: bool = False
    input_rows: dict[str, int] = field(default_factory=dict)
    blocking_bounds: list[dict[str, Any]] = field(default_factory=list)
    blocking_counts: list[dict[str, Any]] = field(default_factory=list)
    pairs: int = 0
    pairs_by_rule: dict[str, int] = field(default_factory=dict)
    pairs_excluded: dict[str, int] = field(default_factory=dict)
    clusters: dict[str, int] = field(default_factory=dict)
    one_to_one_conflicts: dict[str, int] = field(default_factory=dict)
    baseline_pairs: int = 0
    quality: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def linkage_path(lakehouse: Lakehouse, release: str, linkage: str, table: str | None = None) -> str:
    return lakehouse.staging(release, f"linkage/{linkage}", table)


def staged_records(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse,
                   request: LinkageRequest, scratch_dir: str, timer: StageTimer) -> dict[str, DataFrame]:
    """Each dataset's standardised records for the release, ingesting those not yet staged."""
    from ..datasets import resolve_dataset_specs
    from ..ingest import ingest_dataset
    from ..standardise import canonical_forenames

    dataset_specs = {s.dataset: s for s in resolve_dataset_specs(env, spec.datasets)}
    records: dict[str, DataFrame] = {}
    forename_table = None
    for name in spec.datasets:
        path = lakehouse.staging(request.release, name, "records")
        staged = list_data_files(spark, f"{path}/_delta_log") is not None
        if request.reingest or not staged:
            log.info("linkage %s: ingesting %s for release %s (%s)", spec.linkage, name, request.release,
                     "asked to" if request.reingest else "no staged records")
            forename_table = forename_table if forename_table is not None else canonical_forenames(spark)
            ingest_dataset(spark, dataset_specs[name], lakehouse, request.release, scratch_dir,
                           forename_table=forename_table)
        records[name] = spark.read.format("delta").load(path)
    return records


def run_linkage(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse,
                request: LinkageRequest, scratch_dir: str) -> LinkageReport:
    timer = StageTimer(log)
    release = request.release
    report = LinkageReport(spec.linkage, release, str(spec.source_file))
    where = str(spec.source_file or spec.linkage)
    out = lambda table: linkage_path(lakehouse, release, spec.linkage, table)  # noqa: E731
    started = time.monotonic()

    records = staged_records(spark, env, spec, lakehouse, request, scratch_dir, timer)
    with timer.stage(f"{spec.linkage}: count records") as figures:
        report.input_rows = {name: df.count() for name, df in records.items()}
        figures["rows"] = sum(report.input_rows.values())

    saved: SavedModel | None = None
    if request.model_path:
        saved = load_model(spark, request.model_path)
    elif not request.retrain:
        saved = latest_model(spark, lakehouse, spec.linkage, release)
    must_train = saved is None
    if must_train and not request.retrain and not request.model_path:
        log.info("linkage %s: no trained model under %s; training one", spec.linkage, lakehouse.area("models"))

    # Not cached: each rule's bound and pairs read only the columns they use from the staged
    # Parquet. At `full` caching every match column of the 16.65M records took 280 task
    # seconds; reading from the cache saved the seven rules' bound scans 24 in all (2026-12-06).
    concat = concatenated(records, MATCH_COLUMNS)
    blocks_dir = f"{scratch_dir}/blocks"  # each prediction rule's blocks, written by the bounds, read by the pairs
    with timer.stage(f"{spec.linkage}: bound blocking rules"):
        rules = [] if request.train_only else spec.model.blocking_rules_to_generate_predictions
        bounds = check_rules(concat, rules, spec.link_type, spec.max_comparisons, "prediction", where,
                             spec.model.within_dataset_block_on, spec.model.within_dataset_compare_unknown,
                             blocks_dir=blocks_dir)
        if must_train and spec.training.em_max_pairs is None:
            bounds += check_rules(concat, spec.training.em_blocking_rules, spec.link_type, spec.max_comparisons,
                                  "training", where)
        report.blocking_bounds = [vars(b) for b in bounds]

    if must_train:
        with timer.stage(f"{spec.linkage}: train model"):
            train_started = time.monotonic()
            linker = linker_for(spark, spec, records, splink_settings(spec))
            train(linker, spec)
            saved = save_model(spark, linker, lakehouse, spec, release, report.input_rows,
                               time.monotonic() - train_started)
            report.trained_this_run = True
    assert saved is not None
    report.model_sha256, report.model_path, report.model_trained_release = saved.sha256, saved.path, \
        saved.trained_release
    log.info("linkage %s: model %s (sha256 %s, trained on release %s)", spec.linkage, saved.path,
             saved.sha256[:12], saved.trained_release or "?")
    if request.train_only:
        return _finish(spark, report, timer, started, out(REPORT_FILE))

    with timer.stage(f"{spec.linkage}: predict") as figures:
        scored = scored_pairs(spark, spec, records, saved.parameters, out("pairs"), blocks_dir)
        report.blocking_counts = scored.blocking_counts
        report.pairs_by_rule, report.pairs_excluded = scored.by_rule, scored.excluded
        report.pairs = figures["rows"] = sum(report.pairs_by_rule.values())
        report.tables["pairs"] = out("pairs")
        pairs = scored.pairs

    all_records = concat.select("source_dataset", "source_record_id")
    baseline_membership = None
    if spec.deterministic_baseline and spec.link_from:
        with timer.stage(f"{spec.linkage}: deterministic baseline") as figures:
            baseline = deterministic_pairs(records, spec.link_from, spec.deterministic_baseline,
                                           report.input_rows[spec.link_from])
            write_delta(baseline, out("baseline_pairs"))
            baseline = spark.read.format("delta").load(out("baseline_pairs"))
            report.baseline_pairs = figures["rows"] = baseline.count()
            report.tables["baseline_pairs"] = out("baseline_pairs")
            baseline_membership = cluster_at_thresholds(spark, all_records, baseline, [1.0], BASELINE_METHOD).membership

    with timer.stage(f"{spec.linkage}: cluster") as figures:
        result = splink_clusters(spark, spec, all_records, pairs)
        membership = result.membership
        report.one_to_one_conflicts = {str(r.threshold): r.records_with_conflicts for r in result.one_to_one}
        if baseline_membership is not None:
            membership = membership.unionByName(baseline_membership)
        write_delta(membership, out("clusters"))
        clusters = spark.read.format("delta").load(out("clusters"))
        counted = cluster_counts(clusters).collect()
        report.clusters = {f"{r['method']}@{r['threshold']}": r["clusters"] for r in counted}
        figures["rows"] = sum(r["records"] for r in counted)
        report.tables["clusters"] = out("clusters")

    truth_path = lakehouse.truth(release, "records")
    if list_data_files(spark, f"{truth_path}/_delta_log") is not None:
        with timer.stage(f"{spec.linkage}: evaluate against truth"):
            report.quality = evaluate_against_truth(spark, lakehouse, release, spec, clusters, all_records,
                                                    out("quality"))
            report.tables["quality"] = out("quality")
    return _finish(spark, report, timer, started, out(REPORT_FILE))


def splink_clusters(spark: SparkSession, spec: LinkageSpec, records: DataFrame, pairs: DataFrame) -> ClusteringResult:
    """The scored ``pairs`` clustered at the spec's thresholds, one-to-one as the spec says:
    every record of ``records`` (source_dataset, source_record_id) at each threshold."""
    one = spec.clustering.one_to_one_dataset if spec.clustering.one_to_one else None
    return cluster_at_thresholds(spark, records, pairs, spec.clustering.thresholds, SPLINK_METHOD, one)


@dataclass
class ScoredPairs:
    pairs: DataFrame  # the kept pairs, as written
    by_rule: dict[str, int]  # kept pairs per match key
    excluded: dict[str, int]  # kept pairs per exclusion
    blocking_counts: list[dict[str, Any]]  # every scored pair, per prediction rule (rule_counts)


def scored_pairs(spark: SparkSession, spec: LinkageSpec, records: dict[str, DataFrame], parameters: dict[str, Any],
                 path: str, blocks_dir: str | None = None) -> ScoredPairs:
    """Splink's predict with the saved model's ``parameters`` over the pairs the spec's
    prediction rules make, scored in their blocks (:func:`~.scoring.scored_in_blocks`; with
    ``blocks_dir``, from the blocks the bounds wrote); the pairs at or above the spec's
    pairs_floor, with their gammas and the exclusion each falls under, written to ``path``
    (Delta)."""
    linker = linker_for(spark, spec, records, splink_settings(spec, parameters))
    made = scored_in_blocks(linker, spec, spec.pairs_floor, blocks_dir)
    gammas = [c for c in made.scored.columns if c.startswith("gamma_")]
    write_delta(made.scored.withColumn("excluded_by", exclusion_flag(spec)).select(*PAIR_COLUMNS, *gammas), path)
    pairs = spark.read.format("delta").load(path)
    counted = pairs.groupBy("match_key", "excluded_by").count().collect()  # one pass for both figures
    by_rule: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    for row in counted:
        by_rule[str(row["match_key"])] += row["count"]
        if row["excluded_by"] is not None:
            excluded[row["excluded_by"]] += row["count"]
    for name, count in excluded.items():
        log.info("linkage %s: %d scored pairs excluded by %r", spec.linkage, count, name)
    return ScoredPairs(pairs, dict(sorted(by_rule.items())), dict(excluded),
                       rule_counts(made.pairs_per_rule(), spec))


def evaluate_against_truth(spark: SparkSession, lakehouse: Lakehouse, release: str, spec: LinkageSpec,
                           clusters: DataFrame, records: DataFrame, path: str) -> list[dict[str, Any]]:
    from ..quality.evaluation import evaluate, summary
    from ..quality.truth import truth_people_groups

    truth = spark.read.format("delta").load(lakehouse.truth(release, "records"))
    people = truth_people_groups(spark.read.format("delta").load(lakehouse.truth(release, "people")))
    quality = evaluate(clusters, records, truth, people, spec.datasets, spec.link_from)
    write_delta(quality.withColumn("release", F.lit(release)).withColumn("linkage", F.lit(spec.linkage)), path)
    stored = spark.read.format("delta").load(path)
    rows = summary(stored)
    every_row = [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.asDict().items()}
                 for r in stored.orderBy("view", "scope", "method", "threshold", "group_by", "group_value").collect()]
    write_json(spark, f"{path}.json", {"linkage": spec.linkage, "release": release, "rows": every_row})
    for row in rows:
        if row["view"] in ("link", "pairs"):
            log.info("quality %s %s %s@%s: precision %s recall %s (%s of %s)", spec.linkage, row["scope"],
                     row["method"], row["threshold"], _pct(row["precision"]), _pct(row["recall"]),
                     row["true_positives"], row["actual"])
    for gap in recall_gaps(every_row, "ethnicity_group"):
        rows.append(gap)
        log.info("quality %s %s@%s: recall by ethnicity group from %s (%s) to %s (%s), a gap of %.1f points",
                 spec.linkage, gap["method"], gap["threshold"], _pct(gap["lowest"]), gap["lowest_group"],
                 _pct(gap["highest"]), gap["highest_group"], 100 * gap["gap"])
    return rows


def recall_gaps(rows: list[dict[str, Any]], group_by: str) -> list[dict[str, Any]]:
    """Per method and threshold, the spread of link recall across the groups of ``group_by``
    (groups of unknown value left out)."""
    gaps = []
    keys = sorted({(r["method"], r["threshold"]) for r in rows if r["view"] == "link"})
    for method, threshold in keys:
        groups = [r for r in rows if (r["view"], r["method"], r["threshold"], r["group_by"]) ==
                  ("link", method, threshold, group_by) and r["group_value"] != "unknown" and r["recall"] is not None]
        if len(groups) < 2:
            continue
        low, high = min(groups, key=lambda r: r["recall"]), max(groups, key=lambda r: r["recall"])
        gaps.append({"view": "recall_gap", "scope": group_by, "method": method, "threshold": threshold,
                     "lowest": low["recall"], "lowest_group": low["group_value"], "highest": high["recall"],
                     "highest_group": high["group_value"], "gap": round(high["recall"] - low["recall"], 5)})
    return gaps


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _finish(spark: SparkSession, report: LinkageReport, timer: StageTimer, started: float, path: str) -> LinkageReport:
    report.seconds = {**timer.seconds, "total": round(time.monotonic() - started, 1)}
    write_json(spark, path, vars(report))
    log.info("linkage %s release %s done in %.1fs: %s", report.linkage, report.release, report.seconds["total"], path)
    return report


def check_linkage_inputs(spec: LinkageSpec, env: EnvironmentConfig) -> None:
    """Before Spark: every dataset the linkage names has a spec."""
    from ..datasets import resolve_dataset_specs

    try:
        resolve_dataset_specs(env, spec.datasets)
    except ConfigError as exc:
        raise ConfigError(f"{spec.source_file}: datasets: {exc}") from None
