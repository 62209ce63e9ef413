"""The refresh benchmark harness (scripts/benchmark.py) run for real on a copy of the tiny
release with its trained model: every job a child process, as at full scale. Timings are
recorded, never asserted; what is asserted is that the result is well formed and that its
figures agree with what the jobs wrote."""

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from datafirst_spark.refresh import STAGES
from datafirst_spark.testing import copy_release

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _run_benchmark(command, lakehouse):
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                         for p in sorted(Path(lakehouse.root, "benchmark-logs").glob("*.log")))
        pytest.fail(f"benchmark exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{logs}")
    return done


@pytest.fixture(scope="module")
def benchmarked(refreshed_release, test_environment, tmp_path_factory):
    """The refresh beside two alternatives, then the third added to its result with --add-to
    (as a full-scale run adds an alternative stopped or not asked the first time)."""
    root = tmp_path_factory.mktemp("benchmark")
    lakehouse = copy_release(refreshed_release.lakehouse, root / "lakehouse", ("landing", "truth", "models"))
    results = root / "results"
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--scale", "tiny", "--lakehouse",
               lakehouse.root, "--conf", str(test_environment.path), "--results", str(results)]
    first = _run_benchmark([*command, "--note", "test run", "--alternatives", "deterministic,splink-duckdb"],
                           lakehouse)
    path = Path(first.stdout.strip().splitlines()[-1])
    before = json.loads(path.read_text())
    added = _run_benchmark([*command, "--alternatives", "splink-spark", "--add-to", str(path)], lakehouse)
    assert Path(added.stdout.strip().splitlines()[-1]) == path
    return {"path": path, "result": json.loads(path.read_text()), "before_adding": before, "lakehouse": lakehouse,
            "results": results, "refreshed": refreshed_release, "stdout": added.stdout, "command": command}


def test_result_file_is_named_for_the_day_and_scale(benchmarked):
    assert benchmarked["path"].parent == benchmarked["results"]
    result = benchmarked["result"]
    # the day it was recorded, not today's: a suite may cross midnight between the two
    recorded = datetime.fromisoformat(result["recorded_at"])
    assert recorded.tzinfo == timezone.utc and recorded <= datetime.now(timezone.utc)
    assert benchmarked["path"].name == f"{recorded:%Y-%m-%d}-refresh-tiny.json"
    assert (result["benchmark"], result["scale"], result["release"], result["notes"][0]) == \
        ("refresh", "tiny", "2025", "test run")
    assert result["machine"]["cores"] == os.cpu_count()
    assert result["versions"]["pyspark"] == "4.2.0" and result["versions"]["splink"] == "5.0.0"
    assert result["training"] is None  # the copied model was reused
    # the machine's speed, probed before and after the refresh and when the third alternative was added
    assert list(result["machine_speed"]) == ["before_refresh", "after_refresh", "adding splink-spark"]
    assert all(probe["sha256_mib_per_second"] > 0 for probe in result["machine_speed"].values())


def test_refresh_figures_agree_with_what_the_refresh_wrote(benchmarked):
    result, refreshed = benchmarked["result"], benchmarked["refreshed"]
    refresh = result["refresh"]
    assert list(refresh["stage_seconds"]) == list(STAGES)
    assert all(seconds > 0 for seconds in refresh["stage_seconds"].values())
    assert refresh["wall_seconds"] >= sum(refresh["stage_seconds"].values())
    generated = json.loads(Path(benchmarked["lakehouse"].landing("2025"), "_generation.json").read_text())
    assert result["input_rows"] == generated["rows"]["npd"] + generated["rows"]["pnc"]
    # the same records and model as the fixture's refresh: the same scored pairs
    assert refresh["rows"]["pairs_scored"] == refreshed.first["outcomes"]["link"]["counts"]["pairs"]
    assert refresh["comparisons"] == sum(r["comparisons"] for r in refresh["comparisons_by_rule"]) > 0
    assert refresh["predict_comparisons_per_second"] == round(refresh["comparisons"] / refresh["predict_seconds"])
    assert 0 < refresh["peak_driver_rss_gib"] <= refresh["peak_process_tree_rss_gib"]
    assert 0 < refresh["peak_process_tree_pss_gib"] <= refresh["peak_process_tree_rss_gib"]
    assert refresh["scratch_left_after_run"] == []
    # QA's parts are timed one by one, within the stage
    assert sorted(refresh["qa_seconds"]) == [f"qa 2025: {part}" for part in ("clerical sample", "link rates", "report")]
    assert 0 < sum(refresh["qa_seconds"].values()) <= refresh["stage_seconds"]["qa"]
    splink = {q["threshold"]: q for q in refresh["quality"]["splink"]}
    figures = refreshed.first["outcomes"]["publish"]["figures"]
    assert splink[0.9]["recall"] == pytest.approx(figures["recall@0.9"], abs=1e-5)


def test_alternatives_score_the_same_comparisons_and_are_set_beside_the_refresh(benchmarked):
    result = benchmarked["result"]
    found, pairs = result["alternatives"], result["refresh"]["rows"]["pairs_scored"]
    assert set(found) == {"deterministic", "splink_duckdb", "splink_spark_recipe"}
    assert result["alternatives_asked"] == ["deterministic", "splink-duckdb", "splink-spark"]
    # one model, one set of blocking rules: every Splink backend scores the same pairs
    assert found["splink_duckdb"]["pairs"] == found["splink_spark_recipe"]["pairs"] == pairs
    assert found["splink_duckdb"]["clusters"] == found["splink_spark_recipe"]["clusters"]
    for method, alternative in found.items():
        assert alternative["wall_seconds"] > 0 and alternative["quality"], method
        assert all(0 <= q["recall"] <= 1 and 0 <= q["precision"] <= 1 for q in alternative["quality"]), method
        assert result["ratios"][method]["their_wall_over_our_refresh"] > 0
    deterministic = {q["threshold"]: q for q in found["deterministic"]["quality"]}
    refreshed_baseline = {q["threshold"]: q for q in result["refresh"]["quality"]["deterministic"]}
    assert deterministic[1.0]["recall"] == pytest.approx(refreshed_baseline[1.0]["recall"], abs=1e-5)
    duckdb = result["ratios"]["splink_duckdb"]
    assert duckdb["predict_comparisons_per_second"] == round(result["refresh"]["comparisons"]
                                                             / found["splink_duckdb"]["seconds"]["predict"])


def test_targets_are_listed_with_their_figures(benchmarked):
    result = benchmarked["result"]
    checked = {t["target"]: t for t in result["targets"]}
    assert set(checked) == {"refresh wall time", "peak memory (process tree)", "scratch cleaned",
                            "predict throughput vs Splink on DuckDB", "refresh vs Splink's untuned Spark recipe",
                            "linkage vs Splink's untuned Spark recipe (like for like)", "cost growth medium -> full"}
    assert checked["refresh wall time"]["met"] is None  # a full-scale target
    assert checked["scratch cleaned"]["met"] is True
    assert checked["cost growth medium -> full"]["value"] is None
    for line in (json.dumps(t) for t in result["targets"]):
        assert line in benchmarked["stdout"]


def test_an_added_alternative_keeps_the_refresh_and_the_others_and_recomputes_the_targets(benchmarked):
    before, after = benchmarked["before_adding"], benchmarked["result"]
    assert set(before["alternatives"]) == {"deterministic", "splink_duckdb"}
    assert after["refresh"] == before["refresh"]
    for method in before["alternatives"]:
        assert after["alternatives"][method]["wall_seconds"] == before["alternatives"][method]["wall_seconds"]
    assert len(after["notes"]) == 2 and after["notes"][1].startswith("splink-spark added ")
    recipe = {t["target"]: t for t in after["targets"]}["refresh vs Splink's untuned Spark recipe"]
    assert recipe["value"]["speedup"] == round(after["alternatives"]["splink_spark_recipe"]["wall_seconds"]
                                               / after["refresh"]["wall_seconds"], 3)
    assert recipe["value"]["recall"] and recipe["met"] is not None
    # like for like: against the link stage's parts but the baseline and the evaluation
    like = {t["target"]: t for t in after["targets"]}["linkage vs Splink's untuned Spark recipe (like for like)"]
    parts = after["refresh"]["link_seconds"]
    ours = sum(s for name, s in parts.items()
               if name != "total" and not name.endswith(("deterministic baseline", "evaluate against truth")))
    assert like["value"]["speedup"] == round(after["alternatives"]["splink_spark_recipe"]["wall_seconds"]
                                             / round(ours, 2), 3)


def test_alternatives_are_not_added_to_the_result_of_another_lakehouse(benchmarked, tmp_path):
    other = json.loads(benchmarked["path"].read_text())
    other["refresh"]["model"]["sha256"] = "0" * 64
    path = tmp_path / "other-refresh-tiny.json"
    path.write_text(json.dumps(other))
    done = subprocess.run([*benchmarked["command"], "--alternatives", "splink-duckdb", "--add-to", str(path)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "is not the lakehouse other-refresh-tiny.json refreshed" in done.stderr
    assert json.loads(path.read_text()) == other


def test_a_lakehouse_already_refreshed_is_refused(refreshed_release, test_environment):
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--scale", "tiny", "--lakehouse",
               refreshed_release.lakehouse.root, "--conf", str(test_environment.path)]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "has been refreshed or published already" in done.stderr


def test_readme_table_row_comes_from_the_result(benchmarked):
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--table", "--results",
                            str(benchmarked["results"])], check=True, cwd=ROOT, capture_output=True, text=True)
    header, rule, row = table.stdout.strip().splitlines()
    assert header.count("|") == rule.count("|") == row.count("|")
    cells = [c.strip() for c in row.strip("|").split("|")]
    refresh = benchmarked["result"]["refresh"]
    assert cells[:3] == ["tiny", f"{benchmarked['result']['input_rows']:,}", str(refresh["wall_seconds"])]
    assert cells[-1] == f"`{benchmarked['path'].name}`"


def test_refresh_profile_comes_from_its_spark_event_log_by_stage(benchmarked):
    profile = benchmarked["result"]["refresh"]["profile"]
    assert Path(profile["event_log"]).parent == Path(benchmarked["lakehouse"].root, "benchmark-logs", "spark-events")
    rows = {r["stage"]: r for r in profile["by_stage"]}
    # the stages' names reach Spark: the link stage's jobs are found under them
    assert {"pnc_npd: predict", "pnc_npd: cluster"} <= set(rows)
    assert rows["pnc_npd: predict"]["tasks"] > 0
    assert 0 <= profile["totals"]["gc_seconds"] <= profile["totals"]["task_seconds"]
    assert profile["totals"]["task_seconds"] >= max(r["task_seconds"] for r in rows.values()) > 0
