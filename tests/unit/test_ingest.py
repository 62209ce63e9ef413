"""Every kind of bad row lands in the quarantine under its reason; every good row is kept;
placeholders become nulls; counts reconcile. Small hand-written extracts, shipped specs."""

import datetime as dt
import json
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from datafirst_spark.datasets import load_dataset_spec
from datafirst_spark.ingest import PLAIN_ENCODED, QUARANTINE_SCHEMA, REASONS, ingest_dataset
from datafirst_spark.lakehouse import Lakehouse
from datafirst_spark.testing import parquet_dictionaries

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "2025"
NPD_HEADER = b"pupil_ref,upn,forename,middle_names,surname,dob,sex,ethnicity,postcode,census_year"
TAIL = b"F,WBRI,LS6 1AB,2017"

# (line, record id, reasons it must be quarantined for; [] = kept)
NPD_LINES = [
    (b"PMR01,A01,Amy,,Lee,03/03/2001," + TAIL, "PMR01", []),
    (b"PMR02,A02,Bob,,UNKNOWN,01/01/1900,F,REFU,ZZ99 9ZZ,2017", "PMR02", []),
    (b"PMR03,A03,Cat,,Smith", "PMR03", ["wrong_field_count"]),
    (b"PMR04,A04,Dan,,Jones,01/02/2003," + TAIL + b",extra", "PMR04", ["wrong_field_count"]),
    (b'PMR05,A05,"Eve,,Brown,01/02/2003,' + TAIL, "PMR05", ["bad_quoting"]),
    (b"PMR06,A06,Fran\xe7ois,,Dupont,01/02/2003," + TAIL, "PMR06", ["bad_encoding"]),
    (b"PMR07,A07,Gus,,Hill,31/02/2003," + TAIL, "PMR07", ["dob_unparseable"]),
    (b"PMR08,A08,Hal,,Ince,01/01/2099," + TAIL, "PMR08", ["dob_in_future"]),
    (b"PMR09,A09,Ian,,Jay,01/01/1970," + TAIL, "PMR09", ["dob_too_early"]),
    (b"PMR10,A10,,,,01/02/2003," + TAIL, "PMR10", ["no_usable_name"]),
    (b"PMR11,A11,Mr,,N/K,01/02/2003," + TAIL, "PMR11", ["no_usable_name"]),
    (b"PMR12,A12,Kim,,Lowe,01/02/2003,X,WBRI,LS6 1AB,2017", "PMR12", ["unknown_sex_code"]),
    (b"PMR13,A13,Lee,,Moss,01/02/2003," + TAIL, "PMR13", ["duplicate_record_key"]),
    (b"PMR13,A13,Leo,,Moss,01/02/2003," + TAIL, "PMR13", ["duplicate_record_key"]),
    (b"PMR14,A14,Max,,Nash,01/02/2003," + TAIL, "PMR14", []),
    (b"PMR14,A14,Max,,Nash,01/02/2003," + TAIL, "PMR14", ["duplicate_record"]),
    (b"PMR15,A15,Ned,,Owen,01/02/2003,M,WENG,LS6 1AB,2017", "PMR15", []),
    (b"", None, ["empty_row"]),
    (b",A16,Ola,,Pike,01/02/2003," + TAIL, None, ["missing_record_key"]),
    (b'PMR17,A17,"Jo, Ann",,Kerr,1/2/2003,' + TAIL, "PMR17", []),
    (b"PMR18,A18,Pat,,Quinn,2003-02-01,X,WBRI,LS6 1AB,2017", "PMR18", ["dob_unparseable", "unknown_sex_code"]),
]


def land(lakehouse: Lakehouse, dataset: str, name: str, content: bytes) -> Path:
    folder = Path(lakehouse.landing(RELEASE, dataset))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


@pytest.fixture(scope="module")
def npd_ingested(spark, tmp_path_factory):
    lakehouse = Lakehouse.at(str(tmp_path_factory.mktemp("ingest-npd")))
    lines = [line for line, _, _ in NPD_LINES]
    # a header repeated inside the file (two exports concatenated) is skipped and counted, not data
    land(lakehouse, "npd", "part-0.csv", b"\n".join([NPD_HEADER, *lines[:10], NPD_HEADER, *lines[10:]]) + b"\n")
    spec = load_dataset_spec(ROOT / "conf" / "datasets" / "npd.yaml")
    report = ingest_dataset(spark, spec, lakehouse, RELEASE, str(tmp_path_factory.mktemp("scratch")))
    records = spark.read.format("delta").load(lakehouse.staging(RELEASE, "npd", "records"))
    quarantine = spark.read.format("delta").load(lakehouse.staging(RELEASE, "npd", "quarantine"))
    return lakehouse, report, records, quarantine


def test_every_bad_row_is_quarantined_under_its_reason(spark, npd_ingested):
    _, _, _, quarantine = npd_ingested
    expected = spark.createDataFrame(
        [(record_id, reasons) for _, record_id, reasons in NPD_LINES if reasons],
        "source_record_id string, reasons array<string>",
    )
    assert_df_equality(
        quarantine.select("source_record_id", "reasons"), expected, ignore_row_order=True, ignore_nullable=True
    )
    assert all(reason in REASONS for _, _, reasons in NPD_LINES for reason in reasons)


def test_quarantine_keeps_the_raw_row_exactly(npd_ingested):
    _, _, _, quarantine = npd_ingested
    assert quarantine.schema.simpleString() == QUARANTINE_SCHEMA.simpleString()
    rows = {r["source_record_id"]: r for r in quarantine.collect() if r["source_record_id"] in {"PMR03", "PMR06"}}
    assert rows["PMR03"]["raw_record"] == "PMR03,A03,Cat,,Smith"
    assert rows["PMR03"]["raw_bytes"] is None
    assert bytes(rows["PMR06"]["raw_bytes"]) == NPD_LINES[5][0]  # the bytes as delivered, not repaired
    assert rows["PMR06"]["raw_record"] == "PMR06,A06,Fran\ufffdois,,Dupont,01/02/2003,F,WBRI,LS6 1AB,2017"
    assert {r["release"] for r in quarantine.collect()} == {RELEASE}
    assert all(r["source_file"].endswith("landing/2025/npd/part-0.csv") for r in quarantine.collect())


def test_good_rows_are_kept_once_with_placeholders_as_nulls(npd_ingested):
    _, _, records, _ = npd_ingested
    kept = {r["source_record_id"]: r for r in records.collect()}
    assert sorted(kept) == ["PMR01", "PMR02", "PMR14", "PMR15", "PMR17"]
    bob = kept["PMR02"]
    assert (bob["surname"], bob["dob"], bob["ethnicity_group"], bob["postcode"]) == (None, None, None, None)
    assert bob["forename"] == "BOB"
    amy = kept["PMR01"]
    assert (amy["dob"], amy["sex"], amy["ethnicity_group"], amy["ethnicity_code"]) == (
        dt.date(2001, 3, 3), "F", "white", "WBRI"
    )
    assert amy["attributes"] == {"upn": "A01", "census_year": "2017"}
    assert kept["PMR17"]["dob"] == dt.date(2003, 2, 1)  # the spec's second format, d/M/yyyy
    assert kept["PMR15"]["ethnicity_group"] is None
    assert kept["PMR15"]["ingest_warnings"] == ["unknown_ethnicity_code"]  # npd.yaml: unknown_codes: missing


def test_counts_reconcile_and_are_reported(npd_ingested):
    lakehouse, report, records, quarantine = npd_ingested
    assert (report.input_rows, report.header_lines) == (len(NPD_LINES), 2)
    assert (report.valid_rows, report.quarantined_rows) == (records.count(), quarantine.count())
    assert report.valid_rows + report.quarantined_rows == len(NPD_LINES)
    written = json.loads(Path(lakehouse.staging(RELEASE, "npd", "_ingest.json")).read_text())
    assert written["quarantine_reasons"] == {
        "duplicate_record_key": 2, "dob_unparseable": 2, "no_usable_name": 2, "unknown_sex_code": 2,
        "wrong_field_count": 2, "bad_encoding": 1, "bad_quoting": 1, "dob_in_future": 1, "dob_too_early": 1,
        "duplicate_record": 1, "empty_row": 1, "missing_record_key": 1,
    }
    assert written["warnings"] == {"unknown_ethnicity_code": 1}
    assert written["input_rows"] == len(NPD_LINES)


PNC_HEADER = (
    b"pnc_id,forename,middle_names,surname,dob,sex,ethnicity_self_defined,ethnicity_officer_defined,postcode,"
    b"first_offence_date,last_offence_date,alias_names,alias_dobs"
)


def test_pnc_aliases_and_ethnicity_fallback(spark, tmp_path):
    lakehouse = Lakehouse.at(str(tmp_path / "lake"))
    lines = [
        PNC_HEADER,
        b"2019/00000001A,John,,Smith,19990101,M,NS,IC3,NFA,20190101,20200101,SMITH/JACK;JONES/JOHN,20010101;19991101;1999xx01",
        b"2019/00000002B,Jane,,Doe,20000202,U,A1,IC1,M1 1AE,20190101,20200101,,",
        b"2019/00000003C,Sam,,Roe,20000303,F,ZZ,IC1,M1 1AE,20190101,20200101,,",
    ]
    land(lakehouse, "pnc", "part-0.csv", b"\n".join(lines) + b"\n")
    spec = load_dataset_spec(ROOT / "conf" / "datasets" / "pnc.yaml")
    report = ingest_dataset(spark, spec, lakehouse, RELEASE, str(tmp_path / "scratch"))
    assert (report.input_rows, report.valid_rows, report.quarantined_rows) == (3, 3, 0)
    records = spark.read.format("delta").load(lakehouse.staging(RELEASE, "pnc", "records"))
    got = records.select(
        "source_record_id", "ethnicity_group", "ethnicity_code", "sex", "postcode",
        F.transform("aliases", lambda a: F.concat_ws("/", a["surname"], a["forename"])).alias("aliases"),
        "alias_dobs", "ingest_warnings",
    )
    expected = spark.createDataFrame(
        [
            ("2019/00000001A", "black", "IC3", "M", None, ["SMITH/JACK", "JONES/JOHN"],
             [dt.date(2001, 1, 1), dt.date(1999, 11, 1)],
             ["alias_dob_unparseable"]),
            ("2019/00000002B", "asian", "A1", None, "M1 1AE", [], [], []),
            # an unknown self-defined code is a warning (pnc.yaml: unknown_codes: missing); the officer's view stands
            ("2019/00000003C", "white", "IC1", "F", "M1 1AE", [], [], ["unknown_ethnicity_code"]),
        ],
        "source_record_id string, ethnicity_group string, ethnicity_code string, sex string, postcode string, "
        "aliases array<string>, alias_dobs array<date>, ingest_warnings array<string>",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_staged_names_and_postcodes_are_plain_and_codes_keep_their_dictionary(npd_ingested):
    lakehouse, _, _, _ = npd_ingested
    dictionaries = parquet_dictionaries(Path(lakehouse.staging(RELEASE, "npd", "records")))
    plain = {c: False for c in dictionaries if c.split(".")[0] in PLAIN_ENCODED}
    assert len(plain) == len(PLAIN_ENCODED)
    assert {c: d for c, d in dictionaries.items() if c in plain} == plain
    assert dictionaries["source_dataset"] and dictionaries["sex"]
