"""Pytest fixtures for this suite and for downstream jobs (registered as a pytest plugin).

    spark                 one SparkSession for the whole test run (local[2], 2 shuffle
                          partitions, UI off, Delta and Splink's jar on the classpath)
    synthetic_config      conf/synthetic.yaml of the project under test
    test_environment      an EnvironmentConfig for jobs run by tests, and its YAML file
    tiny_release          a tiny synthetic release made by the real job through
                          spark-submit, once per test run: its lakehouse, release id and
                          generation record

Options: --datafirst-synthetic-conf PATH (default: <rootdir>/conf/synthetic.yaml).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
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


def run_job(env: TestEnvironment, job: str, args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a job under spark-submit as a user would; the result carries its output."""
    from .submit import spark_submit_command, spark_submit_environment

    command = spark_submit_command(env.config, job, ["--conf", str(env.path), *args])
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=spark_submit_environment())


@pytest.fixture(scope="session")
def tiny_release(test_environment: TestEnvironment, tmp_path_factory: pytest.TempPathFactory) -> SyntheticRelease:
    lakehouse = Lakehouse.at(str(tmp_path_factory.mktemp("tiny-lakehouse")))
    result = run_job(
        test_environment,
        "jobs/generate_synthetic.py",
        ["--lakehouse", lakehouse.root, "--release", TINY_RELEASE, "--scale", "tiny", "--seed", str(TINY_SEED)],
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        pytest.fail(f"generate_synthetic failed with exit code {result.returncode}:\n{tail}")
    generation = json.loads(Path(lakehouse.landing(TINY_RELEASE), "_generation.json").read_text())
    return SyntheticRelease(lakehouse, TINY_RELEASE, generation)
