"""The annual refresh: every stage of a release in one run, resumable.

    ingest    each dataset of the linkage validated into a quarantine and standardised
              (staging/<R>/<dataset>/)
    link      the linkage: the latest trained model reused (trained first if there is
              none), blocking, predict, clustering, deterministic baseline, quality against
              truth where it exists (staging/<R>/linkage/<linkage>/)
    publish   person IDs carried from the previous release, audits, one commit per
              curated table, the research extract, the registry row last
    qa        QA figures: link rates of the linked-from dataset by threshold and group
              (staging/<R>/qa/); the HTML QA report and the clerical review sample
              (reports/<R>/)

Each stage appends a ``running`` row to the run manifest (:mod:`.manifest`) when it starts
and a ``succeeded`` or ``failed`` row with its seconds and counts when it ends. Run again
after a failure, the refresh starts at the first stage of the release that has not
succeeded (a killed run's stage still reads ``running``), reusing what earlier stages
wrote; ``from_stage`` and ``only_stage`` choose instead. Every stage is safe to repeat:
ingest and link overwrite their staging outputs, and publishing is decided from the
inputs' checksums, so a release is published exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .config import ConfigError, EnvironmentConfig
from .lakehouse import Lakehouse, write_delta, write_json
from .linkage.spec import LinkageSpec
from .manifest import FAILED, RUNNING, SUCCEEDED, record_stage, stage_states
from .timing import StageTimer

log = logging.getLogger(__name__)

JOB = "annual_refresh"
STAGES = ("ingest", "link", "publish", "qa")
QA_FILE = "_qa.json"
CLERICAL_PER_BAND = 20  # pairs per match-weight band in the clerical review sample
GROUPS = ("sex", "ethnicity_group", "birth_cohort")


@dataclass(frozen=True)
class RefreshRequest:
    release: str
    run_id: str
    pseudonym_key: bytes = field(repr=False)  # never printed, logged or written
    from_stage: str | None = None
    only_stage: str | None = None
    republish: bool = False

    def __post_init__(self) -> None:
        for option, stage in (("--from-stage", self.from_stage), ("--only-stage", self.only_stage)):
            if stage is not None and stage not in STAGES:
                raise ConfigError(f"{option} {stage}: not a stage (stages: {', '.join(STAGES)})")
        if self.from_stage and self.only_stage:
            raise ConfigError("--from-stage and --only-stage: give one or the other")


@dataclass
class RefreshReport:
    release: str
    run_id: str
    linkage: str
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def stages_to_run(request: RefreshRequest, states: dict[str, Any]) -> list[str]:
    """The stages this run does: the one asked for, from the one asked for, or from the
    first stage that has not succeeded for the release (none when all have)."""
    if request.only_stage:
        return [request.only_stage]
    if request.from_stage:
        return list(STAGES[STAGES.index(request.from_stage):])
    for i, stage in enumerate(STAGES):
        state = states.get(stage)
        if state is None or state.status != SUCCEEDED:
            return list(STAGES[i:])
    return []


@dataclass
class StageOutcome:
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def annual_refresh(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse,
                   request: RefreshRequest, scratch_dir: str) -> RefreshReport:
    started = time.monotonic()
    release = request.release
    report = RefreshReport(release, request.run_id, spec.linkage)
    states = stage_states(spark, lakehouse, JOB, release)
    todo = stages_to_run(request, states)
    if not todo:
        last = max(states.values(), key=lambda s: s.recorded_at)
        log.info("refresh %s: every stage succeeded (last in run %s); nothing to do (--from-stage runs again)",
                 release, last.run_id)
    elif not request.only_stage and not request.from_stage and todo[0] != STAGES[0]:
        previous = states.get(todo[0])
        log.info("refresh %s: resuming at stage %s (%s); %s already succeeded", release, todo[0],
                 f"{previous.status} in run {previous.run_id}" if previous else "not started",
                 ", ".join(STAGES[:STAGES.index(todo[0])]))
    report.stages_skipped = [s for s in STAGES if s not in todo]
    actions: dict[str, Callable[[], StageOutcome]] = {
        "ingest": lambda: _ingest(spark, env, spec, lakehouse, release, scratch_dir),
        "link": lambda: _link(spark, env, spec, lakehouse, release, scratch_dir),
        "publish": lambda: _publish(spark, env, spec, lakehouse, request, scratch_dir),
        "qa": lambda: _qa(spark, spec, lakehouse, release),
    }
    for number, stage in enumerate(todo, 1):
        stage_started = time.monotonic()
        outcome = _run_stage(spark, lakehouse, request, stage, f"{number}/{len(todo)}", actions[stage])
        report.seconds[stage] = round(time.monotonic() - stage_started, 1)
        report.stages_run.append(stage)
        report.outcomes[stage] = {"counts": outcome.counts, **outcome.details}
    report.seconds["total"] = round(time.monotonic() - started, 1)
    log.info("refresh %s run %s done in %.1fs: ran %s", release, request.run_id, report.seconds["total"],
             ", ".join(report.stages_run) or "nothing")
    return report


def _run_stage(spark: SparkSession, lakehouse: Lakehouse, request: RefreshRequest, stage: str, position: str,
               action: Callable[[], StageOutcome]) -> StageOutcome:
    base = {"run_id": request.run_id, "job": JOB, "release": request.release, "stage": stage}
    started_at, started = datetime.now(timezone.utc), time.monotonic()
    record_stage(spark, lakehouse, **base, status=RUNNING, started_at=started_at)
    log.info("refresh %s stage %s (%s): started", request.release, stage, position,
             extra={"event": "stage", "stage": stage, "status": RUNNING, "run_id": request.run_id})
    try:
        outcome = action()
    except BaseException as exc:  # recorded, then passed on: the exit code is the CLI's to choose
        seconds = round(time.monotonic() - started, 2)
        message = f"{type(exc).__name__}: {exc}"
        try:
            record_stage(spark, lakehouse, **base, status=FAILED, started_at=started_at, seconds=seconds,
                         message=message[:4000])
        except Exception:  # the session itself may be what failed
            log.warning("refresh %s stage %s: failure not recorded in the manifest", request.release, stage)
        log.error("refresh %s stage %s: failed after %.1fs", request.release, stage, seconds,
                  extra={"event": "stage", "stage": stage, "status": FAILED, "seconds": seconds,
                         "run_id": request.run_id})
        raise
    seconds = round(time.monotonic() - started, 2)
    record_stage(spark, lakehouse, **base, status=SUCCEEDED, started_at=started_at, seconds=seconds,
                 counts=outcome.counts, details=outcome.details)
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items())
    log.info("refresh %s stage %s: succeeded in %.1fs (%s)", request.release, stage, seconds, counts,
             extra={"event": "stage", "stage": stage, "status": SUCCEEDED, "seconds": seconds,
                    "counts": outcome.counts, "run_id": request.run_id})
    return outcome


def _ingest(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse, release: str,
            scratch_dir: str) -> StageOutcome:
    from .datasets import resolve_dataset_specs
    from .ingest import find_extract, ingest_dataset
    from .standardise import canonical_forenames

    forename_table = canonical_forenames(spark)
    outcome = StageOutcome()
    for dataset_spec in resolve_dataset_specs(env, spec.datasets):
        extract = find_extract(spark, dataset_spec, lakehouse, release)
        result = ingest_dataset(spark, dataset_spec, lakehouse, release, scratch_dir, extract, forename_table)
        name = dataset_spec.dataset
        outcome.counts |= {f"{name}_input_rows": result.input_rows, f"{name}_valid_rows": result.valid_rows,
                           f"{name}_quarantined_rows": result.quarantined_rows}
        outcome.details[name] = result.tables
    return outcome


def _link(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse, release: str,
          scratch_dir: str) -> StageOutcome:
    from .linkage.run import LinkageRequest, run_linkage

    # ingest ran (or was kept) as its own stage: the linkage uses its staged records
    result = run_linkage(spark, env, spec, lakehouse, LinkageRequest(release), scratch_dir)
    counts = {"pairs": result.pairs, **{f"clusters_{k}": v for k, v in result.clusters.items()}}
    return StageOutcome(counts, {"model_sha256": result.model_sha256, "model_path": result.model_path,
                                 "trained_this_run": result.trained_this_run, "seconds": result.seconds})


def _publish(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse,
             request: RefreshRequest, scratch_dir: str) -> StageOutcome:
    from .release.publish import PublishRequest, publish_release

    result = publish_release(spark, env, spec, lakehouse,
                             PublishRequest(request.release, request.pseudonym_key, request.republish), scratch_dir)
    counts = {"publication": result.publication, **{f"version_{k}": v for k, v in result.table_versions.items()}}
    return StageOutcome(counts, {"status": result.status, "figures": result.figures,
                                 "research_extract": result.research_extract, "seconds": result.seconds})


def qa_path(lakehouse: Lakehouse, release: str, table: str | None = None) -> str:
    return lakehouse.staging(release, "qa", table)


def link_rates_by_group(links: DataFrame, records: DataFrame, from_dataset: str, to_dataset: str) -> DataFrame:
    """(threshold, group_by, group_value, records, linked, link_rate): the share of
    ``from_dataset`` records whose person also holds a ``to_dataset`` record, overall
    (group_by 'all') and by sex, ethnicity group and birth cohort (decade of birth)."""
    has_target = (links.groupBy("threshold", "person_id")
                  .agg(F.max((F.col("source_dataset") == to_dataset).cast("int")).alias("linked")))
    described = records.filter(F.col("source_dataset") == from_dataset).select(
        "source_dataset", "source_record_id", "sex", "ethnicity_group",
        F.concat((F.floor(F.year("dob") / 10) * 10).cast("int").cast("string"), F.lit("s")).alias("birth_cohort"))
    per_record = (links.filter(F.col("source_dataset") == from_dataset)
                  .join(has_target, ["threshold", "person_id"])
                  .join(described, ["source_dataset", "source_record_id"]))
    from .quality.evaluation import group_views

    # every record counted once per view (all, then each group) in one pass over the join
    return (per_record.select("threshold", "linked", F.inline(group_views(GROUPS)))
            .groupBy("threshold", "group_by", "group_value")
            .agg(F.count("*").alias("records"), F.sum("linked").alias("linked"))
            .withColumn("link_rate", F.round(F.col("linked") / F.col("records"), 6)))


def _qa(spark: SparkSession, spec: LinkageSpec, lakehouse: Lakehouse, release: str) -> StageOutcome:
    from .ingest import RECORDS_TABLE
    from .release.read import read_release_table

    outcome = StageOutcome()
    if not spec.link_from or len(spec.datasets) < 2:
        outcome.details["note"] = "a dedupe-only linkage has no link rates"
        return outcome
    target = next(d for d in spec.datasets if d != spec.link_from)
    # each part timed and its Spark jobs tagged, so the log and the benchmark's profile say where QA goes
    timer = StageTimer(log)
    with timer.stage(f"qa {release}: link rates") as figures:
        links = read_release_table(spark, lakehouse, "person_links", release)
        records = spark.read.format("delta").load(lakehouse.staging(release, spec.link_from, RECORDS_TABLE))
        write_delta(link_rates_by_group(links, records, spec.link_from, target).withColumn("release", F.lit(release)),
                    qa_path(lakehouse, release, "link_rates"))
        rates = spark.read.format("delta").load(qa_path(lakehouse, release, "link_rates"))
        rows = [r.asDict() for r in rates.orderBy("threshold", "group_by", "group_value").collect()]
        write_json(spark, qa_path(lakehouse, release, QA_FILE), {"release": release, "linkage": spec.linkage,
                                                                 "link_from": spec.link_from, "link_to": target,
                                                                 "link_rates": rows})
        figures["rows"] = outcome.counts["link_rate_rows"] = len(rows)
    outcome.details = {"link_rates": qa_path(lakehouse, release, "link_rates"),
                       "overall": {str(r["threshold"]): r["link_rate"] for r in rows if r["group_by"] == "all"}}
    with timer.stage(f"qa {release}: report"):
        outcome.details["report"] = _report(spark, spec, lakehouse, release)
    with timer.stage(f"qa {release}: clerical sample") as figures:
        outcome.details["clerical_sample"], outcome.counts["clerical_sample_pairs"] = _clerical(spark, spec,
                                                                                                lakehouse, release)
        figures["rows"] = outcome.counts["clerical_sample_pairs"]
    outcome.details["seconds"] = timer.seconds
    for row in rows:
        if row["group_by"] == "all":
            log.info("qa %s: %s records linked to %s at %s: %.2f%% (%d of %d)", release, spec.link_from, target,
                     row["threshold"], 100 * row["link_rate"], row["linked"], row["records"])
    return outcome



def _report(spark: SparkSession, spec: LinkageSpec, lakehouse: Lakehouse, release: str) -> str:
    from .lakehouse import read_json
    from .linkage.run import REPORT_FILE, linkage_path
    from .quality.report import write_report

    linkage = read_json(spark, linkage_path(lakehouse, release, spec.linkage, REPORT_FILE))
    return write_report(spark, lakehouse, release, spec, linkage["model_path"])


def _clerical(spark: SparkSession, spec: LinkageSpec, lakehouse: Lakehouse, release: str) -> tuple[str, int]:
    from .ingest import staged_records
    from .linkage.run import linkage_path
    from .quality.clerical import clerical_sample, sample_path, write_sample

    pairs = spark.read.format("delta").load(linkage_path(lakehouse, release, spec.linkage, "pairs"))
    records = staged_records(spark, lakehouse, release, spec.datasets)
    path = sample_path(lakehouse, release)
    rows = write_sample(spark, clerical_sample(pairs, records, CLERICAL_PER_BAND, spec.training.seed), path)
    log.info("qa %s: clerical review sample of %d pairs written to %s (holds identifiers: reports/ only)", release,
             rows, path)
    return path, rows
