"""The research extract's pieces: keyed pseudonyms (stable per key, different across keys,
HMAC-SHA256 exactly), the key's loading rules, and records with nothing identifying left."""

import datetime as dt
import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from datafirst_spark.deidentify import (
    MIN_KEY_BYTES,
    PSEUDONYM_KEY_ENV,
    RESEARCH_RECORD_COLUMNS,
    PseudonymKeyError,
    load_pseudonym_key,
    pseudonym_of,
    pseudonymise_record_keys,
    research_records,
    throwaway_key,
)

KEY = b"k" * MIN_KEY_BYTES
OTHER_KEY = b"o" * MIN_KEY_BYTES


@pytest.fixture(scope="module")
def records(spark):
    rows = [
        ("pnc", "2004/03373498W", "JOHN", "PAUL", "SMITH", dt.date(1990, 3, 14), "M", "white", "SW1A 1AA", "SW1A"),
        ("npd", "PMR3700365641", "AMY", None, "JONES", dt.date(2001, 11, 2), "F", "black", "M1 1AE", "M1"),
        ("npd", "PMR0000000001", "ZOE", None, "KHAN", None, None, None, None, None),
    ]
    return spark.createDataFrame(rows, "source_dataset string, source_record_id string, forename string, "
                                       "middle_names string, surname string, dob date, sex string, "
                                       "ethnicity_group string, postcode string, postcode_district string")


def pseudonyms(df):
    return {r["record_pseudonym"] for r in df.collect()}


def test_pseudonyms_are_hmac_sha256_of_dataset_and_key(records):
    out = pseudonymise_record_keys(records.select("source_dataset", "source_record_id"), KEY)
    assert "source_record_id" not in out.columns
    expected = {hmac.new(KEY, f"{d}\x1f{r}".encode(), hashlib.sha256).hexdigest()
                for d, r in [("pnc", "2004/03373498W"), ("npd", "PMR3700365641"), ("npd", "PMR0000000001")]}
    assert pseudonyms(out) == expected


def test_same_key_same_pseudonyms_other_key_other_ones(records):
    keyed = records.select("source_dataset", "source_record_id")
    first, again = pseudonyms(pseudonymise_record_keys(keyed, KEY)), pseudonyms(pseudonymise_record_keys(keyed, KEY))
    other = pseudonyms(pseudonymise_record_keys(keyed, OTHER_KEY))
    assert first == again and len(first) == 3
    assert not first & other


def test_research_records_hold_nothing_identifying(records):
    research = research_records(records, KEY)
    assert research.columns == RESEARCH_RECORD_COLUMNS
    values = {str(v) for row in research.collect() for v in row if v is not None}
    identifying = {str(v) for row in records.select("source_record_id", "forename", "middle_names", "surname", "dob",
                                                     "postcode").collect() for v in row if v is not None}
    assert not values & identifying
    assert not any(i in v for v in values for i in identifying)  # nor inside a longer value
    by_dataset = {r["source_dataset"] + r["sex"]: r for r in research.collect() if r["sex"]}
    assert by_dataset["pncM"]["birth_year_month"] == "1990-03" and by_dataset["pncM"]["postcode_district"] == "SW1A"


def test_the_key_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "s" * 40)
    assert load_pseudonym_key() == b"s" * 40
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(b"f" * 40 + b"\n")
    assert load_pseudonym_key(key_file) == b"f" * 40  # the file wins over the environment


def test_no_key_or_a_short_one_is_refused_without_showing_it(tmp_path, monkeypatch):
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match=f"no pseudonym key: set {PSEUDONYM_KEY_ENV}"):
        load_pseudonym_key()
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "tooshortsecret")
    with pytest.raises(PseudonymKeyError, match="is 14 bytes; at least 32") as refused:
        load_pseudonym_key()
    assert "tooshortsecret" not in str(refused.value)
    with pytest.raises(PseudonymKeyError, match="missing.key: cannot be read"):
        load_pseudonym_key(tmp_path / "missing.key")


def test_throwaway_keys_differ_and_are_long_enough():
    first, second = throwaway_key(), throwaway_key()
    assert first != second and len(first) >= MIN_KEY_BYTES


def test_pseudonyms_over_many_arrow_batches_and_nulls_match_the_python_function(spark, capsys):
    # Arrow batches of 7 rows: the function is keyed afresh per batch and copied per record
    rows = [("npd" if i % 3 else "pnc", None if i % 11 == 0 else f"R{i:09d}") for i in range(50)]
    df = spark.createDataFrame(rows, "source_dataset string, source_record_id string")
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        out = pseudonymise_record_keys(df.withColumn("record_id", F.col("source_record_id")), KEY)
        got = {(r["source_dataset"], r["record_id"]): r["record_pseudonym"] for r in out.collect()}
        out.explain(extended=True)
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
    assert got == {(d, r): (pseudonym_of(KEY, d, r) if r is not None else None) for d, r in rows}
    plan = capsys.readouterr().out
    assert "ArrowEvalPython" in plan and KEY.decode() not in plan and KEY.hex() not in plan
