"""The refresh benchmark's parts that need no Spark: the model's SQL in DuckDB's dialect
(run in DuckDB), the fitted cost exponent, the ratios and the targets."""

import json
from pathlib import Path

import duckdb
import pytest

from datafirst_spark.benchmarking import folder_bytes
from datafirst_spark.benchmarking.alternatives import (
    duckdb_settings,
    scoring_settings,
    to_duckdb_sql,
)
from datafirst_spark.benchmarking.refresh import (
    cost_exponent,
    new_result_path,
    previous_result,
    ratios,
    results_table,
    targets,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("condition", "left", "right", "expected"),
    [
        ("jaro_winkler(forename_l, forename_r) >= 0.92", "MARTHA", "MARHTA", True),
        ("jaro_winkler(forename_l, forename_r) >= 0.92", "MARTHA", "JOHN", False),
        ("arrays_overlap(all_forenames_l, all_forenames_r)", ["BILL", "WILLIAM"], ["WILLIAM"], True),
        ("arrays_overlap(all_forenames_l, all_forenames_r)", ["BILL"], ["ROBERT"], False),
        ("array_contains(all_forenames_r, forename_l)", "BILL", ["BILL", "WILLIAM"], True),
        ("abs(datediff(dob_l, dob_r)) <= 1", "2001-03-04", "2001-03-05", True),
        ("abs(datediff(dob_l, dob_r)) <= 1", "2001-03-04", "2001-03-07", False),
        ("length(forename_l) >= 3 AND instr(forename_l, forename_r) > 0", "ANNABEL", "ANNA", True),
    ],
)
def test_model_conditions_mean_the_same_in_duckdb(condition, left, right, expected):
    sql = to_duckdb_sql(condition)
    columns = {"forename": "VARCHAR", "all_forenames": "VARCHAR[]", "dob": "DATE"}
    column = next(c for c in columns if f"{c}_l" in condition)
    other = next(c for c in columns if f"{c}_r" in condition)
    con = duckdb.connect()
    value = con.execute(
        f"SELECT {sql} FROM (SELECT CAST(? AS {columns[column]}) AS {column}_l, CAST(? AS {columns[other]}) AS {other}_r)",
        [left, right]).fetchall()[0][0]
    assert value is expected, sql


def test_a_saved_model_becomes_duckdb_settings_without_touching_the_original():
    model = {
        "sql_dialect": "spark",
        "comparisons": [{"output_column_name": "forename", "comparison_levels": [
            {"sql_condition": "forename_l IS NULL OR forename_r IS NULL", "is_null_level": True},
            {"sql_condition": "jaro_winkler(forename_l, forename_r) >= 0.8"},
            {"sql_condition": "ELSE"}]}],
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": "(l.`surname` = r.`surname`) AND (l.`dob` = r.`dob`)", "sql_dialect": "spark"}],
    }
    original = json.dumps(model, sort_keys=True)
    settings = duckdb_settings(model)
    assert json.dumps(model, sort_keys=True) == original
    assert settings["sql_dialect"] == "duckdb"
    levels = [level["sql_condition"] for level in settings["comparisons"][0]["comparison_levels"]]
    assert levels[1] == "jaro_winkler_similarity(forename_l, forename_r) >= 0.8"
    assert levels[2] == "ELSE"
    rule = settings["blocking_rules_to_generate_predictions"][0]
    assert rule == {"blocking_rule": '(l."surname" = r."surname") AND (l."dob" = r."dob")', "sql_dialect": "duckdb"}


def test_the_repository_model_conditions_all_parse_in_duckdb():
    """Every condition of the shipped linkage, transpiled, is valid DuckDB (prepared, not run)."""
    import yaml

    spec = yaml.safe_load((ROOT / "conf" / "linkages" / "pnc_npd.yaml").read_text())
    con = duckdb.connect()
    con.execute("CREATE TABLE t (forename VARCHAR, surname VARCHAR, forename_canonical VARCHAR, forename_dm VARCHAR,"
                " surname_dm VARCHAR, dob DATE, dob_year INT, dob_month INT, dob_day INT, postcode VARCHAR,"
                " postcode_sector VARCHAR, postcode_district VARCHAR, postcode_area VARCHAR, sex VARCHAR,"
                " record_source VARCHAR, all_forenames VARCHAR[], all_surnames VARCHAR[], all_dobs DATE[],"
                " given_name_tokens VARCHAR[], surname_tokens VARCHAR[])").fetchall()
    pair = ", ".join(f"t.{c} AS {c}_{side}" for c in [r[0] for r in con.execute("DESCRIBE t").fetchall()]
                     for side in ("l", "r"))
    conditions = [level["sql_condition"] for comparison in spec["model"]["comparisons"]
                  for level in comparison["comparison_levels"] if level["sql_condition"] != "ELSE"]
    assert len(conditions) > 20
    for condition in conditions:
        con.execute(f"SELECT count(*) FROM (SELECT {pair} FROM t) WHERE {to_duckdb_sql(condition)}").fetchall()


@pytest.mark.parametrize("compare_unknown", [False, True])
def test_the_alternatives_block_as_the_refresh_does_with_the_within_dataset_condition(compare_unknown):
    from datafirst_spark.linkage.model import splink_settings
    from datafirst_spark.linkage.spec import load_linkage_spec

    spec = load_linkage_spec(ROOT / "conf" / "linkages" / "pnc_npd.yaml")
    spec = spec.model_copy(update={"model": spec.model.model_copy(
        update={"within_dataset_compare_unknown": compare_unknown})})
    model = splink_settings(spec)
    model["blocking_rules_to_generate_predictions"] = [{"blocking_rule": "l.dob = r.dob", "sql_dialect": "spark"}]
    settings = duckdb_settings(scoring_settings(spec, model))
    assert len(settings["blocking_rules_to_generate_predictions"]) == len(spec.model.blocking_rules_to_generate_predictions)
    first = settings["blocking_rules_to_generate_predictions"][0]["blocking_rule"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('n1', 'npd', 'JACK', DATE '2001-05-04', 'B'), "
                "('n2', 'npd', 'JACK', DATE '2001-05-04', 'M'), ('n3', 'npd', 'JACK', DATE '2001-05-04', 'M'), "
                "('n4', 'npd', 'JACK', DATE '2001-05-04', NULL), ('p1', 'pnc', 'JACK', DATE '2001-05-04', NULL)) "
                "v(id, record_source, forename_canonical, dob, postcode_area)").fetchall()
    pairs = con.execute(f"SELECT l.id, r.id FROM t AS l JOIN t AS r ON {first} WHERE l.id < r.id ORDER BY 1, 2").fetchall()
    # NPD records pair only within a postcode area (n4, with none, with no other NPD record
    # unless the unknown are compared); the PNC record pairs with every one
    expected = [("n1", "p1"), ("n2", "n3"), ("n2", "p1"), ("n3", "p1"), ("n4", "p1")]
    if compare_unknown:
        expected += [("n1", "n4"), ("n2", "n4"), ("n3", "n4")]
    assert pairs == sorted(expected)


def test_cost_exponent_through_two_points():
    assert cost_exponent(1_000_000, 100.0, 10_000_000, 1000.0) == 1.0
    assert cost_exponent(1_000_000, 100.0, 10_000_000, 100.0 * 10**1.15) == 1.15
    assert cost_exponent(1_665_000, 1200.0, 16_650_000, 6000.0) == pytest.approx(0.699, abs=1e-3)


def _result(scale="full", wall=3000.0, peak=12.0, left=(), duckdb_predict=10.0, recipe_wall=9500.0,
            recipe_recall=0.98):
    quality = [{"threshold": 0.9, "precision": 0.998, "recall": 0.984, "f1": 0.99}]
    return {
        "scale": scale, "input_rows": 16_650_000,
        "refresh": {"wall_seconds": wall, "peak_process_tree_rss_gib": peak, "scratch_left_after_run": list(left),
                    "stage_seconds": {"ingest": 900.0, "link": 1200.0, "publish": 600.0, "qa": 300.0},
                    "link_seconds": {"x: bound blocking rules": 200.0, "x: predict": 400.0, "x: cluster": 200.0,
                                     "x: deterministic baseline": 100.0, "x: evaluate against truth": 300.0,
                                     "total": 1200.0},
                    "comparisons": 1_000_000, "predict_comparisons_per_second": 80_000,
                    "quality": {"splink": quality, "deterministic": []}},
        "alternatives": {
            "splink_duckdb": {"wall_seconds": 200.0, "seconds": {"predict": duckdb_predict}, "quality": quality},
            "splink_spark_recipe": {"wall_seconds": recipe_wall, "seconds": {"predict": 4000.0},
                                    "quality": [{"threshold": 0.9, "precision": 0.98, "recall": recipe_recall,
                                                 "f1": 0.98}]},
            "deterministic": {"wall_seconds": 300.0, "seconds": {},
                              "quality": [{"threshold": 1.0, "precision": 0.998, "recall": 0.876, "f1": 0.93}]},
        },
    }


def by_name(checked):
    return {t["target"]: t for t in checked}


def test_ratios_put_each_alternative_beside_the_refresh():
    result = _result()
    found = ratios(result)
    # ours 80k/s against DuckDB's 1M comparisons in 10 s
    assert found["splink_duckdb"]["predict_comparisons_per_second"] == 100_000
    assert found["splink_duckdb"]["predict_throughput_ours_over_theirs"] == 0.8
    assert found["splink_spark_recipe"]["their_wall_over_our_refresh"] == round(9500 / 3000, 3)
    assert found["splink_spark_recipe"]["their_wall_over_our_link_stage"] == round(9500 / 1200, 3)
    # bounds, predict and clusters: the baseline and the evaluation have no counterpart in the recipe
    assert found["splink_spark_recipe"]["our_linkage_seconds"] == 800.0
    assert found["splink_spark_recipe"]["their_wall_over_our_linkage"] == round(9500 / 800, 3)
    assert found["splink_spark_recipe"]["recall"]["0.9"]["ours_minus_theirs_points"] == 0.4
    # the baseline's one threshold is set beside each of ours
    assert found["deterministic"]["recall"]["0.9"]["ours_minus_theirs_points"] == 10.8


def test_targets_met_and_missed_by_their_figures():
    result = _result()
    result["ratios"] = ratios(result)
    met = by_name(targets(result, {"input_rows": 1_665_000, "refresh": {"wall_seconds": 300.0}}))
    assert met["refresh wall time"]["met"] is True
    assert met["peak memory (process tree)"]["met"] is True
    assert met["scratch cleaned"]["met"] is True
    assert met["predict throughput vs Splink on DuckDB"]["met"] is True
    assert met["refresh vs Splink's untuned Spark recipe"]["met"] is True
    assert met["cost growth medium -> full"]["value"] == 1.0 and met["cost growth medium -> full"]["met"] is True

    result = _result(wall=4000.0, peak=21.0, left=["refresh-x"], duckdb_predict=5.0, recipe_wall=9000.0,
                     recipe_recall=0.995)
    result["ratios"] = ratios(result)
    missed = by_name(targets(result, None))
    assert [missed[name]["met"] for name in ("refresh wall time", "peak memory (process tree)", "scratch cleaned",
                                             "predict throughput vs Splink on DuckDB",
                                             "refresh vs Splink's untuned Spark recipe",
                                             "linkage vs Splink's untuned Spark recipe (like for like)")] == [False] * 6
    assert missed["cost growth medium -> full"] == {"target": "cost growth medium -> full", "goal": "exponent <= 1.15",
                                                    "value": None, "met": None}


def test_the_recipe_target_is_checked_on_the_whole_refresh_and_like_for_like():
    # the recipe as long as our refresh: 1x the whole refresh, 3000/800 = 3.75x the linkage it also does
    result = _result(recipe_wall=3000.0)
    result["ratios"] = ratios(result)
    checked = by_name(targets(result, None))
    assert checked["refresh vs Splink's untuned Spark recipe"]["met"] is False
    like = checked["linkage vs Splink's untuned Spark recipe (like for like)"]
    assert like["value"]["speedup"] == 3.75 and like["met"] is True
    # a result without the link stage's parts (older results) has no like-for-like figure
    del result["refresh"]["link_seconds"]
    result["ratios"] = ratios(result)
    assert "their_wall_over_our_linkage" not in result["ratios"]["splink_spark_recipe"]
    assert by_name(targets(result, None))["linkage vs Splink's untuned Spark recipe (like for like)"]["met"] is None


def test_wall_time_target_applies_at_full_scale_only():
    result = _result(scale="medium", wall=4000.0)
    result["ratios"] = ratios(result)
    assert by_name(targets(result, None))["refresh wall time"]["met"] is None


def test_a_second_run_on_one_day_keeps_the_first_and_is_the_latest(tmp_path):
    from datetime import UTC, datetime

    morning, evening = (datetime(2026, 12, 4, hour, 5, 9, tzinfo=UTC) for hour in (4, 18))
    first = new_result_path(tmp_path, "full", morning)
    assert first.name == "2026-12-04-refresh-full.json"
    first.write_text(json.dumps(_result(wall=6000.0) | {"recorded_at": morning.isoformat(), "ratios": {}}))
    second = new_result_path(tmp_path, "full", evening)
    assert second.name == "2026-12-04-180509-refresh-full.json"
    # named so that it sorts before the first: the latest is the one recorded last
    second.write_text(json.dumps(_result(wall=4000.0) | {"recorded_at": evening.isoformat(), "ratios": {}}))
    assert previous_result(tmp_path, "full")["refresh"]["wall_seconds"] == 4000.0
    rows = results_table(tmp_path).splitlines()[2:]
    assert len(rows) == 1 and "| 4000.0 |" in rows[0] and second.name in rows[0]


def test_the_table_shows_peak_pss_and_marks_rss_from_results_without_it(tmp_path):
    with_pss = _result(scale="full", wall=5000.0, peak=24.7)
    with_pss["refresh"]["peak_process_tree_pss_gib"] = 15.7
    without = _result(scale="medium", wall=800.0, peak=10.9) | {"input_rows": 1_665_000}
    for name, result in (("2026-12-04-refresh-full.json", with_pss), ("2026-12-02-refresh-medium.json", without)):
        (tmp_path / name).write_text(json.dumps(result | {"recorded_at": "2026-12-04T00:00:00+00:00", "ratios": {}}))
    header, _, medium, full = results_table(tmp_path).splitlines()
    assert "| peak GiB (PSS) |" in header
    assert "| 15.7 |" in full and "24.7" not in full
    assert "| 10.9 (RSS) |" in medium


def test_folder_bytes_counts_files_below_and_is_zero_for_a_missing_folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one").write_bytes(b"x" * 10)
    (tmp_path / "a" / "b" / "two").write_bytes(b"y" * 5)
    assert folder_bytes(tmp_path) == 15
    assert folder_bytes(tmp_path / "missing") == 0


def test_a_page_shared_by_forked_processes_counts_once_in_the_tree_pss(tmp_path):
    import sys

    from datafirst_spark.benchmarking import run_measured

    # 300 MiB touched, then a fork that shares it: RSS summed over the tree counts it twice
    script = ("import os, time; block = bytearray(300 * 2**20); pid = os.fork(); time.sleep(2.5); "
              "pid and os.waitpid(pid, 0)")
    measured = run_measured([sys.executable, "-c", script], tmp_path / "log", tmp_path, sample_seconds=0.2,
                            pss_every=2)  # PSS every 0.4 s: the run lasts 2.5 s
    assert measured.returncode == 0
    mib = 2**20
    assert measured.peak_rss_bytes > 550 * mib
    assert 280 * mib < measured.peak_pss_bytes < 450 * mib
    assert measured.peak_machine_used_bytes > measured.peak_pss_bytes


def test_the_speed_probe_times_its_three_pieces_of_work():
    from datafirst_spark.benchmarking import speed_probe

    probe = speed_probe()
    assert set(probe) == {"sha256_mib_per_second", "memory_copy_mib_per_second", "python_loop_seconds"}
    assert all(value > 0 for value in probe.values())


def test_a_failed_job_is_told_apart_from_an_unusable_lakehouse_and_names_its_log(tmp_path):
    import sys

    from datafirst_spark.benchmarking.refresh import JobFailed, _measure

    log = tmp_path / "job.log"
    with pytest.raises(JobFailed, match=f"failed with exit code 3; see {log}"):
        _measure([sys.executable, "-c", "import sys; sys.exit(3)"], log)


def test_the_script_exits_1_for_a_failed_job_and_2_for_any_other_refusal(tmp_path, monkeypatch, capsys):
    import importlib.util
    import sys

    from datafirst_spark.benchmarking.refresh import BenchmarkError, JobFailed

    loader = importlib.util.spec_from_file_location("benchmark_script", ROOT / "scripts" / "benchmark.py")
    script = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "--scale", "tiny", "--lakehouse", str(tmp_path),
                                      "--alternatives", ""])
    for error, code in ((JobFailed("annual_refresh.py failed"), 1), (BenchmarkError("no release here"), 2)):
        def refuse(request, error=error):
            raise error
        monkeypatch.setattr(script, "run_benchmark", refuse)
        assert script.main() == code
        assert f"error: {error}" in capsys.readouterr().err


def _write_event_log(path, events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_profile_attributes_each_task_to_the_stage_that_started_its_job(tmp_path):
    from datafirst_spark.benchmarking.profile import NO_STAGE, profile_event_log

    def job(job_id, stages, start, end, stage=None, description=None):
        properties = {k: v for k, v in (("datafirst.stage", stage), ("spark.job.description", description)) if v}
        return [{"Event": "SparkListenerJobStart", "Job ID": job_id, "Submission Time": start, "Stage IDs": stages,
                 "Properties": properties},
                {"Event": "SparkListenerJobEnd", "Job ID": job_id, "Completion Time": end}]

    def task(stage, run_ms, gc_ms, spilled=0, launch=0, finish=0):
        return {"Event": "SparkListenerTaskEnd", "Stage ID": stage,
                "Task Info": {"Launch Time": launch, "Finish Time": finish},
                "Task Metrics": {"Executor Run Time": run_ms, "Executor CPU Time": run_ms * 500_000,
                                 "JVM GC Time": gc_ms, "Disk Bytes Spilled": spilled,
                                 "Shuffle Read Metrics": {"Remote Bytes Read": 0, "Local Bytes Read": 10},
                                 "Shuffle Write Metrics": {"Shuffle Bytes Written": 7}}}

    log = tmp_path / "app-1"
    _write_event_log(log, [
        {"Event": "SparkListenerExecutorAdded", "Executor Info": {"Total Cores": 2}},
        # two jobs of one stage, overlapping by a second: 3 s of wall time, not 4
        # the second as Delta describes its own jobs: the stage property still says whose it is
        *job(0, [0], 1_000, 3_000, "pnc_npd: predict", "pnc_npd: predict"),
        *job(1, [1], 2_000, 4_000, "pnc_npd: predict", "Delta: pnc_npd: predict: Compute snapshot"),
        *job(2, [2], 5_000, 5_500),
        task(0, 4_000, 1_000, spilled=100, launch=1_000, finish=2_500), task(1, 2_000, 0),
        task(2, 500, 0),
    ])
    profile = profile_event_log(log)
    rows = {r["stage"]: r for r in profile["by_stage"]}
    assert list(rows) == ["pnc_npd: predict", NO_STAGE]  # most task time first
    predict = rows["pnc_npd: predict"]
    assert (predict["jobs"], predict["tasks"], predict["jobs_wall_seconds"]) == (2, 2, 3.0)
    assert (predict["task_seconds"], predict["cpu_seconds"], predict["gc_seconds"]) == (6.0, 3.0, 1.0)
    assert (predict["spilled_bytes"], predict["shuffle_read_bytes"], predict["shuffle_write_bytes"]) == (100, 20, 14)
    assert predict["longest_task_seconds"] == 1.5
    assert profile["totals"]["task_seconds"] == 6.5 and profile["cores"] == 2
    assert profile["gc_share_of_task_time"] == round(1.0 / 6.5, 3)


def test_event_log_conf_keeps_the_defaults_in_force_and_replaces_their_event_log(tmp_path, monkeypatch):
    from datafirst_spark.benchmarking.profile import spark_conf_dir_with_event_log

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "spark-defaults.conf").write_text("spark.driver.cores 2\nspark.eventLog.enabled false\n")
    monkeypatch.setenv("SPARK_CONF_DIR", str(existing))
    folder = spark_conf_dir_with_event_log(tmp_path / "conf", tmp_path / "events")
    lines = (folder / "spark-defaults.conf").read_text().splitlines()
    assert lines == ["spark.driver.cores 2", "spark.eventLog.enabled true",
                     f"spark.eventLog.dir {(tmp_path / 'events').as_uri()}", "spark.eventLog.compress false"]
    assert (tmp_path / "events").is_dir()


def test_a_rolling_event_log_is_read_in_order_and_only_once_its_application_finished(tmp_path):
    from datafirst_spark.benchmarking.profile import latest_event_log, profile_event_log

    def rolling(app, finished, parts):
        folder = tmp_path / f"eventlog_v2_{app}"
        folder.mkdir()
        (folder / f"appstatus_{app}{'' if finished else '.inprogress'}").touch()
        for n, events in parts.items():
            _write_event_log(folder / f"events_{n}_{app}", events)
        return folder

    start = {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": 0, "Stage IDs": [0],
             "Properties": {"datafirst.stage": "ingest"}}
    end = {"Event": "SparkListenerTaskEnd", "Stage ID": 0, "Task Info": {}, "Task Metrics": {"Executor Run Time": 2_000}}
    # part 10 after part 2: a name sort would read the task before its job started
    done = rolling("local-1", True, {2: [start], 10: [end]})
    assert latest_event_log(tmp_path) == done
    rolling("local-2", False, {1: [start]})  # still running: not a finished log
    assert latest_event_log(tmp_path) == done
    rows = profile_event_log(done)["by_stage"]
    assert [(r["stage"], r["tasks"], r["task_seconds"]) for r in rows] == [("ingest", 1, 2.0)]


def test_profile_table_lists_the_stages_with_most_task_time_then_the_totals():
    from datafirst_spark.benchmarking.profile import profile_table

    def row(stage, task_seconds, spilled):
        return {"stage": stage, "jobs_wall_seconds": task_seconds / 2, "task_seconds": task_seconds,
                "cpu_seconds": task_seconds - 1, "gc_seconds": 1.0, "spilled_bytes": spilled,
                "shuffle_write_bytes": 2**30, "input_bytes": 0, "longest_task_seconds": 3.0}

    profile = {"by_stage": [row("pnc_npd: predict", 400.0, 3 * 2**29), row("npd: read", 100.0, 0)],
               "totals": {"task_seconds": 500.0, "cpu_seconds": 498.0, "gc_seconds": 2.0,
                          "spilled_bytes": 3 * 2**29, "shuffle_write_bytes": 2**31, "input_bytes": 0}}
    lines = profile_table(profile, rows=1).splitlines()
    assert len(lines) == 4  # header, rule, the one stage asked for, totals
    assert lines[2] == "| pnc_npd: predict | 200.0 | 400.0 | 399.0 | 1.0 | 1.50 | 1.00 | 0.00 | 3.0 |"
    assert lines[3] == "| all stages | - | 500.0 | 498.0 | 2.0 | 1.50 | 2.00 | 0.00 | - |"


def test_an_unreadable_event_log_gives_a_profile_that_says_why(tmp_path):
    from datafirst_spark.benchmarking.refresh import _profile

    assert "no finished Spark event log" in _profile(None, tmp_path)["error"]
    broken = tmp_path / "app-1"
    broken.write_text('{"Event": "SparkListenerJobStart"\n')  # cut off mid-line
    assert _profile(broken, tmp_path)["error"].startswith("JSONDecodeError")
