"""The spark-submit command for a job: Delta's packages, Splink's jar, driver memory.

Used by the tests (which run the real jobs through spark-submit) and by the scripts.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pyspark
from splink.backends.spark import similarity_jar_location

from .config import EnvironmentConfig
from .session import delta_package_coordinates, is_local_master

REPO_ROOT = Path(__file__).resolve().parents[1]


def spark_submit_executable() -> str:
    """The spark-submit of the installed pyspark (the one whose version is pinned), else PATH's."""
    bundled = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("spark-submit")
    if not found:
        raise FileNotFoundError("spark-submit not found: install pyspark or put Spark's bin/ on PATH")
    return found


def spark_submit_command(env: EnvironmentConfig, job: str | Path, job_args: Sequence[str]) -> list[str]:
    """The full command line to submit ``job`` (a file under jobs/) with ``job_args``."""
    settings = env.spark
    command = [
        spark_submit_executable(),
        "--master", settings.master,
        "--packages", delta_package_coordinates(),
        "--jars", similarity_jar_location(),
    ]
    if settings.driver_memory:
        # must be on the command line: the driver JVM exists before any job code runs
        command += ["--driver-memory", settings.driver_memory]
    if not is_local_master(settings.master):
        if settings.executor_memory:
            command += ["--executor-memory", settings.executor_memory]
        if settings.executor_cores:
            command += ["--executor-cores", str(settings.executor_cores)]
    for key, value in settings.extra.items():
        # launch-time settings (JVM options, memory) only work from the command line
        command += ["--conf", f"{key}={value}"]
    job_path = Path(job)
    if not job_path.is_absolute():
        job_path = REPO_ROOT / job_path
    return [*command, str(job_path), *job_args]


def spark_submit_environment() -> dict[str, str]:
    """The environment for spark-submit: Python workers and driver use this interpreter
    (the one the package and its pinned dependencies are installed in)."""
    return {
        **os.environ,
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable),
    }
