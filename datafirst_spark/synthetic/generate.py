"""Generate one synthetic release: NPD and PNC extracts under landing/, truth under truth/."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import code_version
from ..config import ConfigError
from ..lakehouse import Lakehouse, write_delta, write_json
from ..session import sql_conf
from ..timing import StageTimer
from .config import SyntheticConfig
from .extracts import NPD_COLUMNS, PNC_COLUMNS, TRUTH_COLUMNS, npd_records, pnc_records
from .names import NameSampler, nickname_table
from .next_year import next_year_population, plan_next_year
from .population import PopulationPlan, build_population

log = logging.getLogger(__name__)

ExtractFormat = Literal["csv", "parquet"]
ROWS_PER_PARTITION = 1_000_000
MANIFEST = "_generation.json"


@dataclass(frozen=True)
class GenerationRequest:
    release: str
    scale: str
    seed: int
    extract_format: ExtractFormat = "csv"
    previous_release: str | None = None  # make this release a year on from that one


def previous_generation(lakehouse: Lakehouse, release: str) -> dict[str, Any]:
    """The generation record of a local release a next year's release is made from."""
    path = Path(lakehouse.truth(release, MANIFEST).removeprefix("file://"))
    if not path.is_file():
        raise ConfigError(f"--next-year-of {release}: no synthetic release there ({path} not found)")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class SamplingTables:
    names: NameSampler
    nicknames: DataFrame

    @classmethod
    def build(cls, spark: SparkSession, config: SyntheticConfig) -> SamplingTables:
        return cls(NameSampler.build(config.population), nickname_table(spark))


def build_population_frame(
    spark: SparkSession, config: SyntheticConfig, request: GenerationRequest, tables: SamplingTables
) -> tuple[PopulationPlan, DataFrame]:
    plan = PopulationPlan.for_scale(config, config.scale(request.scale), request.scale)
    partitions = max(spark.sparkContext.defaultParallelism, math.ceil(plan.school_people / ROWS_PER_PARTITION))
    return plan, build_population(spark, config, plan, request.seed, tables.names, partitions, 0, request.release)


def generate_release(
    spark: SparkSession,
    config: SyntheticConfig,
    lakehouse: Lakehouse,
    request: GenerationRequest,
    scratch_dir: str,
) -> dict[str, Any]:
    """Write the release's extracts and truth; return the run's record (also written as
    ``_generation.json`` beside both)."""
    # The model's arithmetic is bounded by construction (ids < 2^35, dates guarded), and ANSI
    # mode's overflow checks cost ~25% of generation time (measured at medium).
    with sql_conf(spark, {"spark.sql.ansi.enabled": "false"}):
        started = datetime.now(timezone.utc)
        timer = StageTimer(log)
        tables = SamplingTables.build(spark, config)
        if request.previous_release is None:
            plan, people = build_population_frame(spark, config, request, tables)
            plan_record = plan.as_dict()
        else:
            previous = spark.read.format("delta").load(lakehouse.truth(request.previous_release, "people"))
            prior = previous_generation(lakehouse, request.previous_release)
            next_plan = plan_next_year(config, previous, prior["plan"])
            people = next_year_population(spark, config, previous, next_plan, request.seed, request.release,
                                          tables.names, spark.sparkContext.defaultParallelism)
            plan = next_plan
            # the sizes the release after this one grows from
            plan_record = {"school_people": prior["plan"]["school_people"] + next_plan.cohort_people,
                           "pnc_people": prior["plan"]["pnc_people"] + next_plan.never_in_npd, **next_plan.as_dict()}
        log.info("generating release %s at scale %s (seed %d%s): %s", request.release, request.scale, request.seed,
                 f", a year on from {request.previous_release}" if request.previous_release else "", plan)

        with timer.stage("population") as figures:
            people_path = lakehouse.truth(request.release, "people")
            write_delta(people.withColumn("release", F.lit(request.release)), people_path)
            changes = population_changes(spark.read.format("delta").load(people_path), request.release)
            figures["rows"] = changes.pop("people")

        # The extracts are built from the stored population: the expensive name and address
        # draws are not redone for each source.
        stored = spark.read.format("delta").load(people_path).drop("release")
        builders = {"npd": (npd_records, NPD_COLUMNS), "pnc": (pnc_records, PNC_COLUMNS)}
        staged: dict[str, DataFrame] = {}
        counts: dict[str, int] = {}
        for source, (build, columns) in builders.items():
            with timer.stage(f"{source}_records") as figures:
                path = f"{scratch_dir}/synthetic/{source}_records"
                build(stored, config, request.seed, tables.names, tables.nicknames).write.mode("overwrite").parquet(path)
                staged[source] = spark.read.parquet(path)
                counts[source] = figures["rows"] = staged[source].count()
            with timer.stage(f"{source}_extract") as figures:
                write_extract(staged[source].select(columns), lakehouse.landing(request.release, source), request.extract_format)
                figures["rows"] = counts[source]

        with timer.stage("truth_records") as figures:
            truth = staged["npd"].select(TRUTH_COLUMNS).unionByName(staged["pnc"].select(TRUTH_COLUMNS))
            write_delta(truth.withColumn("release", F.lit(request.release)), lakehouse.truth(request.release, "records"))
            figures["rows"] = counts["npd"] + counts["pnc"]

        record = {
            "release": request.release,
            "scale": request.scale,
            "seed": request.seed,
            "extract_format": request.extract_format,
            "previous_release": request.previous_release,
            "plan": plan_record,
            "rows": {"people": timer.rows["population"], "npd": counts["npd"], "pnc": counts["pnc"]},
            "population_changes": changes,
            "stage_seconds": timer.seconds,
            "total_seconds": round(sum(timer.seconds.values()), 2),
            "started_at": started.isoformat(timespec="seconds"),
            "code_version": code_version(),
            "spark_version": spark.version,
            "config": config.model_dump(mode="json"),
            "outputs": {
                "npd": lakehouse.landing(request.release, "npd"),
                "pnc": lakehouse.landing(request.release, "pnc"),
                "truth_people": lakehouse.truth(request.release, "people"),
                "truth_records": lakehouse.truth(request.release, "records"),
            },
        }
        write_json(spark, f"{lakehouse.landing(request.release)}/{MANIFEST}", record)
        write_json(spark, f"{lakehouse.truth(request.release)}/{MANIFEST}", record)
        log.info(
            "release %s generated: %d NPD records, %d PNC records, %d people in %.1fs",
            request.release, counts["npd"], counts["pnc"], timer.rows["population"], record["total_seconds"],
        )
        return record


def population_changes(people: DataFrame, release: str) -> dict[str, int]:
    """How many people, and how many of them are new, new in the PNC, renamed or corrected."""
    row = people.agg(
        F.count("*").alias("people"),
        F.count_if(F.col("first_release") == release).alias("new_people"),
        F.count_if((F.col("pnc_since_release") == release) & ~F.col("first_release").eqNullSafe(release))
        .alias("new_in_pnc"),
        F.count_if(F.col("current_surname").isNotNull()).alias("surname_changed"),
        F.count_if("corrected").alias("corrected"),
    ).first()
    return row.asDict()


def write_extract(df: DataFrame, path: str, extract_format: ExtractFormat) -> None:
    writer = df.write.mode("overwrite")
    if extract_format == "parquet":
        writer.parquet(path)
        return
    # RFC 4180 quoting (a quote inside a field is doubled), as other tools expect
    writer.option("header", True).option("escape", '"').option("encoding", "UTF-8").csv(path)
