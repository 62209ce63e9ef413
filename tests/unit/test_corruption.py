"""The corruption model, field by field, on tiny frames."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from datafirst_spark.synthetic.config import CorruptionRates
from datafirst_spark.synthetic.corruption import (
    NICKNAME,
    OTHER_SURNAME,
    RECORD_KEY,
    VARIATION,
    apply_corruptions,
    keyboard_typo,
    spelling_variant,
)

SCHEMA = (
    f"{RECORD_KEY} long, forename string, surname string, dob date, sex string, postcode string, "
    f"{NICKNAME} string, {OTHER_SURNAME} string, {VARIATION} double"
)
OLD_POSTCODE = "LS6 1AB"


def rates(**overrides: float) -> CorruptionRates:
    return CorruptionRates(**{name: 0.0 for name in CorruptionRates.model_fields} | overrides)


@pytest.fixture
def people(spark):
    rows = [
        (1, "WILLIAM", "SMITH", dt.date(1990, 5, 6), "M", "M1 1AE", "BILL", "JONES", 1.0),
        (2, "ZARA", "KHAN-SHAH", dt.date(1995, 5, 25), "F", "B5 7RD", None, "AHMED", 3.0),
        (3, "AMY", "LEE", dt.date(2001, 3, 3), "F", None, "AMELIA", "CHAN", 3.0),
    ]
    return spark.createDataFrame(rows, SCHEMA)


def recorded(df):
    return {r[RECORD_KEY]: r for r in df.collect()}


def test_zero_rates_change_nothing(people):
    out = apply_corruptions(people, rates(), 7, "t", F.lit(OLD_POSTCODE))
    assert_df_equality(out.drop("corruptions"), people, ignore_row_order=True)
    assert out.filter(F.size("corruptions") > 0).count() == 0


def test_nickname_used_only_where_one_exists(people):
    out = recorded(apply_corruptions(people, rates(nickname=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert out[1]["forename"] == "BILL" and out[1]["corruptions"] == ["nickname"]
    assert out[2]["forename"] == "ZARA" and out[2]["corruptions"] == []
    assert out[3]["forename"] == "AMELIA"


def test_transposed_dob_only_where_day_can_be_a_month(people):
    out = recorded(apply_corruptions(people, rates(dob_transposed=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert out[1]["dob"] == dt.date(1990, 6, 5) and out[1]["corruptions"] == ["dob_transposed"]
    assert out[2]["dob"] == dt.date(1995, 5, 25) and out[2]["corruptions"] == []  # day 25
    assert out[3]["dob"] == dt.date(2001, 3, 3) and out[3]["corruptions"] == []  # same day and month


def test_placeholder_dob(people):
    out = apply_corruptions(people, rates(dob_placeholder_1900=1.0), 7, "t", F.lit(OLD_POSTCODE))
    assert {r["dob"] for r in out.collect()} == {dt.date(1900, 1, 1)}


def test_surname_change_and_partial_double_surname(people):
    out = recorded(apply_corruptions(people, rates(surname_change=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert [out[k]["surname"] for k in (1, 2, 3)] == ["JONES", "AHMED", "CHAN"]
    partial = recorded(apply_corruptions(people, rates(double_surname_partial=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert partial[2]["surname"] in {"KHAN", "SHAH"} and partial[2]["corruptions"] == ["double_surname_partial"]
    assert partial[1]["surname"] == "SMITH" and partial[1]["corruptions"] == []


def test_name_swap(people):
    out = recorded(apply_corruptions(people, rates(name_swap=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert (out[1]["forename"], out[1]["surname"]) == ("SMITH", "WILLIAM")


def test_postcode_out_of_date_and_missing(people):
    old = recorded(apply_corruptions(people, rates(postcode_out_of_date=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert old[1]["postcode"] == "LS6 1AB" and old[1]["corruptions"] == ["postcode_out_of_date"]
    missing = recorded(apply_corruptions(people, rates(postcode_missing=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert missing[1]["postcode"] is None and missing[1]["corruptions"] == ["postcode_missing"]
    assert missing[3]["corruptions"] == []  # it was missing already: nothing changed


def test_sex_error_flips(people):
    out = recorded(apply_corruptions(people, rates(sex_error=1.0), 7, "t", F.lit(OLD_POSTCODE)))
    assert [out[k]["sex"] for k in (1, 2, 3)] == ["F", "M", "M"]


def test_keyboard_typo_is_one_slip(spark):
    names = spark.range(3000).select(F.col("id").alias(RECORD_KEY), F.lit("JONATHAN").alias("name"))
    typos = names.select(keyboard_typo(F.col("name"), 3, "k").alias("typo"))
    distances = typos.select(F.levenshtein("typo", F.lit("JONATHAN")).alias("d")).groupBy("d").count()
    found = dict(distances.collect())
    assert set(found) <= {0, 1, 2}  # 0: two equal letters swapped; 2: a transposition
    assert found.get(1, 0) > 2000
    assert typos.distinct().count() > 30


def test_spelling_variant_is_a_respelling(spark):
    names = spark.range(500).select(F.col("id").alias(RECORD_KEY), F.lit("MOHAMMED").alias("name"))
    variants = {r[0] for r in names.select(spelling_variant(F.col("name"), 3, "s")).distinct().collect()}
    assert "MOHAMMED" not in variants
    assert {"MOHAMMAD", "MOHAMED"} <= variants
    assert all(abs(len(v) - len("MOHAMMED")) <= 1 for v in variants)
