"""Curated tables holding every release: one commit per release naming it, time travel to
an earlier release after a later one is written, ten-year retention, and constraints; the
column statistics staged tables and the research extract keep, and the columns staged
without a Parquet dictionary."""

import json
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from datafirst_spark.lakehouse import without_dictionary, write_delta
from datafirst_spark.release.tables import (
    RETENTION_PROPERTIES,
    USER_METADATA_CONF,
    CuratedTable,
    read_as_of,
    release_versions,
    write_release,
)
from datafirst_spark.testing import parquet_dictionaries

LINKS = CuratedTable("person_links", not_null=("release", "source_record_id", "person_id"),
                     checks={"probability_in_range": "match_probability BETWEEN 0 AND 1"})
SCHEMA = "release string, source_record_id string, person_id long, match_probability double"


def rows(spark, release, data):
    return spark.createDataFrame([(release, *r) for r in data], SCHEMA)


def test_each_release_is_one_commit_and_earlier_releases_stay_readable(spark, tmp_path):
    path = str(tmp_path / "person_links")
    first = rows(spark, "2025", [("r1", 1, 0.99), ("r2", 2, 0.95)])
    v1 = write_release(spark, LINKS, path, first, "2025")
    v2 = write_release(spark, LINKS, path, rows(spark, "2026", [("r1", 1, 0.98), ("r3", 3, 0.97)]), "2026")
    assert v2 > v1 and release_versions(spark, path) == {"2025": v1, "2026": v2}
    assert_df_equality(read_as_of(spark, path, v1), first, ignore_row_order=True, ignore_nullable=True)
    assert read_as_of(spark, path, v2).count() == 4  # both releases in the table now
    history = DeltaTable.forPath(spark, path).history().select("version", "userMetadata").collect()
    assert {r["version"]: r["userMetadata"] for r in history if r["version"] in (v1, v2)} == {
        v1: "release=2025", v2: "release=2026"}


def test_an_empty_release_of_an_empty_table_still_gets_a_commit_naming_it(spark, tmp_path):
    path = str(tmp_path / "person_links")
    version = write_release(spark, LINKS, path, rows(spark, "2025", []), "2025")
    assert release_versions(spark, path) == {"2025": version}
    assert spark.conf.get(USER_METADATA_CONF, None) is None  # the commit's message is not left on the session


def test_rewriting_a_release_replaces_only_its_rows(spark, tmp_path):
    path = str(tmp_path / "person_links")
    write_release(spark, LINKS, path, rows(spark, "2025", [("r1", 1, 0.99)]), "2025")
    write_release(spark, LINKS, path, rows(spark, "2026", [("r1", 1, 0.99)]), "2026")
    v3 = write_release(spark, LINKS, path, rows(spark, "2026", [("r9", 9, 0.91)]), "2026")
    now = {(r["release"], r["source_record_id"]) for r in read_as_of(spark, path, v3).collect()}
    assert now == {("2025", "r1"), ("2026", "r9")}


def test_retention_keeps_ten_years_and_constraints_refuse_bad_rows(spark, tmp_path):
    path = str(tmp_path / "person_links")
    write_release(spark, LINKS, path, rows(spark, "2025", [("r1", 1, 0.99)]), "2025")
    properties = DeltaTable.forPath(spark, path).detail().first()["properties"]
    assert {k: properties.get(k) for k in RETENTION_PROPERTIES} == RETENTION_PROPERTIES
    with pytest.raises(Exception, match="probability_in_range"):
        write_release(spark, LINKS, path, rows(spark, "2026", [("r1", 1, 1.5)]), "2026")
    with pytest.raises(Exception, match="(?i)person_id"):
        write_release(spark, LINKS, path, rows(spark, "2026", [("r1", None, 0.9)]), "2026")
    extra = rows(spark, "2026", [("r1", 1, 0.9)]).withColumn("forename", F.lit("JOHN"))
    with pytest.raises(Exception, match="(?i)schema"):
        write_release(spark, LINKS, path, extra, "2026")
    assert set(release_versions(spark, path)) == {"2025"}  # none of the refused writes committed


def test_a_table_whose_creation_was_killed_is_created_and_written(spark, tmp_path):
    # what a SIGKILL during creation leaves: the first commit's temporary file, never renamed
    log_folder = tmp_path / "person_links" / "_delta_log"
    (log_folder / "_staged_commits").mkdir(parents=True)
    (log_folder / ".00000000000000000000.json.59ab1ea8.tmp").write_text('{"commitInfo":{}}')
    path = str(tmp_path / "person_links")
    version = write_release(spark, LINKS, path, rows(spark, "2025", [("r1", 1, 0.99)]), "2025")
    assert release_versions(spark, path) == {"2025": version}
    assert not list(log_folder.glob(".*.tmp"))
    with pytest.raises(Exception, match="probability_in_range"):
        write_release(spark, LINKS, path, rows(spark, "2026", [("r1", 1, 1.5)]), "2026")


def test_a_table_created_before_its_definition_gained_a_check_gets_it_on_the_next_write(spark, tmp_path):
    path = str(tmp_path / "person_links")
    write_release(spark, CuratedTable("person_links", not_null=LINKS.not_null), path,
                  rows(spark, "2025", [("r1", 1, 0.99)]), "2025")  # before the definition gained its check
    write_release(spark, LINKS, path, rows(spark, "2026", [("r1", 1, 0.98)]), "2026")
    properties = DeltaTable.forPath(spark, path).detail().first()["properties"]
    assert properties["delta.constraints.probability_in_range"] == "match_probability BETWEEN 0 AND 1"
    with pytest.raises(Exception, match="probability_in_range"):
        write_release(spark, LINKS, path, rows(spark, "2027", [("r1", 1, 1.5)]), "2027")


def test_a_log_with_commits_that_is_not_a_table_is_refused_not_removed(spark, tmp_path):
    log_folder = tmp_path / "person_links" / "_delta_log"
    log_folder.mkdir(parents=True)
    (log_folder / "00000000000000000000.json").write_text("not json")
    with pytest.raises(Exception, match="(?i)holds commits|delta|json"):
        write_release(spark, LINKS, str(tmp_path / "person_links"), rows(spark, "2025", [("r1", 1, 0.99)]), "2025")
    assert (log_folder / "00000000000000000000.json").exists()


def _file_statistics(table: Path) -> list[dict]:
    actions = [json.loads(line) for log in sorted((table / "_delta_log").glob("*.json"))
               for line in log.read_text().splitlines()]
    return [json.loads(action["add"]["stats"]) for action in actions if "add" in action]


def test_staged_tables_keep_row_counts_and_the_research_extract_column_statistics(spark, tmp_path):
    rows = spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string").coalesce(1)
    write_delta(rows, str(tmp_path / "staged"))
    write_delta(rows, str(tmp_path / "research"), column_statistics=True)
    assert _file_statistics(tmp_path / "staged") == [{"numRecords": 2}]
    [research] = _file_statistics(tmp_path / "research")
    assert research["minValues"] == {"id": 1, "name": "a"} and research["maxValues"] == {"id": 2, "name": "b"}
    assert spark.read.format("delta").load(str(tmp_path / "staged")).count() == 2


def test_plain_columns_are_written_without_a_dictionary_and_the_session_is_left_as_it_was(spark, tmp_path):
    rows = spark.createDataFrame([("SMITH", ["JO", "ANN"], "F")] * 50 + [("JONES", ["AL"], "M")] * 50,
                                 "surname string, given_name_tokens array<string>, sex string").coalesce(1)
    write_delta(rows, str(tmp_path / "plain"), plain_columns=("surname", "given_name_tokens"))
    write_delta(rows, str(tmp_path / "dictionary"))
    assert parquet_dictionaries(tmp_path / "plain") == {
        "surname": False, "given_name_tokens.list.element": False, "sex": True}
    assert set(parquet_dictionaries(tmp_path / "dictionary").values()) == {True}
    assert spark.conf.get("parquet.enable.dictionary#surname", None) is None
    assert_df_equality(spark.read.format("delta").load(str(tmp_path / "plain")), rows, ignore_row_order=True)


def test_a_plain_column_not_in_the_table_is_named():
    schema = StructType([StructField("surname", StringType())])
    with pytest.raises(ValueError, match="surnames"):
        without_dictionary(schema, ["surname", "surnames"])
