"""Two tiny releases published in sequence by the publish job: release 2025 (a copy of the
annual refresh's lakehouse, where it is published), then 2026 made by the generator's next-year mode with a planted merge and a
planted split. Checks the registry, time travel, carried person IDs, lineage, a failed
audit that publishes nothing, a republish without the flag that changes nothing, and
the research extract's de-identification."""

import json
import shutil
from functools import reduce
from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from datafirst_spark.cli import EXIT_AUDIT_FAILED, EXIT_BAD_INPUT
from datafirst_spark.deidentify import pseudonym_of
from datafirst_spark.lakehouse import AREAS
from datafirst_spark.release.read import diff_releases, list_releases, read_release_table
from datafirst_spark.release.registry import registry_path
from datafirst_spark.release.tables import table_checksum
from datafirst_spark.synthetic.generate import write_extract
from datafirst_spark.testing import PSEUDONYM_TEST_KEY, copy_release, run_job, run_job_in_session

ROOT = Path(__file__).resolve().parents[2]
PNC_NPD = ROOT / "conf" / "linkages" / "pnc_npd.yaml"
NEXT = "2026"
THRESHOLD = 0.9
CURATED = ["person_links", "persons", "quarantine", "linkage_quality", "person_id_lineage"]
KEY = PSEUDONYM_TEST_KEY  # the refresh published 2025 under it


def must_succeed(result):
    if result.returncode != 0:
        pytest.fail(f"exit {result.returncode}:\n" + "\n".join((result.stdout + result.stderr).splitlines()[-40:]))
    return json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())


@pytest.fixture(scope="module")
def key_file(refreshed_release):
    return refreshed_release.key_file


def publish(spark, env, lakehouse, release, key_file, *extra, linkage=PNC_NPD):
    # publishing runs ingest and the linkage (training on the first release) when they have not run
    return run_job_in_session(spark, env, "jobs/publish_release.py", [
        "--lakehouse", lakehouse.root, "--release", release, "--linkage", str(linkage),
        "--pseudonym-key-file", str(key_file), *extra])


def history_lengths(spark, lakehouse):
    from delta.tables import DeltaTable

    return {t: DeltaTable.forPath(spark, lakehouse.curated(t)).history().count() for t in [*CURATED, "releases"]}


def one_record_people(links):
    """person_id -> its only record, for people made of one NPD record."""
    sizes = links.groupBy("person_id").agg(F.count("*").alias("n"), F.max("source_dataset").alias("ds"),
                                           F.max("source_record_id").alias("record"))
    return sizes.filter("n = 1 and ds = 'npd'")


def plant_merge_and_split(spark, lakehouse, first_links):
    """Edit release 2026's NPD extract: one person's record made a copy of another's (a
    merge), one of a two-record person's records given a new identity (a split). Only
    people nothing else happens to in 2026 are chosen. Returns the person IDs involved."""
    people = spark.read.format("delta").load(lakehouse.truth(NEXT, "people"))
    truth = spark.read.format("delta").load(lakehouse.truth(NEXT, "records"))
    untouched = people.filter("not corrected and current_surname is null and first_release != '2026' "
                              "and (pnc_since_release is null or pnc_since_release != '2026')")
    steady = truth.join(untouched.select(F.col("person_id").alias("true_person_id")), "true_person_id") \
        .select("source_dataset", "source_record_id", "true_person_id")
    links = first_links.filter(F.col("threshold") == THRESHOLD).join(steady, ["source_dataset", "source_record_id"])
    # people whose every record is one true person's, and who hold NPD records only
    shape = links.groupBy("person_id").agg(F.count("*").alias("n"), F.countDistinct("true_person_id").alias("t"),
                                           F.max("source_dataset").alias("top"), F.min("source_dataset").alias("low"),
                                           F.sort_array(F.collect_list("source_record_id")).alias("records"))
    shape = shape.filter("t = 1 and top = 'npd' and low = 'npd'")
    singles = shape.filter("n = 1").orderBy("person_id").limit(2).collect()
    double = shape.filter("n = 2").orderBy("person_id").first()
    assert len(singles) == 2 and double is not None

    path = lakehouse.landing(NEXT, "npd")
    extract = spark.read.option("header", True).option("escape", '"').csv(path)
    source, copy = singles[0]["records"][0], singles[1]["records"][0]
    template = extract.filter(F.col("pupil_ref") == source).first()
    moved = double["records"][1]
    copied = ["forename", "middle_names", "surname", "dob", "sex", "postcode"]
    edited = extract.withColumns({
        **{c: F.when(F.col("pupil_ref") == copy, F.lit(template[c])).otherwise(F.col(c)) for c in copied},
    }).withColumns({
        "forename": F.when(F.col("pupil_ref") == moved, F.lit("Quillonette")).otherwise(F.col("forename")),
        "surname": F.when(F.col("pupil_ref") == moved, F.lit("Vandersnoot")).otherwise(F.col("surname")),
        "middle_names": F.when(F.col("pupil_ref") == moved, F.lit(None)).otherwise(F.col("middle_names")),
        "dob": F.when(F.col("pupil_ref") == moved, F.lit("02/03/1991")).otherwise(F.col("dob")),
    })
    staged = str(Path(path).with_name("npd.edited"))
    write_extract(edited, staged, "csv")
    shutil.rmtree(path)
    Path(staged).rename(path)
    return {"merged_into": min(singles[0]["person_id"], singles[1]["person_id"]),
            "merged_away": max(singles[0]["person_id"], singles[1]["person_id"]),
            "split_from": double["person_id"], "split_record": moved, "merge_record": copy}


@pytest.fixture(scope="module")
def published(spark, tiny_release, refreshed_release, test_environment, key_file, tmp_path_factory):
    lakehouse = copy_release(refreshed_release.lakehouse, tmp_path_factory.mktemp("two-releases"), AREAS)
    first = must_succeed(publish(spark, test_environment, lakehouse, tiny_release.release, key_file))
    first_links = read_release_table(spark, lakehouse, "person_links", tiny_release.release).cache()
    first_checksum = table_checksum(first_links)

    generated = run_job_in_session(spark, test_environment, "jobs/generate_synthetic.py", [
        "--lakehouse", lakehouse.root, "--release", NEXT, "--next-year-of", tiny_release.release])
    assert generated.returncode == 0, generated.stderr[-3000:]
    planted = plant_merge_and_split(spark, lakehouse, first_links)

    # an audit that cannot pass: the link rate must not move at all
    strict = yaml.safe_load(PNC_NPD.read_text())
    strict["release"]["audits"]["max_link_rate_change"] = 0.0
    strict_spec = tmp_path_factory.mktemp("strict") / "pnc_npd.yaml"
    strict_spec.write_text(yaml.safe_dump(strict))
    before_failure = history_lengths(spark, lakehouse)
    failed = publish(spark, test_environment, lakehouse, NEXT, key_file, linkage=strict_spec)
    after_failure = history_lengths(spark, lakehouse)

    second = must_succeed(publish(spark, test_environment, lakehouse, NEXT, key_file))
    before_again = history_lengths(spark, lakehouse)
    again = must_succeed(publish(spark, test_environment, lakehouse, NEXT, key_file))
    after_again = history_lengths(spark, lakehouse)
    second_links = table_checksum(read_release_table(spark, lakehouse, "person_links", NEXT))
    republished = must_succeed(publish(spark, test_environment, lakehouse, NEXT, key_file, "--republish"))
    return {"first": first, "second": second, "again": again, "failed": failed, "planted": planted,
            "republished": republished, "second_links": second_links,
            "first_checksum": first_checksum, "history": (before_failure, after_failure, before_again, after_again),
            "lakehouse": lakehouse, "release": tiny_release.release}


def test_next_year_changes_only_the_people_its_truth_names(spark, published):
    lakehouse = published["lakehouse"]
    generation = json.loads(Path(lakehouse.truth(NEXT, "_generation.json")).read_text())
    changes = generation["population_changes"]
    assert generation["previous_release"] == "2025"
    assert changes["new_people"] > 500 and changes["new_in_pnc"] > 0
    assert changes["surname_changed"] > 0 and changes["corrected"] > 0
    people = spark.read.format("delta").load(lakehouse.truth(NEXT, "people"))
    changed_people = people.filter("corrected or current_surname is not null").select(
        F.col("person_id").alias("true_person_id"))
    truth = spark.read.format("delta").load(lakehouse.truth(NEXT, "records"))
    planted = {published["planted"]["split_record"], published["planted"]["merge_record"]}
    csv = spark.read.option("header", True).option("escape", '"')
    for dataset, key in (("npd", "pupil_ref"), ("pnc", "pnc_id")):
        old, new = csv.csv(lakehouse.landing("2025", dataset)), csv.csv(lakehouse.landing(NEXT, dataset))
        differs = old.exceptAll(new).filter(~F.col(key).isin(*planted))
        assert differs.count() > 0
        unexplained = differs.join(truth, F.col(key) == F.col("source_record_id")).join(
            changed_people, "true_person_id", "left_anti")
        assert unexplained.count() == 0  # every changed record belongs to a corrected or renamed person
        assert new.select(key).distinct().count() > old.select(key).distinct().count()


def test_registry_has_one_row_per_release_naming_each_tables_version(spark, published, tiny_release):
    lakehouse = published["lakehouse"]
    releases = list_releases(spark, lakehouse)
    assert [(r["release"], r["publication"], r["previous_release"]) for r in releases] == [
        ("2025", 1, None), (NEXT, 2, "2025")]  # 2026 was republished on purpose
    first, second = releases
    assert set(first["table_versions"]) == set(CURATED)
    assert all(second["table_versions"][t] > first["table_versions"][t] for t in CURATED)
    linkage = json.loads(Path(lakehouse.staging("2025", "linkage/pnc_npd", "_linkage.json")).read_text())
    assert first["model_sha256"] == linkage["model_sha256"]
    assert second["model_sha256"] == linkage["model_sha256"]  # 2026 reused 2025's model
    assert first["input_rows"] == {"npd": tiny_release.generation["rows"]["npd"],
                                   "pnc": tiny_release.generation["rows"]["pnc"]}
    assert 0.5 < first["figures"][f"link_rate@{THRESHOLD}"] < 1 and first["figures"][f"recall@{THRESHOLD}"] > 0.9
    audits = {a["name"]: a["passed"] for a in json.loads(second["audits"])}
    assert audits == {"counts_reconcile": True, "one_person_id_per_record": True, "no_null_keys": True,
                      "figures_within_bounds": True}
    # every release commit names its release
    from delta.tables import DeltaTable
    metadata = [r["userMetadata"] for r in DeltaTable.forPath(spark, registry_path(lakehouse)).history().collect()]
    assert sorted(m for m in metadata if m) == ["release=2025", "release=2026", "release=2026"]


def test_time_travel_gives_release_one_as_published_after_release_two(spark, published):
    lakehouse = published["lakehouse"]
    again = read_release_table(spark, lakehouse, "person_links", "2025")
    assert table_checksum(again) == published["first_checksum"]
    latest = spark.read.format("delta").load(lakehouse.curated("person_links"))
    assert {r["release"] for r in latest.select("release").distinct().collect()} == {"2025", NEXT}


def test_people_whose_records_did_not_change_keep_their_ids(spark, published):
    lakehouse = published["lakehouse"]
    old = read_release_table(spark, lakehouse, "person_links", "2025")
    new = read_release_table(spark, lakehouse, "person_links", NEXT)

    def record_sets(links):
        return links.groupBy("threshold", "person_id").agg(
            F.sort_array(F.collect_list(F.concat_ws(":", "source_dataset", "source_record_id"))).alias("records"))

    same = record_sets(old).alias("o").join(record_sets(new).alias("n"), ["threshold", "records"])
    counts = same.agg(F.count("*").alias("people"),
                      F.count_if(F.col("o.person_id") == F.col("n.person_id")).alias("kept")).first()
    assert counts["people"] > 15000 and counts["kept"] == counts["people"]
    # new people got new numbers, above every 2025 ID
    largest = old.agg(F.max("person_id")).first()[0]
    lineage = read_release_table(spark, lakehouse, "person_id_lineage", NEXT)
    fresh = lineage.filter("event = 'new'")
    assert fresh.count() > 100 and fresh.agg(F.min("person_id")).first()[0] > largest


def test_lineage_records_the_planted_merge_and_split(spark, published):
    planted = published["planted"]
    lineage = read_release_table(spark, published["lakehouse"], "person_id_lineage", NEXT).filter(
        F.col("threshold") == THRESHOLD)
    merged = lineage.filter("event = 'merged'").select("person_id", "related_person_id").collect()
    assert (planted["merged_into"], planted["merged_away"]) in [tuple(r) for r in merged]
    split = lineage.filter("event = 'split'").select("person_id", "related_person_id").collect()
    assert planted["split_from"] in [r["related_person_id"] for r in split]
    links = read_release_table(spark, published["lakehouse"], "person_links", NEXT).filter(
        F.col("threshold") == THRESHOLD)
    moved = links.filter(F.col("source_record_id") == planted["split_record"]).first()["person_id"]
    assert moved != planted["split_from"] and (moved, planted["split_from"]) in [tuple(r) for r in split]
    diff = {(r["threshold"], r["event"]): r["people"]
            for r in diff_releases(spark, published["lakehouse"], "2025", NEXT).collect()}
    assert diff[(THRESHOLD, "merged")] >= 1 and diff[(THRESHOLD, "split")] >= 1
    assert diff[(THRESHOLD, "new")] == lineage.filter("event = 'new'").count()


def test_a_failed_audit_publishes_nothing(published):
    failed = published["failed"]
    before, after, _, _ = published["history"]
    assert failed.returncode == EXIT_AUDIT_FAILED
    output = failed.stdout + failed.stderr
    assert "audit figures_within_bounds failed: link_rate@0.9" in output
    assert after == before  # no commit to any curated table or the registry
    audit = json.loads(Path(published["lakehouse"].staging(NEXT, "release", "_audit.json")).read_text())
    assert audit["release"] == NEXT  # the staged rows and audit stay for inspection


def test_publishing_the_same_release_again_changes_nothing(published):
    assert published["first"]["status"] == "unchanged"  # 2025, already published by the refresh
    _, _, before, after = published["history"]
    assert published["again"]["status"] == "unchanged" and published["again"]["publication"] == 1
    assert after == before


def test_republishing_on_purpose_writes_new_versions(spark, published):
    republished, second = published["republished"], published["second"]
    assert republished["status"] == "republished" and republished["publication"] == 2
    assert all(republished["table_versions"][t] > second["table_versions"][t] for t in CURATED)
    rows = [r for r in list_releases(spark, published["lakehouse"]) if r["release"] == NEXT]
    assert rows[0]["table_versions"] == republished["table_versions"]
    # the same inputs again: the same rows, under the same person IDs
    links = read_release_table(spark, published["lakehouse"], "person_links", NEXT)
    assert table_checksum(links) == published["second_links"]


def test_research_extract_holds_no_identifier_from_the_inputs(spark, published):
    lakehouse = published["lakehouse"]

    def values(df, columns):
        return [df.select(F.upper(F.col(c).cast("string")).alias("value")) for c in columns]

    identifying, seen = [], []
    for release in ("2025", NEXT):
        for dataset in ("npd", "pnc"):
            records = spark.read.format("delta").load(lakehouse.staging(release, dataset, "records"))
            identifying += values(records, ["source_record_id", "forename", "surname", "postcode", "dob"])
            raw = spark.read.option("header", True).option("escape", '"').csv(lakehouse.landing(release, dataset))
            identifying += values(raw, ["forename", "surname", "dob", "postcode"])
        for table in ("persons", "person_links", "records", "linkage_quality"):
            df = spark.read.format("delta").load(lakehouse.research(release, table))
            seen.append(df.select(F.explode(F.array(*[F.upper(F.col(c).cast("string")) for c in df.columns]))
                                  .alias("value")))
    # category labels a surname can spell too (WHITE, BLACK) are not names
    records = spark.read.format("delta").load(lakehouse.staging("2025", "npd", "records"))
    labels = records.select(F.upper("ethnicity_group").alias("value")).distinct()
    identifying = reduce(DataFrame.unionByName, identifying).filter(F.length("value") >= 3).distinct()
    seen = reduce(DataFrame.unionByName, seen).filter("value is not null").distinct()
    assert seen.count() > 1000  # the extract is not empty: there was something to leak
    leaked = [r[0] for r in seen.join(identifying, "value").join(labels, "value", "left_anti").limit(10).collect()]
    assert not leaked, leaked


def test_pseudonyms_are_keyed_and_stable_across_releases(spark, published):
    lakehouse = published["lakehouse"]
    old = spark.read.format("delta").load(lakehouse.research("2025", "records"))
    new = spark.read.format("delta").load(lakehouse.research(NEXT, "records"))
    staged = spark.read.format("delta").load(lakehouse.staging("2025", "pnc", "records")).select(
        "source_dataset", "source_record_id").limit(50).collect()
    expected = {pseudonym_of(KEY, r[0], r[1]) for r in staged}
    other_key = {pseudonym_of(b"x" * 48, r[0], r[1]) for r in staged}
    pseudonyms = {r[0] for r in old.select("record_pseudonym").collect()}
    assert expected <= pseudonyms and not other_key & pseudonyms
    carried = old.join(new, ["source_dataset", "record_pseudonym"]).count()
    assert carried == old.count()  # every 2025 record is in 2026 under the same pseudonym


def test_cli_lists_and_diffs_releases(spark, published, test_environment):
    def cli(*args):
        result = run_job_in_session(spark, test_environment, "releases",
                                    ["--lakehouse", published["lakehouse"].root, *args])
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    assert [r["release"] for r in cli("list")] == ["2025", NEXT]
    diff = {(r["threshold"], r["event"]): r["people"] for r in cli("diff", "--from", "2025", "--to", NEXT)}
    assert diff[(THRESHOLD, "merged")] >= 1 and diff[(THRESHOLD, "carried")] > 15000
    rows = cli("read", "--release", "2025", "--table", "person_links", "--limit", "3")
    assert len(rows) == 3 and {r["release"] for r in rows} == {"2025"}


def test_publishing_without_a_key_is_refused_before_spark(tiny_release, test_environment, monkeypatch):
    monkeypatch.delenv("DATAFIRST_PSEUDONYM_KEY", raising=False)
    result = run_job(test_environment, "jobs/publish_release.py", [
        "--lakehouse", tiny_release.lakehouse.root, "--release", tiny_release.release, "--linkage", str(PNC_NPD)])
    assert result.returncode == EXIT_BAD_INPUT
    output = result.stdout + result.stderr  # under spark-submit the job's log arrives on stdout
    assert "no pseudonym key: set DATAFIRST_PSEUDONYM_KEY" in output and "spark session ready" not in output
