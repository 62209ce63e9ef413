"""Pytest fixtures for this suite and for downstream jobs (registered as a pytest plugin).

    spark                 one SparkSession for the whole test run (local[2], 2 shuffle
                          partitions, Delta state in 2 partitions, UI off, Delta and
                          Splink's jar on the classpath)
    synthetic_config      conf/synthetic.yaml of the project under test
    test_environment      an EnvironmentConfig for jobs run by tests, and its YAML file
    tiny_release          a tiny synthetic release made by the real job, once per test
                          run: its lakehouse, release id and generation record
    refreshed_release     the annual refresh of a copy of the tiny release in local mode,
                          run twice (the second run must do nothing): the result that
                          cluster and fault runs are compared with

Jobs run two ways: :func:`run_job` through spark-submit, as a user would (a new JVM per
run: use it where the command line itself is under test), and :func:`run_job_in_session`,
the same job function with the same arguments inside the test session's warm JVM (a cold
JVM spends most of a tiny release's run compiling, so most integration tests use this).

Options: --datafirst-synthetic-conf PATH (default: <rootdir>/conf/synthetic.yaml).
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .config import EnvironmentConfig, SparkSettings, load_environment
from .lakehouse import Lakehouse

TINY_RELEASE = "2025"
TINY_SEED = 7


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("datafirst-spark")
    group.addoption("--datafirst-synthetic-conf", default=None, help="synthetic YAML for the fixtures")


def _synthetic_conf_path(config: pytest.Config) -> Path:
    given = config.getoption("--datafirst-synthetic-conf")
    return Path(given) if given else Path(config.rootpath) / "conf" / "synthetic.yaml"


@dataclass(frozen=True)
class TestEnvironment:
    __test__ = False  # a fixture's type, not a test class, in the modules that import it
    config: EnvironmentConfig
    path: Path  # the YAML file, for jobs run as subprocesses


@pytest.fixture(scope="session")
def test_environment(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> TestEnvironment:
    root = tmp_path_factory.mktemp("datafirst")
    data: dict[str, Any] = {
        "name": "test",
        "lakehouse_root": str(root / "lakehouse"),
        "scratch_root": str(root / "scratch"),
        "synthetic_config": str(_synthetic_conf_path(pytestconfig).resolve()),
        "datasets": str((Path(pytestconfig.rootpath) / "conf" / "datasets").resolve()),
        "spark": SparkSettings(
            master="local[2]",
            app_name="datafirst-spark-tests",
            driver_memory="6g",
            shuffle_partitions=2,
            ui_enabled=False,
            # Delta's table state in 2 partitions, as conf/local.yaml says why. Unlike it, the
            # JVM's default DontCompileHugeMethods: at `tiny` no huge generated method runs long
            # enough to repay its compilation (README, Tests, gives what each saves here).
            extra={"spark.databricks.delta.snapshotPartitions": "2"},
        ).model_dump(exclude_none=True),
    }
    path = root / "test.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return TestEnvironment(load_environment(path), path)


@pytest.fixture(scope="session")
def spark(test_environment: TestEnvironment) -> Iterator[Any]:
    from .session import build_session, remove_scratch

    scratch = f"{test_environment.config.scratch_root}/session"
    session = build_session(test_environment.config, "datafirst-spark-tests", scratch)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    remove_scratch(None, scratch)


@pytest.fixture(scope="session")
def synthetic_config(pytestconfig: pytest.Config) -> Any:
    from .synthetic.config import load_synthetic_config

    return load_synthetic_config(_synthetic_conf_path(pytestconfig))


@dataclass(frozen=True)
class SyntheticRelease:
    lakehouse: Lakehouse
    release: str
    generation: dict[str, Any]


def run_job(env: TestEnvironment, job: str, args: list[str], timeout: int = 900,
            conf: Path | None = None) -> subprocess.CompletedProcess:
    """Run a job under spark-submit as a user would; the result carries its output. The
    job reads ``conf`` (default: the test environment's YAML)."""
    from .submit import spark_submit_command, spark_submit_environment

    command = spark_submit_command(env.config, job, ["--conf", str(conf or env.path), *args])
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout,
                          env=spark_submit_environment())


# the job function behind each file under jobs/ (each file only calls it)
JOB_FUNCTIONS = {
    "jobs/generate_synthetic.py": "generate_synthetic",
    "jobs/ingest.py": "ingest",
    "jobs/run_linkage.py": "run_linkage_job",
    "jobs/train_model.py": "train_model_job",
    "jobs/publish_release.py": "publish_release_job",
    "jobs/annual_refresh.py": "annual_refresh_job",
    "releases": "releases",  # the `datafirst releases` command
}


def run_job_in_session(spark: Any, env: TestEnvironment, job: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``job``'s function (a file under jobs/, or "releases") with ``args`` in ``spark`` (the test session) rather than a new
    JVM: same argument parsing, exit code and outputs; its stdout and its log lines are
    returned as the result's stdout and stderr."""
    from . import cli
    from .session import shared_session

    function = getattr(cli, JOB_FUNCTIONS[job])
    stdout, log_text = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log_text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("datafirst_spark")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    argv = ["--conf", str(env.path), *args]
    try:
        with redirect_stdout(stdout), shared_session(spark):
            code = function(argv)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return subprocess.CompletedProcess([job, *argv], code, stdout.getvalue(), log_text.getvalue())


@pytest.fixture(scope="session")
def tiny_release(spark: Any, test_environment: TestEnvironment,
                 tmp_path_factory: pytest.TempPathFactory) -> SyntheticRelease:
    lakehouse = Lakehouse.at(str(tmp_path_factory.mktemp("tiny-lakehouse")))
    result = run_job_in_session(
        spark,
        test_environment,
        "jobs/generate_synthetic.py",
        ["--lakehouse", lakehouse.root, "--release", TINY_RELEASE, "--scale", "tiny", "--seed", str(TINY_SEED)],
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        pytest.fail(f"generate_synthetic failed with exit code {result.returncode}:\n{tail}")
    generation = json.loads(Path(lakehouse.landing(TINY_RELEASE), "_generation.json").read_text())
    return SyntheticRelease(lakehouse, TINY_RELEASE, generation)


def wait_for_line(process: subprocess.Popen, log_path: Path, needle: str, timeout: float) -> bool:
    """Whether ``needle`` appears in the log a running ``process`` writes, within ``timeout``
    seconds (False as soon as the process ends without it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if log_path.exists() and needle in log_path.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False


PSEUDONYM_TEST_KEY = b"r" * 48


def copy_release(source: Lakehouse, root: Path, areas: tuple[str, ...] = ("landing", "truth")) -> Lakehouse:
    """A new lakehouse at ``root`` holding ``source``'s ``areas`` (its extracts and truth by default)."""
    import shutil

    lakehouse = Lakehouse.at(str(root))
    for area in areas:
        shutil.copytree(Path(source.area(area)), Path(lakehouse.area(area)), dirs_exist_ok=True)
    return lakehouse


def refresh_arguments(lakehouse: Lakehouse, release: str, key_file: Path, *extra: str) -> list[str]:
    return ["--lakehouse", lakehouse.root, "--release", release, "--pseudonym-key-file", str(key_file), *extra]


def report_of(result: subprocess.CompletedProcess) -> Any:
    """The JSON report whose path a job printed last; fails the test with the job's log tail."""
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        pytest.fail(f"{result.args[0]} exited {result.returncode}:\n{tail}")
    return json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())


@dataclass(frozen=True)
class RefreshedRelease:
    lakehouse: Lakehouse
    release: str
    key_file: Path
    first: dict[str, Any]  # the first run's report
    again: dict[str, Any]  # the same command's second run
    again_log: str
    manifest_rows_after_first: int


@pytest.fixture(scope="session")
def refreshed_release(spark: Any, tiny_release: SyntheticRelease, test_environment: TestEnvironment,
                      tmp_path_factory: pytest.TempPathFactory) -> RefreshedRelease:
    from .manifest import manifest_path

    key_file = tmp_path_factory.mktemp("refresh-key") / "pseudonym.key"
    key_file.write_bytes(PSEUDONYM_TEST_KEY)
    lakehouse = copy_release(tiny_release.lakehouse, tmp_path_factory.mktemp("refresh"))
    linkage = Path(__file__).resolve().parents[1] / "conf" / "linkages" / "pnc_npd.yaml"
    args = refresh_arguments(lakehouse, tiny_release.release, key_file, "--linkage", str(linkage))
    first = report_of(run_job_in_session(spark, test_environment, "jobs/annual_refresh.py", args))
    rows = spark.read.format("delta").load(manifest_path(lakehouse)).count()
    again = run_job_in_session(spark, test_environment, "jobs/annual_refresh.py", args)
    return RefreshedRelease(lakehouse, tiny_release.release, key_file, first, report_of(again), again.stderr, rows)


def parquet_dictionaries(table: Path) -> dict[str, bool]:
    """Each column path of a table's Parquet files, and whether any file writes it with a dictionary."""
    import pyarrow.parquet as pq  # imported here: only tests that read Parquet files need it

    found: dict[str, bool] = {}
    for file in table.glob("*.parquet"):
        metadata = pq.ParquetFile(file).metadata
        for g in range(metadata.num_row_groups):
            for c in range(metadata.num_columns):
                chunk = metadata.row_group(g).column(c)
                found[chunk.path_in_schema] = found.get(chunk.path_in_schema, False) or chunk.has_dictionary_page
    return found
