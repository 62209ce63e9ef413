"""The checks a release passes before anything is published. Each returns an
:class:`AuditResult` naming the audit and the figures it compared; a failed one stops
the publish with every failure in one message."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..ids import RECORD_KEY


@dataclass(frozen=True)
class AuditResult:
    name: str
    passed: bool
    message: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditFailed(RuntimeError):
    """A release failed one or more audits: nothing was published."""

    def __init__(self, release: str, failures: list[AuditResult]) -> None:
        self.failures = failures
        super().__init__(f"release {release} not published: " + "; ".join(
            f"audit {f.name} failed: {f.message}" for f in failures))


def counts_reconcile(ingest_reports: dict[str, dict[str, Any]], staged_records: dict[str, int],
                     linked_records: dict[tuple[str, float], int], quarantined: dict[str, int]) -> AuditResult:
    """Landing to curated: rows read = valid + quarantined; every valid record staged,
    linked once at each threshold; every quarantined row kept."""
    problems = []
    for dataset, report in sorted(ingest_reports.items()):
        read, valid, rejected = report["input_rows"], report["valid_rows"], report["quarantined_rows"]
        if read != valid + rejected:
            problems.append(f"{dataset}: {read} rows read but {valid} valid + {rejected} quarantined")
        if staged_records.get(dataset) != valid:
            problems.append(f"{dataset}: {valid} valid rows at ingest but {staged_records.get(dataset)} staged records")
        if quarantined.get(dataset, 0) != rejected:
            problems.append(f"{dataset}: {rejected} quarantined at ingest but {quarantined.get(dataset, 0)} "
                            "quarantine rows to publish")
    for (dataset, threshold), count in sorted(linked_records.items()):
        if count != staged_records.get(dataset):
            problems.append(f"{dataset}@{threshold}: {count} person links for {staged_records.get(dataset)} records")
    figures = {"ingest": {d: {k: r[k] for k in ("input_rows", "valid_rows", "quarantined_rows")}
                          for d, r in ingest_reports.items()},
               "staged_records": staged_records, "quarantine_rows": quarantined,
               "person_links": {f"{d}@{t}": n for (d, t), n in linked_records.items()}}
    return AuditResult("counts_reconcile", not problems, "; ".join(problems) or "every row accounted for", figures)


def one_person_id_per_record(links: DataFrame, records: DataFrame) -> AuditResult:
    """Every source record has exactly one person ID at every threshold."""
    thresholds = links.select("threshold").distinct()
    several = links.groupBy(*RECORD_KEY, "threshold").count().filter(F.col("count") > 1).count()
    missing = records.select(*RECORD_KEY).crossJoin(thresholds).join(
        links.select(*RECORD_KEY, "threshold"), [*RECORD_KEY, "threshold"], "left_anti").count()
    passed = several == 0 and missing == 0
    message = (f"{several} record-threshold pairs with several person IDs, {missing} with none"
               if not passed else "one person ID per record per threshold")
    return AuditResult("one_person_id_per_record", passed, message,
                       {"with_several_ids": several, "with_no_id": missing})


def no_null_keys(tables: dict[str, tuple[DataFrame, tuple[str, ...]]]) -> AuditResult:
    """No null in any table's key columns (the constraints would refuse them half way)."""
    nulls: dict[str, int] = {}
    for name, (df, keys) in tables.items():
        row = df.agg(*[F.count_if(F.col(k).isNull()).alias(k) for k in keys]).first()
        nulls.update({f"{name}.{k}": row[k] for k in keys if row[k]})
    message = ", ".join(f"{n} nulls in {c}" for c, n in nulls.items()) or "no null keys"
    return AuditResult("no_null_keys", not nulls, message, {"nulls": nulls})


def figures_within_bounds(current: dict[str, float], previous: dict[str, float] | None, previous_release: str | None,
                          bounds: Any) -> AuditResult:  # noqa: ANN401 - spec.AuditBounds
    """Link rates (absolute change) and precision/recall (drop) against the previous release's."""
    if previous is None:
        return AuditResult("figures_within_bounds", True, "no previous release to compare with",
                           {"current": current})
    limits = {"link_rate": ("change", bounds.max_link_rate_change), "precision": ("drop", bounds.max_precision_drop),
              "recall": ("drop", bounds.max_recall_drop)}
    problems, compared = [], {}
    for name, value in sorted(current.items()):
        kind = name.split("@")[0]
        if kind not in limits or name not in previous or value is None or previous[name] is None:
            continue
        how, limit = limits[kind]
        moved = abs(value - previous[name]) if how == "change" else previous[name] - value
        compared[name] = {"previous": previous[name], "current": value, how: round(moved, 6), "limit": limit}
        if moved > limit:
            problems.append(f"{name} {previous[name]:.4f} in {previous_release} -> {value:.4f} "
                            f"({how} {moved:.4f} > {limit})")
    return AuditResult("figures_within_bounds", not problems,
                       "; ".join(problems) or f"{len(compared)} figures within bounds of {previous_release}",
                       {"compared": compared})
