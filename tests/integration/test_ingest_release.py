"""Ingest on the tiny synthetic release: the real job round-trips every record (checked
against the ground truth), a corrupted copy loses nothing, and a third, differently shaped
source onboards by YAML alone."""

import csv
import datetime as dt
import io
import json
import shutil
import unicodedata
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from datafirst_spark.cli import EXIT_BAD_INPUT
from datafirst_spark.datasets import load_dataset_spec
from datafirst_spark.ingest import ingest_dataset
from datafirst_spark.lakehouse import Lakehouse
from datafirst_spark.standardise import canonical_forenames, clean_given_names, clean_name
from datafirst_spark.testing import run_job, run_job_in_session

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "conf" / "datasets"


@pytest.fixture(scope="module")
def ingested(spark, tiny_release, test_environment):
    lakehouse, release = tiny_release.lakehouse, tiny_release.release
    result = run_job_in_session(spark, test_environment, "jobs/ingest.py", ["--lakehouse", lakehouse.root, "--release", release])
    if result.returncode != 0:
        pytest.fail("ingest failed:\n" + "\n".join((result.stdout + result.stderr).splitlines()[-40:]))
    return result


def staged(spark, tiny_release, dataset, table):
    return spark.read.format("delta").load(tiny_release.lakehouse.staging(tiny_release.release, dataset, table))


def truth_records(spark, tiny_release, dataset):
    records = spark.read.format("delta").load(tiny_release.lakehouse.truth(tiny_release.release, "records"))
    return records.filter(F.col("source_dataset") == dataset)


@pytest.mark.parametrize("dataset", ["npd", "pnc"])
def test_every_record_comes_through_once(spark, tiny_release, ingested, dataset):
    report_path = tiny_release.lakehouse.staging(tiny_release.release, dataset, "_ingest.json")
    assert report_path in ingested.stdout.splitlines()
    report = json.loads(Path(report_path).read_text())
    truth_ids = {r[0] for r in truth_records(spark, tiny_release, dataset).select("source_record_id").collect()}
    records = staged(spark, tiny_release, dataset, "records")
    record_ids = [r[0] for r in records.select("source_record_id").collect()]
    assert len(record_ids) == len(set(record_ids)) == len(truth_ids)
    assert set(record_ids) == truth_ids
    assert (report["input_rows"], report["valid_rows"], report["quarantined_rows"]) == (len(truth_ids), len(truth_ids), 0)
    assert staged(spark, tiny_release, dataset, "quarantine").count() == 0
    assert report["warnings"] == {}  # every code and alias date in the synthetic extracts is known


@pytest.mark.parametrize("dataset", ["npd", "pnc"])
def test_clean_records_equal_the_truth(spark, tiny_release, ingested, dataset):
    """Where the generator changed nothing, the standardised record says what the person is."""
    people = spark.read.format("delta").load(tiny_release.lakehouse.truth(tiny_release.release, "people"))
    group_of = load_dataset_spec(SPECS / "npd.yaml").fields.ethnicity.codes  # truth holds DfE codes
    groups = spark.createDataFrame(list(group_of.items()), "true_ethnicity string, true_group string")
    clean = truth_records(spark, tiny_release, dataset).filter(F.size("corruptions") == 0)
    joined = (
        staged(spark, tiny_release, dataset, "records")
        .join(clean.select("source_record_id", "true_person_id"), "source_record_id")
        .join(people.select(F.col("person_id").alias("true_person_id"), F.col("surname").alias("true_surname"),
                            F.col("dob").alias("true_dob"), F.col("sex").alias("true_sex"),
                            F.col("ethnicity").alias("true_ethnicity")), "true_person_id")
        .join(groups, "true_ethnicity", "left")
    )
    checked = joined.count()
    assert checked > 0.5 * clean.count() > 0
    wrong = joined.filter(
        ~F.col("surname").eqNullSafe(clean_name(F.col("true_surname")))
        | ~F.col("dob").eqNullSafe(F.col("true_dob"))
        | (~F.col("sex").eqNullSafe(F.col("true_sex")) & F.col("sex").isNotNull())  # PNC records some sexes as U
        | (~F.col("ethnicity_group").eqNullSafe(F.col("true_group")) & (F.lit(dataset) == "npd"))
    )
    assert wrong.count() == 0, wrong.limit(5).collect()


@pytest.mark.parametrize("dataset", ["npd", "pnc"])
def test_placeholders_became_nulls(spark, tiny_release, ingested, dataset):
    records = staged(spark, tiny_release, dataset, "records")
    truth = truth_records(spark, tiny_release, dataset)
    for corruption, column in [("dob_placeholder_1900", "dob"), ("postcode_placeholder", "postcode")]:
        ids = truth.filter(F.array_contains("corruptions", corruption)).select("source_record_id")
        values = [r[0] for r in records.join(ids, "source_record_id").select(column).collect()]
        assert values and set(values) == {None}, (corruption, values[:5])


def test_pnc_aliases_are_all_read(spark, tiny_release, ingested):
    """Every alias in the extract is read: all alias dates, and all alias names except
    those that clean to the person's own (first given name, surname)."""
    landing = spark.read.option("header", True).csv(tiny_release.lakehouse.landing(tiny_release.release, "pnc"))
    records = staged(spark, tiny_release, "pnc", "records")
    given = landing.select(F.col("pnc_id").alias("source_record_id"), F.col("alias_names").alias("names_given"),
                           F.col("alias_dobs").alias("dobs_given"))
    aliases = (
        given.select("source_record_id", F.explode(F.split("names_given", ";")).alias("alias"))
        .select("source_record_id",
                F.substring_index(clean_given_names(F.split_part("alias", F.lit("/"), F.lit(2))), " ", 1).alias("f"),
                clean_name(F.split_part("alias", F.lit("/"), F.lit(1))).alias("s"))
        .join(records.select("source_record_id", "forename", "surname"), "source_record_id")
        .filter(~(F.col("f").eqNullSafe(F.col("forename")) & F.col("s").eqNullSafe(F.col("surname"))))
        .select("source_record_id", "f", "s").distinct()
    )
    joined = records.join(given, "source_record_id")
    counted = joined.select(
        F.sum(F.size("aliases")).alias("names_read"),
        F.sum(F.coalesce(F.size(F.split("dobs_given", ";")), F.lit(0))).alias("dobs_given"),
        F.sum(F.size("alias_dobs")).alias("dobs_read"),
    ).first()
    names_given = aliases.count()
    assert names_given > 0 and counted["dobs_given"] > 0
    assert (counted["names_read"], counted["dobs_read"]) == (names_given, counted["dobs_given"])


# ---------------------------------------------------------------- a corrupted copy


def corrupt_npd_copy(tiny_release, root: Path):
    """The tiny NPD extract with known damage done to known rows; (lakehouse, expected
    quarantine {record id: [reasons, ...]}, record ids that must be kept)."""
    source = Path(tiny_release.lakehouse.landing(tiny_release.release, "npd"))
    lakehouse = Lakehouse.at(str(root))
    target = Path(lakehouse.landing(tiny_release.release, "npd"))
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.crc"))  # checksums of the undamaged files
    first = sorted(target.glob("part-*.csv"))[0]
    header, *lines = first.read_bytes().decode("utf-8").splitlines()
    rows = [next(csv.reader([line])) for line in lines]
    key = [row[0] for row in rows]
    dob_at = header.split(",").index("dob")

    def line(row):
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(row)
        return out.getvalue().encode("utf-8")

    damaged = {i: line(row) for i, row in enumerate(rows)}
    damaged[10] = damaged[10][: len(damaged[10]) // 2]  # truncated
    damaged[20] = line(rows[20][:dob_at] + ["31/02/2011"] + rows[20][dob_at + 1:])
    fields = damaged[30].split(b",")
    damaged[30] = b",".join([*fields[:2], b'"' + fields[2], *fields[3:]])  # a stray quote opening the forename
    surname = "M\u00fcller"
    damaged[40] = line(rows[40][:4] + [surname] + rows[40][5:]).replace(surname.encode("utf-8"), surname.encode("latin-1"))
    extra = [line(rows[50][:2] + ["Someone"] + rows[50][3:]), damaged[60]]  # a conflicting and an exact copy
    first.write_bytes(b"\n".join([header.encode(), *damaged.values(), *extra]) + b"\n")
    expected = {
        key[10]: [["wrong_field_count"]],
        key[20]: [["dob_unparseable"]],
        key[30]: [["bad_quoting"]],
        key[40]: [["bad_encoding"]],
        key[50]: [["duplicate_record_key"], ["duplicate_record_key"]],
        key[60]: [["duplicate_record"]],
    }
    return lakehouse, expected, set(key) - {key[i] for i in (10, 20, 30, 40, 50)}


@pytest.fixture(scope="module")
def forename_table(spark):
    return canonical_forenames(spark).cache()


def test_corrupted_extract_loses_nothing(spark, tiny_release, tmp_path, forename_table):
    lakehouse, expected, kept_from_first_file = corrupt_npd_copy(tiny_release, tmp_path / "lake")
    spec = load_dataset_spec(SPECS / "npd.yaml")
    report = ingest_dataset(spark, spec, lakehouse, tiny_release.release, str(tmp_path / "scratch"),
                            forename_table=forename_table)
    quarantine = spark.read.format("delta").load(lakehouse.staging(tiny_release.release, "npd", "quarantine"))
    got: dict[str, list] = {}
    for row in quarantine.collect():
        got.setdefault(row["source_record_id"], []).append(list(row["reasons"]))
    assert got == expected
    records = spark.read.format("delta").load(lakehouse.staging(tiny_release.release, "npd", "records"))
    kept = {r[0] for r in records.select("source_record_id").collect()}
    assert kept_from_first_file <= kept and not (kept & (set(expected) - kept_from_first_file))
    truth_count = truth_records(spark, tiny_release, "npd").count()
    assert report.input_rows == truth_count + 2  # two copies appended
    assert (report.valid_rows, report.quarantined_rows) == (truth_count - 5, 7)


# ---------------------------------------------------------------- a third source, by YAML alone


def latin1(text: str) -> str:
    """What a Latin-1 system would store: letters outside Latin-1 lose their accents."""
    plain = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d"}
    return "".join(
        ch if ord(ch) < 256 else plain.get(ch) or unicodedata.normalize("NFKD", ch)[0] for ch in text
    )


def test_a_differently_shaped_source_onboards_by_yaml(spark, tiny_release, ingested, tmp_path, forename_table):
    """Court defendants: the PNC's people written the way a court system would (one name
    column, ISO dates, numeric sex, split postcode, two-column key, '|' and Latin-1)
    standardise to the same records as through the PNC spec."""
    pnc_files = sorted(Path(tiny_release.lakehouse.landing(tiny_release.release, "pnc")).glob("part-*.csv"))
    out = io.StringIO()
    writer = csv.writer(out, delimiter="|", lineterminator="\n")
    writer.writerow(["court_code", "defendant_ref", "defendant_name", "birth_date", "gender",
                     "self_defined_ethnicity", "postcode_outward", "postcode_inward", "hearing_date"])
    for file in pnc_files:
        for row in csv.DictReader(file.open(encoding="utf-8")):
            given = " ".join(part for part in (row["forename"], row["middle_names"]) if part)
            outward, _, inward = row["postcode"].partition(" ")
            iso = lambda d: dt.datetime.strptime(d, "%Y%m%d").date().isoformat() if d else ""  # noqa: E731
            writer.writerow(["B01LY", row["pnc_id"], latin1(f"{row['surname']}, {given}"), iso(row["dob"]),
                             {"M": "1", "F": "2"}.get(row["sex"], "9"), row["ethnicity_self_defined"],
                             outward, inward, iso(row["last_offence_date"])])
    lakehouse = Lakehouse.at(str(tmp_path / "lake"))
    folder = Path(lakehouse.landing(tiny_release.release, "court_defendants"))
    folder.mkdir(parents=True)
    (folder / "defendants.txt").write_bytes(out.getvalue().encode("iso-8859-1"))

    spec = load_dataset_spec(ROOT / "tests" / "data" / "datasets" / "court_defendants.yaml")
    report = ingest_dataset(spark, spec, lakehouse, tiny_release.release, str(tmp_path / "scratch"),
                            forename_table=forename_table)
    pnc = staged(spark, tiny_release, "pnc", "records")
    assert (report.input_rows, report.valid_rows, report.quarantined_rows) == (pnc.count(), pnc.count(), 0)

    court = spark.read.format("delta").load(lakehouse.staging(tiny_release.release, "court_defendants", "records"))
    assert court.filter(~F.col("source_record_id").startswith("B01LY|")).count() == 0
    compared = ["forename", "middle_names", "surname", "forename_canonical", "given_name_tokens", "surname_tokens",
                "forename_dm", "surname_dm", "dob", "sex", "postcode", "postcode_valid", "postcode_sector"]
    as_court = court.select(F.substring_index("source_record_id", "|", -1).alias("source_record_id"), *compared)
    differ = as_court.exceptAll(pnc.select("source_record_id", *compared))
    assert differ.count() == 0, differ.limit(5).collect()
    assert court.filter(F.col("attributes")["hearing_date"].isNull()).count() == 0


def test_job_names_a_wrong_header_and_exits_2(tiny_release, test_environment, tmp_path):
    lakehouse = Lakehouse.at(str(tmp_path / "lake"))
    folder = Path(lakehouse.landing(tiny_release.release, "npd"))
    folder.mkdir(parents=True)
    (folder / "npd.csv").write_text("pupil_ref,upn,first_name,middle_names,surname,dob,sex,ethnicity,postcode,census_year\n"
                                    "PMR1,A1,Amy,,Lee,03/03/2001,F,WBRI,LS6 1AB,2017\n")
    result = run_job(test_environment, "jobs/ingest.py",
                     ["--lakehouse", lakehouse.root, "--release", tiny_release.release, "--dataset", "npd"])
    output = result.stdout + result.stderr  # spark-submit passes the job's stderr to its stdout
    assert result.returncode == EXIT_BAD_INPUT
    assert "column 'forename' named in" in output and "fields.forename is not in the extract" in output
    assert "spark session ready" not in output  # failed before Spark started
    missing = run_job(test_environment, "jobs/ingest.py",
                      ["--lakehouse", lakehouse.root, "--release", tiny_release.release, "--dataset", "pnc"])
    assert missing.returncode == EXIT_BAD_INPUT
    assert f"pnc: extract not found at {lakehouse.landing(tiny_release.release, 'pnc')}" in missing.stdout + missing.stderr


@pytest.mark.parametrize("table_format", ["parquet", "delta"])
def test_typed_table_extracts_give_the_same_records(spark, tiny_release, ingested, tmp_path, forename_table,
                                                    table_format):
    """The NPD extract as a typed table (dates as dates, years as integers) standardises
    to the same records as the delimited text does."""
    text = spark.read.option("header", True).csv(tiny_release.lakehouse.landing(tiny_release.release, "npd"))
    typed = text.withColumns({"dob": F.to_date("dob", "dd/MM/yyyy"), "census_year": F.col("census_year").cast("int")})
    lakehouse = Lakehouse.at(str(tmp_path / "lake"))
    typed.write.format(table_format).save(lakehouse.landing(tiny_release.release, "npd"))
    spec = load_dataset_spec(SPECS / "npd.yaml")
    spec = spec.model_copy(update={"extract": spec.extract.model_copy(update={"format": table_format})})
    report = ingest_dataset(spark, spec, lakehouse, tiny_release.release, str(tmp_path / "scratch"),
                            forename_table=forename_table)
    from_text = staged(spark, tiny_release, "npd", "records")
    assert (report.input_rows, report.valid_rows) == (from_text.count(), from_text.count())
    from_table = spark.read.format("delta").load(lakehouse.staging(tiny_release.release, "npd", "records"))
    comparable = [c for c in from_text.columns if c != "attributes"]  # maps cannot be compared by EXCEPT
    assert from_table.select(comparable).exceptAll(from_text.select(comparable)).count() == 0
    assert from_table.filter(F.col("attributes")["census_year"].rlike("^20[0-9]{2}$")).count() == report.valid_rows
