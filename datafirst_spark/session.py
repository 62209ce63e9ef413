"""The one place a SparkSession is built: Delta, Splink's similarity jar, per-run scratch.

Jobs, tests and scripts all come through here so that a setting fixed once (time zone,
Delta catalog, checkpoint folder) is fixed everywhere.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from delta import configure_spark_with_delta_pip
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession
from splink.backends.spark import similarity_jar_location

from .config import EnvironmentConfig
from .scratch import claim_scratch, is_local, remove_scratch, sweep_dead_runs

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
SPLINK_PROBE_CLASS = "uk.gov.moj.dash.linkage.JaroWinklerSimilarity"


class SessionError(RuntimeError):
    """The session started without something the suite needs (Delta, Splink's jar)."""


@contextmanager
def sql_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` in force in ``spark`` for the block; each key's earlier value (or its
    absence) restored after, whatever happens in it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def running_under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python a gateway; settings that must
    exist before the JVM (packages, driver memory) then come from its command line."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def is_local_master(master: str) -> bool:
    return master.startswith("local")


# configure_spark_with_delta_pip names the jar after the pip package (4.4.1), but Maven
# Central has no 4.4.1 jars for Spark 4.2 (delta-spark_4.2_2.13 and delta-storage: 404);
# 4.4.0 is the newest published, and the pip package's Python API runs on it unchanged.
DELTA_JAR_VERSION = "4.4.0"


def delta_package_coordinates() -> str:
    """Maven coordinates of Delta's jars for this Spark, for --packages."""
    builder = configure_spark_with_delta_pip(SparkSession.builder)
    coordinates = builder._options["spark.jars.packages"]  # noqa: SLF001 - Delta's own naming
    group, artifact, _pip_version = coordinates.split(":")
    return f"{group}:{artifact}:{DELTA_JAR_VERSION}"


def new_run_id(job_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{job_name}-{stamp}-{uuid.uuid4().hex[:6]}"


def default_scratch_root(env: EnvironmentConfig) -> str:
    if env.scratch_root:
        return env.scratch_root
    if is_local_master(env.spark.master):
        return str(Path(tempfile.gettempdir()) / "datafirst-spark")
    return env.lakehouse_root.rstrip("/") + "/_scratch"


def build_session(env: EnvironmentConfig, app_name: str, scratch_dir: str) -> SparkSession:
    """A SparkSession configured from ``env`` with its scratch (checkpoints, spill) in
    ``scratch_dir``. Prefer :func:`spark_run`, which also cleans the scratch up."""
    settings = env.spark
    conf: dict[str, str] = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        # Dates in the extracts are calendar dates; a machine's local zone must not shift them.
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(settings.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        # Plans hold large constant arrays (the synthetic name pools); Spark renders every
        # plan as text for its listeners, and untruncated that exhausted a 6 GB heap.
        "spark.sql.maxPlanStringLength": "200000",
    }
    if settings.driver_memory:
        conf["spark.driver.memory"] = settings.driver_memory
    if settings.executor_memory:
        conf["spark.executor.memory"] = settings.executor_memory
    if settings.executor_cores:
        conf["spark.executor.cores"] = str(settings.executor_cores)
    if settings.executor_instances:
        conf["spark.executor.instances"] = str(settings.executor_instances)
    if is_local_master(settings.master):
        conf["spark.local.dir"] = f"{scratch_dir}/spark-local"
    conf.update(settings.extra)
    # spark.jars set here replaces the list spark-submit built from --jars and --packages,
    # which is what a cluster's executors fetch: keep every entry, adding Splink's once
    jars = [j for j in conf.get("spark.jars", "").split(",") if j]
    if running_under_spark_submit():
        jars = _submitted_jars() + jars
    splink_jar = similarity_jar_location()
    if not any(Path(j.removeprefix("file:")).name == Path(splink_jar).name for j in jars):
        jars.append(splink_jar)  # spark-submit lists it as file:///...: once is enough
    conf["spark.jars"] = ",".join(jars)

    builder = SparkSession.builder.master(settings.master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if settings.resolve_packages_at_start and not running_under_spark_submit():
        packages = [delta_package_coordinates()]
        packages += [p for p in conf.get("spark.jars.packages", "").split(",") if p]
        builder = builder.config("spark.jars.packages", ",".join(packages))

    started = time.monotonic()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    spark.sparkContext.setCheckpointDir(f"{scratch_dir}/checkpoints")
    _check_classpath(spark)
    log.info(
        "spark session ready: master=%s spark=%s scratch=%s (%.1fs)",
        spark.sparkContext.master,
        spark.version,
        scratch_dir,
        time.monotonic() - started,
    )
    return spark


def _submitted_jars() -> list[str]:
    """spark.jars as spark-submit set it (--jars plus the jars --packages resolved), read
    from the JVM it started: a SparkConf made before the gateway is up is empty."""
    SparkContext._ensure_initialized()  # noqa: SLF001 - the gateway spark-submit already launched
    return [j for j in SparkConf().get("spark.jars", "").split(",") if j]


def _class_exists(spark: SparkSession, name: str) -> bool:
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        jvm.java.lang.Class.forName(name, False, loader)
    except Exception:  # py4j wraps ClassNotFoundException
        return False
    return True


def _check_classpath(spark: SparkSession) -> None:
    if not _class_exists(spark, DELTA_CATALOG):
        raise SessionError(
            "Delta Lake classes are not on the classpath: pass "
            f"--packages {delta_package_coordinates()} to spark-submit"
        )
    if not _class_exists(spark, SPLINK_PROBE_CLASS):
        raise SessionError(
            f"Splink's similarity jar is not on the classpath: pass --jars {similarity_jar_location()}"
        )


@dataclass(frozen=True)
class SparkRun:
    """A running job: its session, id and scratch folder (removed when the run ends)."""

    spark: SparkSession
    run_id: str
    scratch_dir: str


_shared: SparkSession | None = None


@contextmanager
def shared_session(spark: SparkSession) -> Iterator[SparkSession]:
    """Within this block every :func:`spark_run` reuses ``spark`` instead of starting a
    session: how the test suite runs many jobs in one warm JVM (a cold one spends most of a
    tiny release's run compiling). Each run still gets, and removes, its own scratch."""
    global _shared
    previous, _shared = _shared, spark
    try:
        yield spark
    finally:
        _shared = previous


@contextmanager
def spark_run(env: EnvironmentConfig, job_name: str) -> Iterator[SparkRun]:
    """Start a session for one job run; on exit stop it and delete the run's scratch, so
    that Splink's intermediate tables and Spark's spill never pile up across runs. A local
    scratch folder records its run's process, and each run first removes the folders of
    runs on this machine that died without removing theirs (:mod:`datafirst_spark.scratch`)."""
    run_id = new_run_id(job_name)
    scratch_root = default_scratch_root(env)
    scratch_dir = f"{scratch_root.rstrip('/')}/{run_id}"
    if is_local(scratch_dir):
        sweep_dead_runs(scratch_root)
        claim_scratch(scratch_dir, run_id)
    if _shared is not None:
        yield from _reuse_shared(_shared, run_id, scratch_dir)
        return
    spark = None
    try:
        spark = build_session(env, f"{env.spark.app_name}:{job_name}", scratch_dir)
        yield SparkRun(spark=spark, run_id=run_id, scratch_dir=scratch_dir)
    finally:
        local_scratch = is_local(scratch_dir)
        if spark is not None and local_scratch:
            spark.stop()  # Spark's own files in spark.local.dir go before the folder does
        remove_scratch(spark, scratch_dir)
        if spark is not None and not local_scratch:
            spark.stop()
        log.info("run %s finished; scratch %s removed", run_id, scratch_dir)


def _reuse_shared(spark: SparkSession, run_id: str, scratch_dir: str) -> Iterator[SparkRun]:
    context = spark.sparkContext
    previous_checkpoints = context.getCheckpointDir()
    context.setCheckpointDir(f"{scratch_dir}/checkpoints")
    try:
        yield SparkRun(spark=spark, run_id=run_id, scratch_dir=scratch_dir)
    finally:
        spark.catalog.clearCache()
        if previous_checkpoints:
            context.setCheckpointDir(previous_checkpoints)
        remove_scratch(spark, scratch_dir)
        log.info("run %s finished in the shared session; scratch %s removed", run_id, scratch_dir)
