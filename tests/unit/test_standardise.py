"""Standardisation: each cleaning function on tiny frames with bad rows, then the whole record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from chispa import assert_df_equality
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from datafirst_spark.standardise import (
    MAPPED_SCHEMA,
    STANDARDISED_SCHEMA,
    canonical_forenames,
    clean_name,
    double_metaphone,
    forename_parts,
    normalise_postcode,
    register_splink_functions,
    remove_titles,
    standardise,
)


def mapped_through(
    spark: SparkSession, function: Callable[[Column], Column], cases: list[tuple], result_type: str
) -> tuple[DataFrame, DataFrame]:
    """(actual, expected) frames of (value, result) for ``cases`` of (value, expected result)."""
    cases_df = spark.createDataFrame(cases, f"value string, expected {result_type}")
    actual = cases_df.select("value", function(F.col("value")).alias("result"))
    expected = cases_df.withColumnRenamed("expected", "result")
    return actual, expected


def test_clean_name_upper_cases_folds_accents_and_drops_punctuation(spark):
    actual, expected = mapped_through(
        spark,
        clean_name,
        [
            ("o'brien", "OBRIEN"),
            ("D’Arcy", "DARCY"),
            ("St. John", "ST JOHN"),
            ("  smith-jones ", "SMITH JONES"),
            ("Smith - Jones", "SMITH JONES"),
            ("Zoë", "ZOE"),
            ("Łukasz", "LUKASZ"),
            ("Strauß", "STRAUSS"),
            ("Ærø", "AERO"),
            ("Œdipe", "OEDIPE"),
            ("Ångström", "ANGSTROM"),
            ("john2   paul", "JOHN PAUL"),
            ("MARY\tJANE", "MARY JANE"),
            ("...", None),
            ("'-'", None),
            ("", None),
            ("   ", None),
            (None, None),
        ],
        "string",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_clean_name_folds_every_latin_1_and_extended_a_letter(spark):
    latin_1 = "".join(chr(code) for code in range(0xC0, 0x100) if chr(code).isalpha())
    extended_a = "".join(chr(code) for code in range(0x100, 0x180))
    actual, expected = mapped_through(
        spark,
        clean_name,
        [
            (latin_1, "AAAAAA" "AE" "C" "EEEE" "IIII" "D" "N" "OOOOO" "O" "UUUU" "Y" "TH" "SS"
                      "AAAAAA" "AE" "C" "EEEE" "IIII" "D" "N" "OOOOO" "O" "UUUU" "Y" "TH" "Y"),
            (extended_a, "AAAAAA" "CCCCCCCC" "DDDD" "EEEEEEEEEE" "GGGGGGGG" "HHHH" "IIIIIIIIII" "IJIJ" "JJ"
                         "KKK" "LLLLLLLLLL" "NNNNNNNNN" "OOOOOO" "OEOE" "RRRRRR" "SSSSSSSS" "TTTTTT"
                         "UUUUUUUUUUUU" "WW" "YYY" "ZZZZZZ" "S"),
        ],
        "string",
    )  # fmt: skip
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_clean_name_joins_hyphenated_given_names(spark):
    actual, expected = mapped_through(
        spark,
        lambda col: clean_name(col, join_hyphenated=True),
        [("Jean-Paul", "JEANPAUL"), ("Anne - Marie", "ANNEMARIE"), ("Mary Jane", "MARY JANE"), ("-", None)],
        "string",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_remove_titles_drops_leading_titles_only(spark):
    actual, expected = mapped_through(
        spark,
        remove_titles,
        [
            ("MR JOHN", "JOHN"),
            ("REV DR JOHN PAUL", "JOHN PAUL"),
            ("MISS", None),
            ("MSTR", None),
            ("MISSY", "MISSY"),
            ("MARK", "MARK"),
            ("DREW", "DREW"),
            ("JOHN MR", "JOHN MR"),
            (None, None),
        ],
        "string",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_forename_parts_split_given_names_into_forename_and_middle_names(spark):
    cases = spark.createDataFrame(
        [
            ("Jean-Paul", "Marie Claire", "JEANPAUL", "MARIE CLAIRE", ["JEANPAUL", "MARIE", "CLAIRE"]),
            ("Mr John James", None, "JOHN", "JAMES", ["JOHN", "JAMES"]),
            ("anne marie", "Louise", "ANNE", "MARIE LOUISE", ["ANNE", "MARIE", "LOUISE"]),
            (None, "Lee", "LEE", None, ["LEE"]),
            ("Mrs", "", None, None, None),
            ("...", None, None, None, None),
            (None, None, None, None, None),
        ],
        "forename_in string, middle_in string, forename string, middle_names string, given_name_tokens array<string>",
    )
    actual = cases.select(
        "forename_in", "middle_in", forename_parts(F.col("forename_in"), F.col("middle_in")).alias("parts")
    ).select("forename_in", "middle_in", "parts.*")
    assert_df_equality(actual, cases, ignore_nullable=True)


def test_normalise_postcode_formats_valid_postcodes_and_keeps_invalid_ones_without_parts(spark):
    cases = spark.createDataFrame(
        [
            ("sw1a1aa", "SW1A 1AA", True, "SW", "SW1A", "SW1A 1", "1AA"),
            ("M11AE", "M1 1AE", True, "M", "M1", "M1 1", "1AE"),
            (" cr2 6xh ", "CR2 6XH", True, "CR", "CR2", "CR2 6", "6XH"),
            ("EC1A-1BB", "EC1A 1BB", True, "EC", "EC1A", "EC1A 1", "1BB"),
            ("B33 8TH", "B33 8TH", True, "B", "B33", "B33 8", "8TH"),
            ("NOTAPOSTCODE", "NOTAPOSTCODE", False, None, None, None, None),
            ("SW1A 1A", "SW1A1A", False, None, None, None, None),
            ("1AA SW1", "1AASW1", False, None, None, None, None),
            ("!!", None, None, None, None, None, None),
            ("", None, None, None, None, None, None),
            (None, None, None, None, None, None, None),
        ],
        "raw string, postcode string, valid boolean, area string, district string, sector string, inward string",
    )
    actual = cases.select("raw", normalise_postcode(F.col("raw")).alias("parts")).select("raw", "parts.*")
    assert_df_equality(actual, cases, ignore_nullable=True)


def test_canonical_forenames_picks_the_most_common_formal_name(spark):
    nicknames = [
        {"name": "William", "nickname": "Bill"},
        {"name": "Robert", "nickname": "Bill"},  # Robert ranks worse: Bill -> WILLIAM
        {"name": "Robert", "nickname": "Bob"},
        {"name": "Robin", "nickname": "Bob"},  # equal best rank: alphabetical, ROBERT
        {"name": "Zachary", "nickname": "Zak"},
        {"name": "Zacharias", "nickname": "Zak"},  # neither ranked: alphabetical, ZACHARIAS
        {"name": "Jean-Paul", "nickname": "J.P."},  # cleaned as forenames are
        {"name": "Will", "nickname": "Willy"},
        {"name": "William", "nickname": "Will"},  # WILL ranks worse than WILLIAM: WILL -> WILLIAM
        {"name": "Annabel", "nickname": "Ann"},  # ANN ranks better than ANNABEL: stays ANN
    ]
    forenames = [
        {"name": "William", "rank": "3"},
        {"name": "William", "rank": "40"},
        {"name": "Robert", "rank": "9"},
        {"name": "Robin", "rank": "12"},
        {"name": "Robin", "rank": "9"},  # best rank across pools counts
        {"name": "Will", "rank": "200"},
        {"name": "Ann", "rank": "20"},
        {"name": "Annabel", "rank": "300"},
    ]
    actual = canonical_forenames(spark, nicknames=nicknames, forenames=forenames)
    expected = spark.createDataFrame(
        [
            ("ANN", "ANN"),
            ("ANNABEL", "ANNABEL"),
            ("BILL", "WILLIAM"),
            ("BOB", "ROBERT"),
            ("JEANPAUL", "JEANPAUL"),
            ("JP", "JEANPAUL"),
            ("ROBERT", "ROBERT"),
            ("ROBIN", "ROBIN"),
            ("WILL", "WILLIAM"),
            ("WILLIAM", "WILLIAM"),
            ("WILLY", "WILLIAM"),  # via WILL, in two steps
            ("ZACHARIAS", "ZACHARIAS"),
            ("ZACHARY", "ZACHARY"),
            ("ZAK", "ZACHARIAS"),
        ],
        "name string, canonical string",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


@pytest.fixture(scope="module")
def reference_canonical_forenames(spark) -> DataFrame:
    return canonical_forenames(spark).cache()


def test_canonical_forenames_from_the_reference_tables(reference_canonical_forenames):
    names = ["DAVE", "DAVID", "SARA", "BILL", "WILLIAM", "ANA", "MARIA", "LEE", "NEIL", "XQZY"]
    found = dict(reference_canonical_forenames.filter(F.col("name").isin(names)).collect())
    assert found == {"DAVE": "DAVID", "DAVID": "DAVID", "SARA": "SARAH", "BILL": "WILLIAM",
                     "WILLIAM": "WILLIAM", "ANA": "ANA", "MARIA": "MARIA", "LEE": "LEE",
                     "NEIL": "NEIL"}  # fmt: skip
    assert reference_canonical_forenames.count() == reference_canonical_forenames.select("name").distinct().count()


def test_register_splink_functions_is_idempotent(spark):
    register_splink_functions(spark)
    register_splink_functions(spark)
    actual, expected = mapped_through(
        spark, double_metaphone, [("SMITH", "SM0"), ("DAVE", "TF"), ("SMITH JONES", "SM0J"), (None, None)], "string"
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


ALIAS = "array<struct<forename:string,surname:string>>"


def test_standardise_makes_canonical_records(spark, reference_canonical_forenames):
    d = dt.date
    mapped = spark.createDataFrame(
        [
            # title, nickname, hyphenated middle name and surname, aliases repeating the primary
            ("pnc", "2020/1A", "2025", "Mr Dave", "john-paul", "Smith-Jones", d(1990, 5, 17), "M", "W", "W1",
             "sw1a1aa", [("DAVE", "SMITH-JONES"), ("Rob", "O'Brien"), ("rob", "OBRIEN"), (None, "..."), ("", None)],
             [d(1990, 5, 17), d(1990, 7, 5), None, d(1990, 7, 5)], {"pnc_id": "2020/1A"}, []),
            # accents, no dob, invalid postcode, null arrays
            ("npd", "P2", "2025", "Zoë", None, "Ångström", None, "F", None, None, "NOTAPOSTCODE", None, None, None,
             None),
            # no names at all, empty arrays
            ("npd", "P3", "2025", None, "...", "", d(2001, 1, 2), None, None, None, None, [], [], {}, ["late"]),
            # a name in no nickname table; an alias with a nickname of its own
            ("pnc", "2021/9Z", "2025", "XQZY", "", "o'neil", d(1985, 12, 1), "M", "A", "A2", "M11AE",
             [("Dave", "O NEIL")], None, None, None),
        ],
        MAPPED_SCHEMA,
    )
    out = standardise(mapped, reference_canonical_forenames)
    assert out.schema == STANDARDISED_SCHEMA

    names = spark.createDataFrame(
        [
            ("2020/1A", "DAVE", "JOHNPAUL", "SMITH JONES", "DAVID", ["DAVE", "JOHNPAUL"], ["SMITH", "JONES"], "TF",
             "SM0J"),
            ("P2", "ZOE", None, "ANGSTROM", "ZOE", ["ZOE"], ["ANGSTROM"], "S", "ANKS"),
            ("P3", None, None, None, None, None, None, None, None),
            ("2021/9Z", "XQZY", None, "ONEIL", "XQZY", ["XQZY"], ["ONEIL"], "SKS", "ANL"),
        ],
        "source_record_id string, forename string, middle_names string, surname string, forename_canonical string, "
        "given_name_tokens array<string>, surname_tokens array<string>, forename_dm string, surname_dm string",
    )  # fmt: skip
    assert_df_equality(out.select(names.columns), names, ignore_nullable=True, ignore_row_order=True)

    dates_and_places = spark.createDataFrame(
        [
            ("2020/1A", d(1990, 5, 17), 1990, 5, 17, "SW1A 1AA", True, "SW", "SW1A", "SW1A 1", "1AA"),
            ("P2", None, None, None, None, "NOTAPOSTCODE", False, None, None, None, None),
            ("P3", d(2001, 1, 2), 2001, 1, 2, None, None, None, None, None, None),
            ("2021/9Z", d(1985, 12, 1), 1985, 12, 1, "M1 1AE", True, "M", "M1", "M1 1", "1AE"),
        ],
        "source_record_id string, dob date, dob_year int, dob_month int, dob_day int, postcode string, "
        "postcode_valid boolean, postcode_area string, postcode_district string, postcode_sector string, "
        "postcode_inward string",
    )
    assert_df_equality(
        out.select(dates_and_places.columns), dates_and_places, ignore_nullable=True, ignore_row_order=True
    )

    aliases_and_sets = spark.createDataFrame(
        [
            ("2020/1A", [("ROB", "OBRIEN")], [d(1990, 7, 5)], ["DAVE", "DAVID", "ROB"],  # ROB: a British name in its own right
             ["SMITH JONES", "SMITH", "JONES", "OBRIEN"], [d(1990, 5, 17), d(1990, 7, 5)]),
            ("P2", [], [], ["ZOE"], ["ANGSTROM"], None),
            ("P3", [], [], None, None, [d(2001, 1, 2)]),
            ("2021/9Z", [("DAVE", "O NEIL")], [], ["XQZY", "DAVE", "DAVID"], ["ONEIL", "O NEIL"], [d(1985, 12, 1)]),
        ],
        f"source_record_id string, aliases {ALIAS}, alias_dobs array<date>, all_forenames array<string>, "
        "all_surnames array<string>, all_dobs array<date>",
    )  # fmt: skip
    assert_df_equality(
        out.select(aliases_and_sets.columns), aliases_and_sets, ignore_nullable=True, ignore_row_order=True
    )

    passed_through = out.select(
        "source_record_id", "source_dataset", "release", "sex", "ethnicity_code", "attributes", "ingest_warnings"
    )
    assert sorted(tuple(r) for r in passed_through.collect()) == [
        ("2020/1A", "pnc", "2025", "M", "W1", {"pnc_id": "2020/1A"}, []),
        ("2021/9Z", "pnc", "2025", "M", "A2", None, None),
        ("P2", "npd", "2025", "F", None, None, None),
        ("P3", "npd", "2025", None, None, {}, ["late"]),
    ]


def test_standardise_names_missing_and_mistyped_columns(spark, reference_canonical_forenames):
    mapped = spark.createDataFrame([], MAPPED_SCHEMA).drop("postcode", "alias_dobs").withColumn("dob", F.lit("x"))
    with pytest.raises(ValueError, match=r"missing columns: postcode, alias_dobs; dob is string, expected date"):
        standardise(mapped, reference_canonical_forenames)


def test_standardise_fails_on_a_null_record_id(spark, reference_canonical_forenames):
    row = ("npd", None, "2025", "ANN", None, "LEE", None, None, None, None, None, None, None, None, None)
    out = standardise(spark.createDataFrame([row], MAPPED_SCHEMA), reference_canonical_forenames)
    with pytest.raises(Exception, match="standardise: source_record_id is null"):
        out.collect()


def test_standardise_rejects_a_canonical_table_with_repeated_names(spark):
    mapped = spark.createDataFrame([], MAPPED_SCHEMA)
    canonical = spark.createDataFrame([("BOB", "ROBERT"), ("BOB", "ROBIN")], "name string, canonical string")
    with pytest.raises(ValueError, match="canonical_forenames: a name appears more than once"):
        standardise(mapped, canonical)
