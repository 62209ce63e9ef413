"""The spark-submit command, the lakehouse layout and the scale plans (no Spark needed)."""

from pathlib import Path

import pytest
from splink.backends.spark import similarity_jar_location

from datafirst_spark.cli import EXIT_BAD_INPUT, EXIT_OK, submit
from datafirst_spark.config import ConfigError, load_environment
from datafirst_spark.lakehouse import Lakehouse, check_release
from datafirst_spark.session import delta_package_coordinates, sql_conf
from datafirst_spark.submit import spark_submit_command
from datafirst_spark.synthetic.config import load_synthetic_config
from datafirst_spark.synthetic.population import PopulationPlan

ROOT = Path(__file__).resolve().parents[2]


def test_delta_coordinates_match_spark_and_published_jar():
    assert delta_package_coordinates() == "io.delta:delta-spark_4.2_2.13:4.4.0"


def test_submit_command_carries_packages_jars_memory_and_extra_settings():
    env = load_environment(ROOT / "conf" / "local.yaml")
    command = spark_submit_command(env, "jobs/generate_synthetic.py", ["--release", "2025"])
    assert command[0].endswith("spark-submit")
    joined = " ".join(command)
    assert "--master local[2]" in joined
    assert f"--packages {delta_package_coordinates()}" in joined
    assert f"--jars {similarity_jar_location()}" in joined
    assert "--driver-memory 14g" in joined
    assert "--conf spark.driver.extraJavaOptions=-XX:-DontCompileHugeMethods -XX:+UseTransparentHugePages" in joined
    assert command[-3:] == [str(ROOT / "jobs" / "generate_synthetic.py"), "--release", "2025"]


def test_cluster_submit_sizes_executors():
    env = load_environment(ROOT / "conf" / "cluster.yaml")
    joined = " ".join(spark_submit_command(env, "jobs/generate_synthetic.py", []))
    assert "--master yarn" in joined and "--executor-memory 16g" in joined and "--executor-cores 4" in joined


def test_submit_dry_run_and_missing_job(capsys):
    assert submit(["--dry-run", "--conf", str(ROOT / "conf" / "local.yaml"), str(ROOT / "jobs" / "generate_synthetic.py"), "--", "--release", "1"]) == EXIT_OK
    assert capsys.readouterr().out.rstrip().endswith("generate_synthetic.py --release 1")
    assert submit(["--conf", str(ROOT / "conf" / "local.yaml"), "jobs/nope.py"]) == EXIT_BAD_INPUT


def test_lakehouse_layout(tmp_path):
    lakehouse = Lakehouse.at(str(tmp_path))
    assert lakehouse.landing("2025", "npd") == f"{tmp_path}/landing/2025/npd"
    assert lakehouse.truth("2025", "records") == f"{tmp_path}/truth/2025/records"
    assert lakehouse.curated("persons") == f"{tmp_path}/curated/persons"
    assert Lakehouse.at("s3a://bucket/root/").research("2025") == "s3a://bucket/root/research/2025"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 65, "with space"])
def test_bad_release_ids_are_refused(bad):
    with pytest.raises(ConfigError, match="release"):
        check_release(bad)


@pytest.mark.parametrize("scale", ["tiny", "small", "medium", "full"])
def test_scale_plans_add_up_to_the_configured_counts(scale):
    config = load_synthetic_config(ROOT / "conf" / "synthetic.yaml")
    spec = config.scale(scale)
    plan = PopulationPlan.for_scale(config, spec)
    expected_npd = plan.school_people * (1 + config.npd.duplicate_pupil_rate)
    expected_pnc = plan.pnc_people * (1 + config.pnc.duplicate_person_rate)
    assert abs(expected_npd - spec.npd_records) <= 1
    assert abs(expected_pnc - spec.pnc_records) <= 1
    assert plan.never_in_npd + plan.school_offenders_expected == plan.pnc_people
    assert abs(plan.never_in_npd / plan.pnc_people - config.pnc.never_in_npd_share) < 0.001


def test_sql_conf_holds_its_settings_for_the_block_only_even_when_it_fails(spark):
    set_before, unset = "spark.sql.ansi.enabled", "spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold"
    spark.conf.unset(unset)
    ansi = spark.conf.get(set_before)
    flipped = "false" if ansi == "true" else "true"
    with pytest.raises(RuntimeError), sql_conf(spark, {set_before: flipped, unset: "64m"}):
        assert spark.conf.get(set_before) == flipped
        assert spark.conf.get(unset) in ("64m", str(64 << 20))
        raise RuntimeError("inside")
    assert spark.conf.get(set_before) == ansi
    assert spark.conf.get(unset) in ("0", "0b")  # back to its default
