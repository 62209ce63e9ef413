"""The linkage on the tiny synthetic release, measured against the ground truth: PNC -> NPD
with dedupe as the annual refresh's link stage ran it (training the model), the
deterministic baseline beside it, a dedupe-only linkage from its own YAML run by the
linkage job, a refused blocking rule, and a saved model that scores the same."""

import json
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from datafirst_spark.cli import EXIT_BAD_INPUT
from datafirst_spark.linkage.clustering import PAIR_COLUMNS
from datafirst_spark.linkage.model import linker_for, load_model, splink_settings
from datafirst_spark.linkage.run import REPORT_FILE, linkage_path
from datafirst_spark.linkage.spec import load_linkage_spec
from datafirst_spark.testing import SyntheticRelease, run_job_in_session

ROOT = Path(__file__).resolve().parents[2]
PNC_NPD = ROOT / "conf" / "linkages" / "pnc_npd.yaml"
PNC_DEDUPE = ROOT / "conf" / "linkages" / "pnc_dedupe.yaml"
THRESHOLD = 0.9


def run_linkage(spark, test_environment, linked_release, spec: Path, *extra: str):
    return run_job_in_session(spark, test_environment, "jobs/run_linkage.py", [
        "--lakehouse", linked_release.lakehouse.root, "--release", linked_release.release, "--linkage", str(spec),
        *extra])


def must_succeed(result):
    if result.returncode != 0:
        pytest.fail(f"exit {result.returncode}:\n" + "\n".join((result.stdout + result.stderr).splitlines()[-40:]))
    return json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())


@pytest.fixture(scope="module")
def linked_release(tiny_release, refreshed_release):
    """The tiny release as the annual refresh (a copy of its lakehouse) ingested and linked it."""
    return SyntheticRelease(refreshed_release.lakehouse, tiny_release.release, tiny_release.generation)


@pytest.fixture(scope="module")
def linked(linked_release):
    """The PNC-NPD linkage's report from the refresh's link stage (the code the linkage job runs)."""
    path = linkage_path(linked_release.lakehouse, linked_release.release, "pnc_npd", REPORT_FILE)
    return json.loads(Path(path).read_text())


def table(spark, linked_release, linkage, name):
    return spark.read.format("delta").load(linkage_path(linked_release.lakehouse, linked_release.release, linkage, name))


def quality_row(report, view, scope, method, threshold):
    rows = [r for r in report["quality"] if (r["view"], r["scope"], r["method"], r["threshold"])
            == (view, scope, method, threshold)]
    assert len(rows) == 1, (view, scope, method, threshold)
    return rows[0]


def test_linkage_trains_saves_and_reports(linked, linked_release):
    assert linked["trained_this_run"] is True
    model = Path(linked["model_path"])
    assert model.is_file() and model.parent == Path(linked_release.lakehouse.root, "models", "pnc_npd", "2025")
    assert load_model(None, str(model)).sha256 == linked["model_sha256"]
    assert json.loads((model.parent / "model.json").read_text())["sha256"] == linked["model_sha256"]
    assert linked["input_rows"] == {"npd": linked_release.generation["rows"]["npd"],
                                    "pnc": linked_release.generation["rows"]["pnc"]}
    rules = [b["rule"] for b in linked["blocking_bounds"]]
    spec_rules = load_linkage_spec(PNC_NPD).model.blocking_rules_to_generate_predictions
    assert rules == [r.description for r in spec_rules] and rules[0] == "forename_canonical & dob"
    assert all(0 < b["comparisons"] <= 5e8 for b in linked["blocking_bounds"])
    assert [c["rule"] for c in linked["blocking_counts"]] == rules
    # exact counts of the pairs predict scored: each rule's kept pairs are among its
    # comparisons, and no rule adds more than its upper bound
    for key, (count, bound) in enumerate(zip(linked["blocking_counts"], linked["blocking_bounds"], strict=False)):
        assert count["estimated"] is False
        assert linked["pairs_by_rule"].get(str(key), 0) <= count["marginal_comparisons"] <= bound["comparisons"]
    assert linked["blocking_counts"][-1]["cumulative_comparisons"] == sum(
        c["marginal_comparisons"] for c in linked["blocking_counts"])
    # every pair predict kept came from some rule, and the counts add up
    assert sum(linked["pairs_by_rule"].values()) == linked["pairs"] > 0


def test_splink_links_pnc_to_npd_precisely_and_beats_the_rules(linked):
    splink = quality_row(linked, "link", "pnc_records", "splink", THRESHOLD)
    baseline = quality_row(linked, "link", "pnc_records", "deterministic", 1.0)
    # floors the tiny release supports (about 1,700 linkable PNC records)
    assert splink["actual"] > 1000
    assert splink["precision"] >= 0.97 and splink["recall"] >= 0.9
    assert splink["recall"] >= baseline["recall"] + 0.05
    npd_dedupe = quality_row(linked, "pairs", "npd", "splink", THRESHOLD)
    assert npd_dedupe["actual"] > 100 and npd_dedupe["precision"] >= 0.9 and npd_dedupe["recall"] >= 0.6


def test_quality_is_broken_down_by_group(spark, linked, linked_release):
    quality = table(spark, linked_release, "pnc_npd", "quality")
    groups = {r["group_by"]: r["n"] for r in quality.filter("view = 'link'").groupBy("group_by")
              .agg(F.countDistinct("group_value").alias("n")).collect()}
    assert groups["all"] == 1 and groups["sex"] == 2 and groups["ethnicity_group"] >= 5
    assert groups["birth_cohort"] >= 15
    by_group = quality.filter("view = 'link' and method = 'splink' and group_by = 'ethnicity_group'")
    assert by_group.agg(F.sum("actual")).first()[0] == quality_row(linked, "link", "pnc_records", "splink",
                                                                   THRESHOLD)["actual"] * 2  # two thresholds


def same_cluster(spark, linked_release, pairs_of_ids) -> list[bool]:
    """For (pnc id, npd id) pairs: are they in one Splink cluster at THRESHOLD?"""
    clusters = table(spark, linked_release, "pnc_npd", "clusters").filter(
        (F.col("method") == "splink") & (F.col("threshold") == THRESHOLD))
    cluster_of = {(r["source_dataset"], r["source_record_id"]): r["cluster_id"] for r in clusters.collect()}
    return [cluster_of[("pnc", p)] == cluster_of[("npd", n)] for p, n in pairs_of_ids]


def truth_pairs(spark, linked_release, pnc_filter):
    truth = spark.read.format("delta").load(linked_release.lakehouse.truth(linked_release.release, "records"))
    pnc = truth.filter("source_dataset = 'pnc'").filter(pnc_filter)
    npd = truth.filter("source_dataset = 'npd'")
    joined = pnc.alias("p").join(npd.alias("n"), "true_person_id")
    return [(r[0], r[1]) for r in joined.select("p.source_record_id", "n.source_record_id").collect()]


def test_alias_only_matches_are_found(spark, linked, linked_release):
    """PNC records whose current surname is not the school one, where the school surname
    survives only as an alias."""
    records = spark.read.format("delta").load(linked_release.lakehouse.staging(linked_release.release, "pnc", "records"))
    npd = spark.read.format("delta").load(linked_release.lakehouse.staging(linked_release.release, "npd", "records"))
    pairs = truth_pairs(spark, linked_release, F.array_contains("corruptions", "surname_change"))
    aliased = (
        spark.createDataFrame(pairs, "p string, n string")
        .join(records.select(F.col("source_record_id").alias("p"), F.col("surname").alias("ps"), "aliases"), "p")
        .join(npd.select(F.col("source_record_id").alias("n"), F.col("surname").alias("ns")), "n")
        .filter((F.col("ps") != F.col("ns")) & F.exists("aliases", lambda a: a["surname"] == F.col("ns")))
    )
    found = [(r["p"], r["n"]) for r in aliased.collect()]
    assert len(found) >= 5
    assert sum(same_cluster(spark, linked_release, found)) >= 0.9 * len(found)


def test_transposed_dates_of_birth_are_found(spark, linked, linked_release):
    pairs = truth_pairs(spark, linked_release, F.array_contains("corruptions", "dob_transposed"))
    assert len(pairs) >= 5
    assert sum(same_cluster(spark, linked_release, pairs)) >= 0.9 * len(pairs)


def test_pnc_people_never_in_npd_are_not_linked(spark, linked, linked_release):
    truth = spark.read.format("delta").load(linked_release.lakehouse.truth(linked_release.release, "records"))
    in_npd = truth.filter("source_dataset = 'npd'").select("true_person_id").distinct()
    never = truth.filter("source_dataset = 'pnc'").join(in_npd, "true_person_id", "left_anti")
    clusters = table(spark, linked_release, "pnc_npd", "clusters").filter(
        (F.col("method") == "splink") & (F.col("threshold") == THRESHOLD))
    with_npd = clusters.filter("source_dataset = 'npd'").select("cluster_id").distinct()
    never_ids = never.select("source_record_id").withColumn("source_dataset", F.lit("pnc"))
    linked_anyway = clusters.join(never_ids, ["source_dataset", "source_record_id"]).join(with_npd, "cluster_id")
    assert never.count() > 200
    assert linked_anyway.count() <= 0.01 * never.count()


def test_saved_model_reloaded_scores_the_same_pairs(spark, linked, linked_release):
    spec = load_linkage_spec(PNC_NPD)
    saved = load_model(spark, linked["model_path"])
    records = {name: spark.read.format("delta").load(linked_release.lakehouse.staging(linked_release.release, name,
                                                                                     "records"))
               for name in spec.datasets}
    linker = linker_for(spark, spec, records, splink_settings(spec, saved.parameters))
    scored = [c for c in PAIR_COLUMNS if c != "excluded_by"]  # exclusions come from the spec, not the model
    again = linker.inference.predict(threshold_match_probability=spec.pairs_floor, warning_mode="never") \
        .as_spark_dataframe().select(*scored)
    stored = table(spark, linked_release, "pnc_npd", "pairs").select(*scored)
    rounded = lambda df: df.withColumn("match_weight", F.round("match_weight", 9)).withColumn(  # noqa: E731
        "match_probability", F.round("match_probability", 9))
    assert stored.count() == again.count() == linked["pairs"]
    assert rounded(stored).exceptAll(rounded(again)).count() == 0


def test_dedupe_only_linkage_runs_from_its_yaml(spark, linked, linked_release, test_environment):
    report = must_succeed(run_linkage(spark, test_environment, linked_release, PNC_DEDUPE))
    assert report["input_rows"] == {"pnc": linked_release.generation["rows"]["pnc"]}
    dedupe = quality_row(report, "pairs", "pnc", "splink", 0.95)
    assert dedupe["actual"] >= 3 and dedupe["precision"] >= 0.8 and dedupe["recall"] >= 0.5
    clusters = table(spark, linked_release, "pnc_dedupe", "clusters")
    assert clusters.count() == report["input_rows"]["pnc"]  # one threshold, one row per record


def test_an_unbounded_blocking_rule_is_refused_by_name(spark, linked_release, test_environment, tmp_path, linked):
    data = yaml.safe_load(PNC_NPD.read_text())
    data["model"]["blocking_rules_to_generate_predictions"].append({"block_on": ["sex"]})
    data["max_comparisons"] = 2.0e6
    spec = tmp_path / "unbounded.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = run_linkage(spark, test_environment, linked_release, spec)
    assert result.returncode == EXIT_BAD_INPUT
    output = result.stdout + result.stderr
    assert "prediction blocking rule [sex] would generate up to" in output
    assert "over max_comparisons 2,000,000" in output
