"""The spark-submit command for a job: Delta's packages, Splink's jar, driver memory, and
what a cluster's executors need of the suite.

What ships to a cluster: the package as a zip for ``--py-files`` (pure Python, with its
reference tables), and, where the executors' machines lack the suite's Python
dependencies (pyarrow and pydantic have native wheels), an environment archive made with
venv-pack for ``--archives`` (executors then run ``./environment/bin/python``).
Used by the tests, ``datafirst submit`` and ``scripts/submit.sh``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
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


def build_py_files(dest_dir: str | Path) -> Path:
    """``datafirst_spark-<version>.zip`` in ``dest_dir``: the package for ``--py-files``."""
    from . import __version__

    package = Path(__file__).resolve().parent
    target = Path(dest_dir) / f"datafirst_spark-{__version__}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".gz", ".json", ".yaml"):
                archive.write(path, path.relative_to(package.parent))
    partial.replace(target)
    return target


ENV_ARCHIVE_ALIAS = "environment"


def build_env_archive(dest_dir: str | Path) -> Path:
    """``datafirst-env.tar.gz`` in ``dest_dir``: a virtualenv holding the suite and its
    pinned dependencies, packed by venv-pack, for ``--archives ...#environment``."""
    target = Path(dest_dir) / "datafirst-env.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="datafirst-env-") as work:
        venv = Path(work) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--copies", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "venv-pack==0.2.0", str(REPO_ROOT)], check=True)
        subprocess.run([str(venv / "bin" / "venv-pack"), "-p", str(venv), "-o", str(target), "--force"], check=True)
    return target


def spark_submit_command(env: EnvironmentConfig, job: str | Path, job_args: Sequence[str], *,
                         master: str | None = None, py_files: Path | None = None,
                         env_archive: Path | None = None) -> list[str]:
    """The full command line to submit ``job`` (a file under jobs/) with ``job_args`` to
    ``master`` (default: the environment's)."""
    settings = env.spark
    master = master or settings.master
    command = [
        spark_submit_executable(),
        "--master", master,
        "--packages", delta_package_coordinates(),
        "--jars", similarity_jar_location(),
    ]
    if settings.driver_memory:
        # must be on the command line: the driver JVM exists before any job code runs
        command += ["--driver-memory", settings.driver_memory]
    if not is_local_master(master):
        if settings.executor_memory:
            command += ["--executor-memory", settings.executor_memory]
        if settings.executor_cores:
            command += ["--executor-cores", str(settings.executor_cores)]
        if settings.executor_instances and not master.startswith("spark://"):
            command += ["--num-executors", str(settings.executor_instances)]
    if py_files:
        command += ["--py-files", str(py_files)]
    if env_archive:
        command += ["--archives", f"{env_archive}#{ENV_ARCHIVE_ALIAS}",
                    "--conf", f"spark.pyspark.python=./{ENV_ARCHIVE_ALIAS}/bin/python",
                    "--conf", f"spark.pyspark.driver.python={sys.executable}"]  # a client-mode driver: here
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
