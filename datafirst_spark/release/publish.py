"""Write-audit-publish for one release of a linkage.

1. Write: the curated tables' rows (person IDs carried from the previous published
   release) go to ``staging/<release>/release/<table>`` (Delta), so a failed audit
   leaves them there to inspect.
2. Audit (:mod:`.audit`): counts reconcile, one person ID per record per threshold, no
   null keys, figures within the linkage's bounds of the previous release. Any failure:
   nothing is published, :class:`AuditFailed`.
3. Publish: one commit per curated table (``userMetadata`` ``release=<R>``), the
   de-identified research extract under ``research/<release>/``, then the registry row,
   last: until it exists no reader sees the release.

Publishing a release whose registry row exists is a no-op when its inputs are the same
(checksums of the staged records, quarantine and linkage outputs, and the previous
release's publication, compared before any work) and refused when they differ, unless
``republish`` says it is meant: then new versions are written and the registry gets the
next publication number. A run that died before writing the registry row left
nothing visible; running it again publishes the release once.
"""

from __future__ import annotations

import json
import logging
import time
from functools import reduce
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import code_version
from ..config import ConfigError, EnvironmentConfig
from ..deidentify import pseudonymise_record_keys, research_records
from ..ingest import QUARANTINE_TABLE, RECORDS_TABLE
from ..ingest import REPORT_FILE as INGEST_REPORT
from ..lakehouse import Lakehouse, list_data_files, read_json, write_delta, write_json
from ..linkage.run import REPORT_FILE as LINKAGE_REPORT
from ..linkage.run import LinkageRequest, linkage_path, run_linkage
from ..linkage.spec import LinkageSpec
from ..timing import StageTimer
from . import audit, curate
from .read import read_release_table
from .registry import current_publications, record_publication, registry_rows
from .tables import checksum_rows, table_checksums, write_release

log = logging.getLogger(__name__)

REPORT_FILE = "_publish.json"
AUDIT_FILE = "_audit.json"
RESEARCH_TABLES = ("persons", "person_links", "records", "linkage_quality")


@dataclass(frozen=True)
class PublishRequest:
    release: str
    pseudonym_key: bytes = field(repr=False)  # never printed, logged or written
    republish: bool = False


@dataclass
class PublishReport:
    release: str
    linkage: str
    status: str = ""  # published, republished, unchanged
    publication: int = 0
    previous_release: str | None = None
    registry_version: int | None = None
    table_versions: dict[str, int] = field(default_factory=dict)
    table_checksums: dict[str, str] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    audits: list[dict[str, Any]] = field(default_factory=list)
    research_extract: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def release_staging(lakehouse: Lakehouse, release: str, table: str | None = None) -> str:
    return lakehouse.staging(release, "release", table)


def publish_release(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse,
                    request: PublishRequest, scratch_dir: str) -> PublishReport:
    started_at, started = datetime.now(timezone.utc), time.monotonic()
    timer = StageTimer(log)
    release = request.release
    report = PublishReport(release, spec.linkage)
    rows = registry_rows(spark, lakehouse)
    current = current_publications(rows)
    existing = current.get(release)
    if existing is not None:
        later = [r for r in current if current[r]["published_at"] > existing["published_at"]]
        if later and request.republish:
            raise ConfigError(f"release {release}: {', '.join(later)} was published after it; republishing it "
                              "would change the person IDs later releases were built on")
        report.previous_release = existing["previous_release"]
    else:
        report.previous_release = next(reversed(current), None)
    previous = current.get(report.previous_release) if report.previous_release else None

    linkage = _linkage_outputs(spark, env, spec, lakehouse, release, scratch_dir, timer)
    with timer.stage(f"release {release}: checksum inputs"):
        inputs = input_checksums(linkage, previous)
    if not must_publish(release, existing, inputs, request.republish):
        report.status, report.publication = "unchanged", existing["publication"]
        report.table_versions, report.figures = existing["table_versions"], existing["figures"]
        report.table_checksums = existing["table_checksums"]
        report.research_extract, report.audits = existing["research_extract"], json.loads(existing["audits"])
        log.info("release %s: already published (publication %d, %s) from the same inputs; nothing to do",
                 release, existing["publication"], existing["published_at"])
        return _finish(spark, lakehouse, report, timer, started)

    with timer.stage(f"release {release}: write curated rows to staging") as figures:
        staged = _stage_curated_rows(spark, spec, lakehouse, release, linkage, rows, previous, timer)
        figures["rows"] = sum(checksum_rows(c) for c in staged.checksums.values())
        report.table_checksums = staged.checksums

    with timer.stage(f"release {release}: audit"):
        staged_records = {d: checksum_rows(inputs[f"{d}/records"]) for d in spec.datasets}
        results = _audit(spec, linkage, staged, staged_records, previous)
        report.audits = [r.as_dict() for r in results]
        report.figures = staged.figures
        write_json(spark, release_staging(lakehouse, release, AUDIT_FILE), {"release": release, "audits": report.audits})
        failures = [r for r in results if not r.passed]
        for result in results:
            log.log(logging.INFO if result.passed else logging.ERROR, "audit %s %s: %s", result.name,
                    "passed" if result.passed else "FAILED", result.message)
        if failures:
            raise audit.AuditFailed(release, failures)

    with timer.stage(f"release {release}: publish curated tables"):
        for table in curate.CURATED_TABLES:
            report.table_versions[table.name] = write_release(spark, table, lakehouse.curated(table.name),
                                                              staged.tables[table.name], release)

    with timer.stage(f"release {release}: research extract"):
        report.research_extract = write_research_extract(lakehouse, release, staged, linkage, request.pseudonym_key)

    report.publication = (existing["publication"] + 1) if existing is not None else 1
    report.status = "republished" if existing is not None else "published"
    report.registry_version = record_publication(spark, lakehouse, {
        "release": release, "publication": report.publication, "linkage": spec.linkage,
        "previous_release": report.previous_release, "table_versions": report.table_versions,
        "table_checksums": staged.checksums, "input_checksums": inputs, "model_sha256": linkage.report["model_sha256"],
        "input_rows": {d: r["input_rows"] for d, r in linkage.ingest.items()},
        "quarantined_rows": {d: r["quarantined_rows"] for d, r in linkage.ingest.items()},
        "figures": staged.figures, "largest_person_id": staged.largest_person_id,
        "research_extract": report.research_extract, "audits": report.audits, "code_version": code_version(),
        "started_at": started_at, "published_at": datetime.now(timezone.utc),
    })
    log.info("release %s %s (publication %d): registry version %d", release, report.status, report.publication,
             report.registry_version)
    return _finish(spark, lakehouse, report, timer, started)


def must_publish(release: str, existing: dict[str, Any] | None, inputs: dict[str, str], republish: bool) -> bool:
    """Whether to publish: always a new release or an asked-for republish; never again from
    the same inputs; refused (ConfigError) when a published release's inputs changed unasked."""
    if existing is None or republish:
        return True
    if existing["input_checksums"] == inputs:
        return False
    changed = sorted(k for k in set(inputs) | set(existing["input_checksums"])
                     if existing["input_checksums"].get(k) != inputs.get(k))
    raise ConfigError(f"release {release}: already published (publication {existing['publication']}) from other "
                      f"inputs ({', '.join(changed)} changed); pass --republish to publish it again")


def input_checksums(linkage: LinkageOutputs, previous: dict[str, Any] | None) -> dict[str, str]:
    """What a release's rows are made from: staged records and quarantine, the linkage's
    outputs, and the previous release's publication (its person IDs are carried)."""
    frames = {f"{d}/records": df for d, df in linkage.records.items()}
    frames |= {f"{d}/quarantine": df for d, df in linkage.quarantine.items()}
    frames |= {"linkage/clusters": linkage.clusters, "linkage/pairs": linkage.pairs}
    if linkage.quality is not None:
        frames["linkage/quality"] = linkage.quality
    sums = table_checksums(frames)
    sums["previous_release"] = f"{previous['release']}#{previous['publication']}" if previous else "none"
    return sums


@dataclass
class LinkageOutputs:
    report: dict[str, Any]
    ingest: dict[str, dict[str, Any]]
    records: dict[str, DataFrame]
    quarantine: dict[str, DataFrame]
    clusters: DataFrame
    pairs: DataFrame
    quality: DataFrame | None

    def all_records(self) -> DataFrame:
        """Every dataset's standardised records in one frame."""
        frames = list(self.records.values())
        return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _linkage_outputs(spark: SparkSession, env: EnvironmentConfig, spec: LinkageSpec, lakehouse: Lakehouse,
                     release: str, scratch_dir: str, timer: StageTimer) -> LinkageOutputs:
    """The release's staged linkage, running the linkage first if it has not run."""
    report_path = linkage_path(lakehouse, release, spec.linkage, LINKAGE_REPORT)
    if list_data_files(spark, report_path) is None:
        log.info("release %s: linkage %s has not run for it; running it now", release, spec.linkage)
        run_linkage(spark, env, spec, lakehouse, LinkageRequest(release), scratch_dir)
    report = read_json(spark, report_path)
    if "clusters" not in report.get("tables", {}):
        raise ConfigError(f"{report_path}: the linkage only trained a model; run it without --train-only first")

    def load(path: str) -> DataFrame:
        return spark.read.format("delta").load(path)

    def output(table: str) -> DataFrame:  # found by layout, not by the paths the report recorded
        return load(linkage_path(lakehouse, release, spec.linkage, table))

    return LinkageOutputs(
        report=report,
        ingest={d: read_json(spark, lakehouse.staging(release, d, INGEST_REPORT)) for d in spec.datasets},
        records={d: load(lakehouse.staging(release, d, RECORDS_TABLE)) for d in spec.datasets},
        quarantine={d: load(lakehouse.staging(release, d, QUARANTINE_TABLE)) for d in spec.datasets},
        clusters=output("clusters"),
        pairs=output("pairs"),
        quality=output("quality") if "quality" in report["tables"] else None,
    )


@dataclass
class StagedRelease:
    tables: dict[str, DataFrame]
    checksums: dict[str, str]
    figures: dict[str, float]
    largest_person_id: int


def _stage_curated_rows(spark: SparkSession, spec: LinkageSpec, lakehouse: Lakehouse, release: str,
                        linkage: LinkageOutputs, registry: list[dict[str, Any]],
                        previous: dict[str, Any] | None, timer: StageTimer) -> StagedRelease:
    """Each curated table's rows to staging, each write timed as a stage of its own."""
    previous_links = (read_release_table(spark, lakehouse, "person_links", previous["release"], registry)
                      if previous else None)
    first_new_id = (previous["largest_person_id"] + 1) if previous else 1
    with timer.stage(f"release {release}: staging person_links"):
        ids = curate.person_ids(linkage.clusters, previous_links, first_new_id)
        links = curate.person_links(ids, linkage.pairs, release)
        write_delta(links, release_staging(lakehouse, release, "person_links"))
        links = spark.read.format("delta").load(release_staging(lakehouse, release, "person_links"))

    records = linkage.all_records()
    quarantine = reduce(DataFrame.unionByName, linkage.quarantine.values())
    quality = linkage.quality if linkage.quality is not None else spark.createDataFrame(
        [], "release string, linkage string, method string, view string")
    frames = {
        "persons": curate.persons(links, records),
        "quarantine": quarantine.withColumn("release", F.lit(release)),
        "linkage_quality": quality.withColumn("release", F.lit(release)),
        "person_id_lineage": curate.lineage(links, previous_links, release),
    }
    for name, frame in frames.items():
        with timer.stage(f"release {release}: staging {name}"):
            write_delta(frame, release_staging(lakehouse, release, name))
    tables = {t.name: spark.read.format("delta").load(release_staging(lakehouse, release, t.name))
              for t in curate.CURATED_TABLES}
    with timer.stage(f"release {release}: staging checksums"):
        checksums = table_checksums(tables)

    figures: dict[str, float] = {}
    if spec.link_from and len(spec.datasets) > 1:
        target = next(d for d in spec.datasets if d != spec.link_from)
        figures.update({f"link_rate@{t}": round(r, 6)
                        for t, r in curate.link_rates(links, spec.link_from, target).items()})
    for row in linkage.report.get("quality", []):
        if (row.get("view"), row.get("method")) == ("link", curate.PUBLISHED_METHOD):
            for name in ("precision", "recall"):
                if row.get(name) is not None:
                    figures[f"{name}@{row['threshold']}"] = round(float(row[name]), 6)
    largest = links.agg(F.max("person_id")).first()[0] or 0
    if previous is not None:
        largest = max(largest, previous["largest_person_id"])
    return StagedRelease(tables, checksums, figures, int(largest))


def _audit(spec: LinkageSpec, linkage: LinkageOutputs, staged: StagedRelease, staged_records: dict[str, int],
           previous: dict[str, Any] | None) -> list[audit.AuditResult]:
    links = staged.tables["person_links"]
    linked = {(r["source_dataset"], float(r["threshold"])): r["count"]
              for r in links.groupBy("source_dataset", "threshold").count().collect()}
    quarantined = {r["source_dataset"]: r["count"]
                   for r in staged.tables["quarantine"].groupBy("source_dataset").count().collect()}
    records = linkage.all_records().select("source_dataset", "source_record_id")
    keyed = {t.name: (staged.tables[t.name], t.not_null) for t in curate.CURATED_TABLES}
    return [
        audit.counts_reconcile(linkage.ingest, staged_records, linked, quarantined),
        audit.one_person_id_per_record(links, records),
        audit.no_null_keys(keyed),
        audit.figures_within_bounds(staged.figures, previous["figures"] if previous else None,
                                    previous["release"] if previous else None, spec.release.audits),
    ]


def pseudonymised_tables(person_links: DataFrame, records: DataFrame, release: str, key: bytes) -> dict[str, DataFrame]:
    """The research extract's two tables whose record keys are pseudonyms: the release's person
    links and its standardised records (every dataset's), as the extract writes them."""
    return {
        "person_links": pseudonymise_record_keys(person_links, key),
        "records": research_records(records, key).withColumn("release", F.lit(release)),
    }


def write_research_extract(lakehouse: Lakehouse, release: str, staged: StagedRelease, linkage: LinkageOutputs,
                           key: bytes) -> str:
    """``research/<release>/``: people, pseudonymised links and records, quality figures."""
    tables = {
        "persons": staged.tables["persons"],
        **pseudonymised_tables(staged.tables["person_links"], linkage.all_records(), release, key),
        "linkage_quality": staged.tables["linkage_quality"],
    }
    for name in RESEARCH_TABLES:  # read by others, with filters the suite cannot foresee: data skipping kept
        write_delta(tables[name], lakehouse.research(release, name), column_statistics=True)
    log.info("release %s: research extract written to %s", release, lakehouse.research(release))
    return lakehouse.research(release)


def _finish(spark: SparkSession, lakehouse: Lakehouse, report: PublishReport, timer: StageTimer,
            started: float) -> PublishReport:
    report.seconds = {**timer.seconds, "total": round(time.monotonic() - started, 1)}
    write_json(spark, release_staging(lakehouse, report.release, REPORT_FILE), vars(report))
    return report

