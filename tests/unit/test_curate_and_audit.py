"""Curated rows from a linkage's outputs, and the audits a release must pass."""

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F

import pytest

from datafirst_spark.config import ConfigError
from datafirst_spark.linkage.spec import AuditBounds
from datafirst_spark.release.publish import must_publish
from datafirst_spark.release import audit, curate
from datafirst_spark.release.tables import table_checksum

PAIR_SCHEMA = ("source_dataset_l string, source_record_id_l string, source_dataset_r string, "
               "source_record_id_r string, match_probability double, excluded_by string")


def test_person_links_carry_the_best_pair_that_formed_the_person(spark):
    ids = spark.createDataFrame(
        [("npd", "n1", 1, 0.9), ("pnc", "p1", 1, 0.9), ("npd", "n2", 2, 0.9), ("npd", "n3", 3, 0.9)],
        "source_dataset string, source_record_id string, person_id long, threshold double")
    pairs = spark.createDataFrame([
        ("pnc", "p1", "npd", "n1", 0.95, None),
        ("pnc", "p1", "npd", "n1", 0.97, None),     # a better pair for the same records
        ("npd", "n1", "npd", "n2", 0.6, None),      # below the threshold: no link
        ("npd", "n2", "npd", "n3", 0.99, "twins"),  # excluded: never a link
    ], PAIR_SCHEMA)
    links = curate.person_links(ids, pairs, "2025")
    expected = spark.createDataFrame([
        ("2025", "npd", "n1", 1, 0.9, "splink", 0.97), ("2025", "npd", "n2", 2, 0.9, "splink", None),
        ("2025", "npd", "n3", 3, 0.9, "splink", None), ("2025", "pnc", "p1", 1, 0.9, "splink", 0.97),
    ], "release string, source_dataset string, source_record_id string, person_id long, threshold double, "
       "method string, match_probability double")
    assert_df_equality(links, expected, ignore_row_order=True, ignore_nullable=True)


def test_persons_count_records_and_take_the_commonest_attributes(spark):
    links = spark.createDataFrame(
        [("2025", "npd", "n1", 1, 0.9), ("2025", "npd", "n2", 1, 0.9), ("2025", "pnc", "p1", 1, 0.9)],
        "release string, source_dataset string, source_record_id string, person_id long, threshold double")
    records = spark.createDataFrame([
        ("npd", "n1", "F", "asian", dt.date(2001, 3, 4), "B12"),
        ("npd", "n2", "F", "asian", dt.date(2001, 3, 4), "B12"),
        ("pnc", "p1", "M", None, dt.date(2001, 4, 3), "B13"),
    ], "source_dataset string, source_record_id string, sex string, ethnicity_group string, dob date, "
       "postcode_district string")
    row = curate.persons(links, records).first()
    assert (row["records"], row["npd_records"], row["pnc_records"]) == (3, 2, 1)
    assert (row["sex"], row["ethnicity_group"], row["birth_year_month"], row["postcode_district"]) == (
        "F", "asian", "2001-03", "B12")


def test_persons_of_one_record_take_its_values_as_mode_would(spark):
    # people of one record skip mode(): the rows must be those mode() gives every person
    links = spark.createDataFrame([
        ("2025", "npd", "n1", 1, 0.9), ("2025", "pnc", "p1", 2, 0.9), ("2025", "npd", "gone", 3, 0.9),
        ("2025", "npd", "n2", 4, 0.9), ("2025", "npd", "n3", 4, 0.9), ("2025", "pnc", "p2", 4, 0.9),
        ("2025", "npd", "n4", 5, 0.9), ("2025", "pnc", "p3", 5, 0.9),
        ("2025", "npd", "n2", 4, 0.99), ("2025", "npd", "n3", 6, 0.99), ("2025", "pnc", "p2", 7, 0.99),
    ], "release string, source_dataset string, source_record_id string, person_id long, threshold double")
    records = spark.createDataFrame([
        ("npd", "n1", "F", "white", dt.date(2001, 3, 4), "B12"),
        ("pnc", "p1", None, None, None, None),
        ("npd", "n2", "M", None, dt.date(2002, 1, 1), "LS1"),
        ("npd", "n3", "F", "black", dt.date(2002, 1, 1), "LS2"),
        ("pnc", "p2", "F", None, dt.date(2002, 1, 2), "LS2"),
        ("npd", "n4", "M", "asian", dt.date(2003, 5, 6), "M1"),   # a tie of two: the lower values
        ("pnc", "p3", "F", "white", dt.date(2003, 6, 5), "M2"),
    ], "source_dataset string, source_record_id string, sex string, ethnicity_group string, dob date, "
       "postcode_district string")
    attributes = records.select(*curate.RECORD_KEY, "sex", "ethnicity_group",
                                F.date_format("dob", "yyyy-MM").alias("birth_year_month"), "postcode_district")
    every_person_through_mode = (
        links.join(attributes, curate.RECORD_KEY, "left").groupBy("release", "threshold", "person_id")
        .agg(F.count("*").alias("records"), F.count_if(F.col("source_dataset") == "npd").alias("npd_records"),
             F.count_if(F.col("source_dataset") == "pnc").alias("pnc_records"),
             *[F.mode(c, deterministic=True).alias(c) for c in curate.PERSON_ATTRIBUTES])
        .select(*curate.PERSON_COLUMNS))
    made = curate.persons(links, records)
    assert_df_equality(made, every_person_through_mode, ignore_row_order=True, ignore_nullable=True)
    assert made.count() == 8
    tie = made.filter("person_id = 5").first()
    assert (tie["sex"], tie["ethnicity_group"], tie["birth_year_month"], tie["postcode_district"]) == (
        "F", "asian", "2003-05", "M1")


def test_link_rates_count_pnc_records_whose_person_has_an_npd_record(spark):
    links = spark.createDataFrame(
        [("pnc", "p1", 1, 0.9), ("npd", "n1", 1, 0.9), ("pnc", "p2", 2, 0.9), ("pnc", "p3", 3, 0.9),
         ("npd", "n3", 3, 0.9), ("pnc", "p1", 1, 0.99), ("npd", "n1", 2, 0.99)],
        "source_dataset string, source_record_id string, person_id long, threshold double")
    assert curate.link_rates(links, "pnc", "npd") == {0.9: 2 / 3, 0.99: 0.0}


def test_counts_reconcile_names_each_mismatch():
    reports = {"npd": {"input_rows": 10, "valid_rows": 8, "quarantined_rows": 2},
               "pnc": {"input_rows": 4, "valid_rows": 4, "quarantined_rows": 0}}
    good = audit.counts_reconcile(reports, {"npd": 8, "pnc": 4}, {("npd", 0.9): 8, ("pnc", 0.9): 4}, {"npd": 2})
    assert good.passed, good.message
    reports["pnc"]["input_rows"] = 5
    bad = audit.counts_reconcile(reports, {"npd": 8, "pnc": 4}, {("npd", 0.9): 7, ("pnc", 0.9): 4}, {"npd": 1})
    assert not bad.passed
    assert "pnc: 5 rows read but 4 valid + 0 quarantined" in bad.message
    assert "npd: 2 quarantined at ingest but 1 quarantine rows to publish" in bad.message
    assert "npd@0.9: 7 person links for 8 records" in bad.message


def test_one_person_id_per_record_finds_doubles_and_gaps(spark):
    records = spark.createDataFrame([("npd", "n1"), ("npd", "n2"), ("pnc", "p1")],
                                    "source_dataset string, source_record_id string")
    links = spark.createDataFrame([("npd", "n1", 1, 0.9), ("npd", "n1", 2, 0.9), ("pnc", "p1", 3, 0.9)],
                                  "source_dataset string, source_record_id string, person_id long, threshold double")
    result = audit.one_person_id_per_record(links, records)
    assert not result.passed and result.figures == {"with_several_ids": 1, "with_no_id": 1}
    fine = links.filter("person_id != 2").unionByName(
        spark.createDataFrame([("npd", "n2", 4, 0.9)], links.schema))
    assert audit.one_person_id_per_record(fine, records).passed


def test_no_null_keys_names_the_column(spark):
    df = spark.createDataFrame([("2025", None), ("2025", 1)], "release string, person_id long")
    result = audit.no_null_keys({"persons": (df, ("release", "person_id"))})
    assert not result.passed and result.message == "1 nulls in persons.person_id"


def test_figures_must_stay_within_bounds_of_the_previous_release():
    bounds = AuditBounds(max_link_rate_change=0.05, max_precision_drop=0.01, max_recall_drop=0.02)
    previous = {"link_rate@0.9": 0.80, "precision@0.9": 0.99, "recall@0.9": 0.97}
    assert audit.figures_within_bounds({"link_rate@0.9": 0.83, "precision@0.9": 0.995, "recall@0.9": 0.96},
                                       previous, "2025", bounds).passed
    failed = audit.figures_within_bounds({"link_rate@0.9": 0.70, "precision@0.9": 0.97, "recall@0.9": 0.99},
                                         previous, "2025", bounds)
    assert not failed.passed
    assert "link_rate@0.9 0.8000 in 2025 -> 0.7000 (change 0.1000 > 0.05)" in failed.message
    assert "precision@0.9" in failed.message and "recall" not in failed.message  # recall rose: fine
    assert audit.figures_within_bounds({"link_rate@0.9": 0.1}, None, None, bounds).passed  # first release


def test_checksum_ignores_row_order_and_sees_any_change(spark):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id long, v string")
    shuffled = spark.createDataFrame([(2, "b"), (1, "a")], "id long, v string").repartition(3)
    assert table_checksum(df) == table_checksum(shuffled)
    assert table_checksum(df) != table_checksum(df.withColumn("v", F.when(F.col("id") == 2, "c").otherwise("a")))
    assert table_checksum(df).startswith("2:")


def test_a_published_release_is_published_again_only_on_purpose():
    existing = {"publication": 1, "input_checksums": {"npd/records": "3:7", "linkage/pairs": "5:9"}}
    same = {"npd/records": "3:7", "linkage/pairs": "5:9"}
    assert must_publish("2026", None, same, republish=False)
    assert not must_publish("2026", existing, same, republish=False)
    assert must_publish("2026", existing, same, republish=True)
    with pytest.raises(ConfigError, match=r"release 2026: already published \(publication 1\) from other inputs "
                                          r"\(linkage/pairs changed\); pass --republish"):
        must_publish("2026", existing, {"npd/records": "3:7", "linkage/pairs": "6:1"}, republish=False)
