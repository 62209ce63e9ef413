"""The tiny synthetic release, made by the real job through spark-submit."""

import re
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from datafirst_spark.lakehouse import AREAS
from datafirst_spark.synthetic.extracts import NPD_COLUMNS, PNC_COLUMNS, NPD_DATE_FORMAT, PNC_DATE_FORMAT
from datafirst_spark.synthetic.postcodes import PLACEHOLDER

pytestmark = pytest.mark.integration

POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9]{1,2} [0-9][A-Z]{2}$")


def read_extract(spark, release, source):
    return (
        spark.read.option("header", True).option("escape", '"')
        .csv(release.lakehouse.landing(release.release, source))
    )


@pytest.fixture(scope="module")
def npd(spark, tiny_release):
    return read_extract(spark, tiny_release, "npd").cache()


@pytest.fixture(scope="module")
def pnc(spark, tiny_release):
    return read_extract(spark, tiny_release, "pnc").cache()


@pytest.fixture(scope="module")
def truth(spark, tiny_release):
    return spark.read.format("delta").load(tiny_release.lakehouse.truth(tiny_release.release, "records")).cache()


@pytest.fixture(scope="module")
def people(spark, tiny_release):
    return spark.read.format("delta").load(tiny_release.lakehouse.truth(tiny_release.release, "people")).cache()


def test_extracts_arrive_with_their_own_headers_and_no_truth(npd, pnc):
    assert npd.columns == NPD_COLUMNS
    assert pnc.columns == PNC_COLUMNS
    assert "true_person_id" not in npd.columns + pnc.columns


def test_generation_record_names_its_parameters(tiny_release):
    record = tiny_release.generation
    assert (record["release"], record["scale"], record["seed"]) == ("2025", "tiny", 7)
    assert record["code_version"].startswith("0.1.0")
    assert record["config"]["corruption"]["pnc"]["nickname"] == 0.08
    assert set(record["stage_seconds"]) >= {"population", "npd_records", "pnc_records", "truth_records"}


def test_counts_match_the_scale(npd, pnc, tiny_release):
    assert npd.count() == tiny_release.generation["rows"]["npd"]
    assert abs(npd.count() - 20_000) / 20_000 < 0.02
    assert abs(pnc.count() - 2_200) / 2_200 < 0.06


def test_every_extract_record_has_exactly_one_truth_row(npd, pnc, truth):
    keys = npd.select(F.lit("npd").alias("source_dataset"), F.col("pupil_ref").alias("source_record_id")).unionByName(
        pnc.select(F.lit("pnc").alias("source_dataset"), F.col("pnc_id").alias("source_record_id"))
    )
    assert keys.count() == keys.distinct().count()  # record keys are unique
    assert truth.count() == truth.select("source_dataset", "source_record_id").distinct().count()
    on = ["source_dataset", "source_record_id"]
    assert keys.join(truth, on, "left_anti").count() == 0
    assert truth.join(keys, on, "left_anti").count() == 0


def test_about_a_fifth_of_pnc_people_were_never_in_npd(truth):
    pnc_people = truth.filter("source_dataset = 'pnc'").select("true_person_id").distinct()
    npd_people = truth.filter("source_dataset = 'npd'").select("true_person_id").distinct()
    never = pnc_people.join(npd_people, "true_person_id", "left_anti").count() / pnc_people.count()
    assert 0.16 < never < 0.24


def test_some_pupils_and_offenders_appear_twice(truth):
    per_person = truth.groupBy("source_dataset", "true_person_id").count().filter("count = 2")
    twice = dict(per_person.groupBy("source_dataset").count().collect())
    assert 150 < twice["npd"] < 450  # 1.5% of ~19.7k pupils
    assert twice.get("pnc", 0) >= 1


def test_surnames_are_long_tailed_and_skewed(npd):
    surnames = npd.select(F.upper("surname").alias("s")).groupBy("s").count()
    n = npd.count()
    distinct = surnames.count()
    top = surnames.orderBy(F.desc("count")).limit(10).collect()
    singletons = surnames.filter("count = 1").count()
    assert distinct > 0.2 * n  # a long tail of rare names
    assert singletons > 0.3 * distinct  # measured 39% at tiny; name pools stop at 15k British surnames
    assert 0.005 < top[0]["count"] / n < 0.03  # the commonest is common, not dominant
    assert sum(r["count"] for r in top) / n < 0.12


def test_families_share_surname_and_address_and_twins_exist(people):
    families = people.filter("in_npd_cohorts").groupBy("family_id").agg(
        F.countDistinct("surname").alias("surnames"), F.countDistinct("home_postcode").alias("homes"),
        F.count("*").alias("children"), F.countDistinct("dob").alias("birthdays"),
    )
    assert families.filter("surnames > 1 or homes > 1").count() == 0
    assert families.filter("children > 1").count() > 1000
    assert families.filter("birthdays < children").count() > 10  # twins


def test_fields_are_in_their_delivered_formats(spark, npd, pnc):
    npd_dates = npd.select(F.to_date("dob", NPD_DATE_FORMAT).alias("d"))
    assert npd_dates.filter("d is null").count() == 0
    pnc_dates = pnc.select(F.to_date("dob", PNC_DATE_FORMAT).alias("d"), F.to_date("last_offence_date", PNC_DATE_FORMAT).alias("o"))
    assert pnc_dates.filter("d is null or o is null or o < d").count() == 0
    postcodes = [r[0] for r in npd.union(npd).select("postcode").where("postcode is not null").distinct().collect()]
    bad = [p for p in postcodes if p != PLACEHOLDER and not POSTCODE.match(p)]
    assert bad == []
    ethnicity = {r[0] for r in pnc.select("ethnicity_self_defined").distinct().collect()}
    assert ethnicity <= {"W1", "W2", "W9", "M1", "M2", "M3", "M9", "A1", "A2", "A3", "A9", "B1", "B2", "B9", "O1", "O9", "NS"}
    upns = npd.select("upn").collect()
    assert all(re.match(r"^[A-Z][0-9]{12}$", r[0]) for r in upns)


def test_aliases_are_in_pnc_form(pnc):
    aliases = [r[0] for r in pnc.select("alias_names").where("alias_names is not null").collect()]
    assert len(aliases) > 0.2 * pnc.count()
    for entry in aliases:
        for alias in entry.split(";"):
            assert re.match(r"^[^/;]+/[^/;]+$", alias), alias


def test_lakehouse_areas_exist_and_run_scratch_is_removed(tiny_release, test_environment):
    root = tiny_release.lakehouse.root
    assert sorted(p.name for p in Path(root).iterdir()) == sorted(AREAS)
    scratch = Path(test_environment.config.scratch_root)
    leftovers = [p.name for p in scratch.iterdir() if p.name != "session"] if scratch.exists() else []
    assert leftovers == []  # every job run deletes its own scratch (Spark local dir, checkpoints)


def test_parquet_extracts_are_an_option(spark, tmp_path):
    from datafirst_spark.synthetic.generate import write_extract

    df = spark.createDataFrame([("PMR1", "Ann")], "pupil_ref string, forename string")
    write_extract(df, str(tmp_path / "npd"), "parquet")
    assert spark.read.parquet(str(tmp_path / "npd")).collect() == df.collect()
