"""The annual refresh's pieces that need no release: which stages a run does, the JSON log
lines a scheduler reads, the link rates by group, and the package zip for --py-files."""

import json
import logging
import zipfile
from datetime import date, datetime, timezone

import pytest
from chispa import assert_df_equality

from datafirst_spark.cli import JsonLinesFormatter
from datafirst_spark.config import ConfigError
from datafirst_spark.manifest import StageState
from datafirst_spark.refresh import STAGES, RefreshRequest, link_rates_by_group, stages_to_run
from datafirst_spark.submit import build_py_files, spark_submit_command


def state(stage, status):
    return StageState(stage, status, "run-1", datetime(2026, 1, 1, tzinfo=timezone.utc))


def request(**options):
    return RefreshRequest("2025", "run-2", b"k" * 32, **options)


def test_a_new_release_runs_every_stage():
    assert stages_to_run(request(), {}) == list(STAGES)


def test_a_failed_or_killed_stage_is_where_the_next_run_starts():
    done = {"ingest": state("ingest", "succeeded"), "link": state("link", "failed")}
    assert stages_to_run(request(), done) == ["link", "publish", "qa"]
    killed = {"ingest": state("ingest", "succeeded"), "link": state("link", "succeeded"),
              "publish": state("publish", "running")}  # a driver killed mid-stage leaves 'running'
    assert stages_to_run(request(), killed) == ["publish", "qa"]


def test_a_finished_release_runs_nothing_unless_asked():
    finished = {s: state(s, "succeeded") for s in STAGES}
    assert stages_to_run(request(), finished) == []
    assert stages_to_run(request(from_stage="publish"), finished) == ["publish", "qa"]
    assert stages_to_run(request(only_stage="link"), finished) == ["link"]


def test_stage_options_are_checked():
    with pytest.raises(ConfigError, match="--from-stage train: not a stage"):
        request(from_stage="train")
    with pytest.raises(ConfigError, match="give one or the other"):
        request(from_stage="link", only_stage="qa")


def test_json_log_lines_carry_the_stage_event():
    record = logging.LogRecord("datafirst_spark.refresh", logging.INFO, __file__, 1, "stage %s: succeeded", ("link",),
                               None)
    record.__dict__.update({"event": "stage", "stage": "link", "status": "succeeded", "seconds": 12.5,
                            "counts": {"pairs": 7}, "run_id": "refresh-2025-x"})
    line = json.loads(JsonLinesFormatter().format(record))
    assert line["message"] == "stage link: succeeded" and line["level"] == "INFO"
    assert (line["stage"], line["status"], line["seconds"], line["counts"]) == ("link", "succeeded", 12.5, {"pairs": 7})
    assert line["time"].endswith("+00:00")


def test_link_rates_by_group(spark):
    links = spark.createDataFrame([
        ("pnc", "P1", 1, 0.9), ("npd", "N1", 1, 0.9),  # P1 linked
        ("pnc", "P2", 2, 0.9),                         # P2 not
        ("pnc", "P3", 3, 0.9), ("npd", "N3", 3, 0.9),  # P3 linked
    ], "source_dataset string, source_record_id string, person_id long, threshold double")
    records = spark.createDataFrame([
        ("pnc", "P1", "F", "White", date(1991, 5, 1)),
        ("pnc", "P2", "M", "White", date(1988, 2, 3)),
        ("pnc", "P3", "M", None, date(1993, 7, 9)),
    ], "source_dataset string, source_record_id string, sex string, ethnicity_group string, dob date")
    rates = link_rates_by_group(links, records, "pnc", "npd").filter("group_by in ('all', 'sex', 'ethnicity_group')")
    expected = spark.createDataFrame([
        (0.9, "all", "all", 3, 2, 0.666667),
        (0.9, "ethnicity_group", "White", 2, 1, 0.5),
        (0.9, "ethnicity_group", "unknown", 1, 1, 1.0),
        (0.9, "sex", "F", 1, 1, 1.0),
        (0.9, "sex", "M", 2, 1, 0.5),
    ], "threshold double, group_by string, group_value string, records long, linked long, link_rate double")
    assert_df_equality(rates, expected, ignore_row_order=True, ignore_nullable=True)
    cohorts = {r["group_value"]: r["records"] for r in
               link_rates_by_group(links, records, "pnc", "npd").filter("group_by = 'birth_cohort'").collect()}
    assert cohorts == {"1980s": 1, "1990s": 2}


def test_package_zip_holds_the_package_and_its_reference_tables(tmp_path):
    names = zipfile.ZipFile(build_py_files(tmp_path)).namelist()
    assert "datafirst_spark/refresh.py" in names and "datafirst_spark/__init__.py" in names
    assert any(n.startswith("datafirst_spark/reference/") and n.endswith(".csv.gz") for n in names)
    assert not any("__pycache__" in n for n in names)


def test_submit_command_for_a_cluster_ships_the_package_and_environment(test_environment, tmp_path):
    archive = tmp_path / "datafirst-env.tar.gz"
    command = spark_submit_command(test_environment.config, "jobs/annual_refresh.py", ["--release", "2025"],
                                   master="spark://127.0.0.1:7077", py_files=tmp_path / "pkg.zip", env_archive=archive)
    assert command[command.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert command[command.index("--py-files") + 1] == str(tmp_path / "pkg.zip")
    assert command[command.index("--archives") + 1] == f"{archive}#environment"
    assert "spark.pyspark.python=./environment/bin/python" in command
    assert command[-3:] == [command[-3], "--release", "2025"] and command[-3].endswith("jobs/annual_refresh.py")
