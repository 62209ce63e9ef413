"""The annual refresh job on a copy of the tiny release: every stage recorded in the run
manifest, nothing done twice, a driver killed (SIGKILL) while publishing and the same
command run again (published once, never partly visible, the same rows as an uninterrupted
run), and bad input refused with its exit code before any Spark work."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from datafirst_spark.cli import EXIT_BAD_INPUT
from datafirst_spark.config import load_environment
from datafirst_spark.lakehouse import Lakehouse
from datafirst_spark.manifest import manifest_path
from datafirst_spark.refresh import STAGES
from datafirst_spark.release.read import list_releases, read_release_table
from datafirst_spark.release.registry import registry_rows
from datafirst_spark.release.tables import table_checksum
from datafirst_spark.submit import spark_submit_command, spark_submit_environment
from datafirst_spark.testing import (
    TestEnvironment,
    copy_release,
    refresh_arguments,
    report_of,
    run_job,
    run_job_in_session,
    wait_for_line,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PNC_NPD = ROOT / "conf" / "linkages" / "pnc_npd.yaml"
JOB = "jobs/annual_refresh.py"


def refresh_args(lakehouse, release, key_file, *extra):
    return refresh_arguments(lakehouse, release, key_file, "--linkage", str(PNC_NPD), *extra)


def manifest(spark, lakehouse):
    return spark.read.format("delta").load(manifest_path(lakehouse))


@pytest.fixture(scope="module")
def refreshed(refreshed_release):
    r = refreshed_release
    return {"lakehouse": r.lakehouse, "first": r.first, "again": r.again, "again_log": r.again_log,
            "manifest_rows_after_first": r.manifest_rows_after_first, "release": r.release, "key_file": r.key_file}


@pytest.fixture(scope="module")
def key_file(refreshed_release):
    return refreshed_release.key_file


def test_refresh_runs_every_stage_and_records_each_in_the_manifest(spark, refreshed):
    lakehouse, first = refreshed["lakehouse"], refreshed["first"]
    assert first["stages_run"] == list(STAGES)
    rows = manifest(spark, lakehouse).filter(F.col("run_id") == first["run_id"]).orderBy("recorded_at").collect()
    assert [(r["stage"], r["status"]) for r in rows] == [
        (s, status) for s in STAGES for status in ("running", "succeeded")]
    done = {r["stage"]: r for r in rows if r["status"] == "succeeded"}
    assert all(done[s]["seconds"] > 0 for s in STAGES)
    ingest = done["ingest"]["counts"]
    assert ingest["npd_input_rows"] == ingest["npd_valid_rows"] + ingest["npd_quarantined_rows"] > 0
    assert done["link"]["counts"]["pairs"] > 0 and done["publish"]["counts"]["publication"] == 1
    # the release was published, and its QA figures are there by group
    assert [r["release"] for r in list_releases(spark, lakehouse)] == [refreshed["release"]]
    qa = json.loads(Path(lakehouse.staging(refreshed["release"], "qa", "_qa.json")).read_text())
    groups = {r["group_by"] for r in qa["link_rates"]}
    assert groups == {"all", "sex", "ethnicity_group", "birth_cohort"}
    overall = {r["threshold"]: r for r in qa["link_rates"] if r["group_by"] == "all"}
    registry = list_releases(spark, lakehouse)[0]
    for threshold, row in overall.items():
        assert row["link_rate"] == pytest.approx(registry["figures"][f"link_rate@{threshold}"], abs=1e-6)


def test_running_the_refresh_again_does_nothing(spark, refreshed):
    assert refreshed["again"]["stages_run"] == []
    assert "every stage succeeded" in refreshed["again_log"]
    assert manifest(spark, refreshed["lakehouse"]).count() == refreshed["manifest_rows_after_first"]
    assert len(registry_rows(spark, refreshed["lakehouse"])) == 1


def test_only_stage_reruns_one_stage(spark, refreshed, test_environment, key_file):
    lakehouse, release = refreshed["lakehouse"], refreshed["release"]
    qa = json.loads(Path(lakehouse.staging(release, "qa", "_qa.json")).read_text())
    result = report_of(run_job_in_session(spark, test_environment, JOB,
                                          refresh_args(lakehouse, release, key_file, "--only-stage", "qa")))
    assert result["stages_run"] == ["qa"]
    assert json.loads(Path(lakehouse.staging(release, "qa", "_qa.json")).read_text()) == qa


@pytest.fixture(scope="module")
def killed_in_publish(spark, refreshed, test_environment, key_file, tmp_path_factory):
    """A second lakehouse with the same landing, truth and trained model: ingest and link in
    the test session, then the refresh through spark-submit (it resumes at publish), killed
    with SIGKILL once the first curated table is committed, then the same command again."""
    source, release = refreshed["lakehouse"], refreshed["release"]
    root = tmp_path_factory.mktemp("killed")
    lakehouse = copy_release(source, root / "lakehouse", areas=("landing", "truth", "models"))
    for stage in ("ingest", "link"):
        report_of(run_job_in_session(spark, test_environment, JOB,
                                     refresh_args(lakehouse, release, key_file, "--only-stage", stage)))
    log_path = root / "driver.log"
    conf = yaml.safe_load(test_environment.path.read_text())
    conf["scratch_root"] = str(root / "scratch")  # a killed driver cannot clean its scratch up
    conf_path = root / "env.yaml"
    conf_path.write_text(yaml.safe_dump(conf))
    command = spark_submit_command(test_environment.config, JOB,
                                   ["--conf", str(conf_path), *refresh_args(lakehouse, release, key_file)])
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=spark_submit_environment(),
                                   start_new_session=True)
    reached = wait_for_line(process, log_path, "curated table person_links: release", timeout=900)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its Python, at once
    process.wait(timeout=60)
    log_text = log_path.read_text(errors="replace")
    assert reached, log_text[-3000:]
    seen_after_kill = {"registry": registry_rows(spark, lakehouse),
                       "states": {r["stage"]: r["status"] for r in manifest(spark, lakehouse)
                                  .groupBy("stage").agg(F.max_by("status", "recorded_at").alias("status")).collect()}}
    scratch_after_kill = sorted(p.name for p in (root / "scratch").iterdir())
    # the same command again, with the same config: the same scratch root as the killed run
    same_env = TestEnvironment(load_environment(conf_path), conf_path)
    resumed = run_job_in_session(spark, same_env, JOB, refresh_args(lakehouse, release, key_file))
    return {"lakehouse": lakehouse, "log": log_text, "after_kill": seen_after_kill, "resumed": report_of(resumed),
            "resumed_log": resumed.stderr, "scratch_after_kill": scratch_after_kill,
            "scratch_after_resume": sorted(p.name for p in (root / "scratch").iterdir())}


def test_killed_run_resumed_at_publish(killed_in_publish):
    assert "resuming at stage publish" in killed_in_publish["log"]  # ingest and link were not redone
    assert killed_in_publish["after_kill"]["states"] == {"ingest": "succeeded", "link": "succeeded",
                                                         "publish": "running"}
    assert killed_in_publish["resumed"]["stages_run"] == ["publish", "qa"]
    assert "resuming at stage publish (running in run" in killed_in_publish["resumed_log"]


def test_the_killed_runs_scratch_is_removed_by_the_next_run(killed_in_publish):
    left = killed_in_publish["scratch_after_kill"]
    assert len(left) == 1 and left[0].startswith("refresh-"), left  # SIGKILL: no clean-up
    assert f"/scratch/{left[0]} removed: run {left[0]} (pid " in killed_in_publish["resumed_log"]
    assert killed_in_publish["scratch_after_resume"] == []  # and the resumed run removed its own


def test_nothing_partial_was_visible_and_the_release_is_published_once(spark, killed_in_publish, refreshed):
    assert killed_in_publish["after_kill"]["registry"] == []  # killed mid-publish: no release to readers
    lakehouse, release = killed_in_publish["lakehouse"], refreshed["release"]
    rows = registry_rows(spark, lakehouse)
    assert [(r["release"], r["publication"]) for r in rows] == [(release, 1)]
    # the same rows as the uninterrupted refresh of the same inputs with the same model
    for table in ("person_links", "persons", "person_id_lineage"):
        assert table_checksum(read_release_table(spark, lakehouse, table, release)) == \
            table_checksum(read_release_table(spark, refreshed["lakehouse"], table, release)), table


def bad_input_run(test_environment, args):
    result = run_job(test_environment, JOB, args, timeout=300)
    return result, result.stdout + result.stderr


def test_missing_input_is_refused_before_spark(test_environment, key_file, tmp_path):
    lakehouse = Lakehouse.at(str(tmp_path / "empty"))
    result, output = bad_input_run(test_environment, refresh_args(lakehouse, "2031", key_file))
    assert result.returncode == EXIT_BAD_INPUT
    assert "npd: extract not found at" in output and "spark session ready" not in output


def test_unwritable_lakehouse_is_refused_before_spark(test_environment, key_file, tmp_path):
    if os.geteuid() == 0:
        target = "/proc/datafirst-lakehouse"  # root may write anywhere a mode bit forbids; not here
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "lakehouse")
    result, output = bad_input_run(test_environment, ["--lakehouse", target, "--release", "2025",
                                                         "--pseudonym-key-file", str(key_file)])
    assert result.returncode == EXIT_BAD_INPUT
    assert f"lakehouse {target}: not writable" in output and "spark session ready" not in output


def test_invalid_config_is_refused_with_the_key_named(test_environment, key_file, tmp_path):
    data = yaml.safe_load(test_environment.path.read_text())
    data["spark"]["shuffle_partitons"] = 4
    conf = tmp_path / "bad.yaml"
    conf.write_text(yaml.safe_dump(data))
    result = run_job(test_environment, JOB, ["--release", "2025", "--pseudonym-key-file", str(key_file)],
                     timeout=300, conf=conf)
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_BAD_INPUT
    assert f"{conf}: spark.shuffle_partitons: unknown key" in output and "spark session ready" not in output
